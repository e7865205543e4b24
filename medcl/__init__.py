"""medcl: self-supervised pretraining on medical images, alone or paired with genetics.

Importing medcl is cheap: heavy modules (torch, pydicom, pandas-plink) load on first use.
"""
from __future__ import annotations


def _installed_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("medcl")
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover
        pass
    from medcl._version import __version__ as v
    return v


__version__ = _installed_version()

from medcl.errors import (  # noqa: E402
    ConfigError, DicomError, ManifestError, MedclError, MissingCodecError, PlinkError, TableError,
)

__all__ = [
    "__version__", "MedclError", "DicomError", "MissingCodecError", "PlinkError", "TableError",
    "ManifestError", "ConfigError",
]
