"""Error types for bad input.

Every error a user can fix (a bad file, a bad option) is a :class:`MedclError`.
The CLI turns these into one line on stderr and exit code 2, with no traceback;
anything else is an internal error (exit 1). Messages name the file and the fix
and never contain DICOM header values other than those medcl itself uses.
"""
from __future__ import annotations

import os


class MedclError(Exception):
    """Bad input or usage that the user can fix."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, fix: str | None = None):
        self.path = None if path is None else os.fspath(path)
        self.fix = fix
        text = message
        if self.path is not None and self.path not in text:
            text = f"{self.path}: {text}"
        if fix:
            text = f"{text} ({fix})"
        super().__init__(text)


class DicomError(MedclError):
    """A DICOM file that cannot be read: not DICOM, truncated, no pixel data, unsupported layout."""


class MissingCodecError(DicomError):
    """Compressed pixel data whose decoder plugin is not installed."""


class PlinkError(MedclError):
    """A PLINK 1 fileset (.bed/.bim/.fam) that is malformed or inconsistent."""


class TableError(MedclError):
    """A manifest, PRS, burden or label table that is malformed."""


class ManifestError(TableError):
    """A manifest whose rows point at missing files or lack required columns."""


class ConfigError(MedclError):
    """A bad configuration file or option value."""
