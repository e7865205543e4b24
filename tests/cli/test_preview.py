"""medcl preview: a grid of the original plus augmented views per image; bad input exits 2."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medcl.cli import main

GAP = 6


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    from medcl.demo import generate_cohort
    out = tmp_path_factory.mktemp("preview") / "cohort"
    return str(generate_cohort(out, n=20, snps=100, size=64, seed=3).paths["manifest"])




def test_preview_grid_of_a_manifest(manifest, tmp_path):
    out = tmp_path / "grid.png"
    rc = main(["preview", "--data", manifest, "--out", str(out), "--images", "3", "--views", "4",
              "--image-size", "32", "--rotation", "30", "--noise", "0"])
    assert rc == 0
    grid = np.asarray(Image.open(out))
    assert grid.shape == (3 * (32 + GAP) + GAP, 5 * (32 + GAP) + GAP)
    cells = [grid[GAP + b * 38:GAP + b * 38 + 32, GAP + c * 38:GAP + c * 38 + 32] for b in range(3) for c in range(5)]
    assert all(c.std() > 0 for c in cells)                                # every cell holds an image
    assert not np.array_equal(cells[1], cells[2])                         # views differ


def test_preview_refuses_bad_settings_and_files(tmp_path, capsys):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not a dicom")
    assert main(["preview", "--data", str(bad), "--out", str(tmp_path / "g.png")]) == 2
    assert "not a DICOM file" in capsys.readouterr().err
    assert main(["preview", "--data", str(bad), "--out", str(tmp_path / "g.png"), "--crop-scale", "0.9,0.2"]) == 2
    assert "crop scale" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()
