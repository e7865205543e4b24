"""Shared fixtures: devices, fresh random generators, the DICOM test corpora."""
from __future__ import annotations

import glob
import os

import pytest
import torch

CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="no CUDA device visible")
    for item in items:
        if "gpu" in item.keywords and not CUDA:
            item.add_marker(skip_gpu)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    """Every op test runs on CPU always and on CUDA when present."""
    return torch.device(request.param)


@pytest.fixture
def gen():
    """A freshly seeded generator per test (random inputs, never fixed data); failing tests
    report ``gen.initial_seed()`` to reproduce."""
    return torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))


def dicom_corpus() -> list[str]:
    """Every file of pydicom's own test files and of the pydicom-data package."""
    files: list[str] = []
    import pydicom.data
    files += sorted(glob.glob(os.path.join(os.path.dirname(pydicom.data.__file__), "test_files", "**", "*"),
                              recursive=True))
    try:
        import data_store  # the pydicom-data package
        files += sorted(glob.glob(os.path.join(os.path.dirname(data_store.__file__), "data", "*")))
    except ImportError:
        pass
    return [f for f in files if os.path.isfile(f) and not f.endswith((".txt", ".json", ".gz", ".dump", ".icc"))
            and os.path.basename(f) != "README"]
