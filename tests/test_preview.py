"""`dali-multicrop preview` writes a PNG of the documented size, with crops and masks drawn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import coordinate_image, write_folder
from dali_multicrop.preview import preview_size


def test_preview_writes_png_of_the_right_size(tmp_path):
    data = write_folder(tmp_path / "data", {"a": [coordinate_image(150, 200)] * 3, "b": [coordinate_image(200, 150)]})
    out = tmp_path / "p.png"
    proc = subprocess.run([sys.executable, "-m", "dali_multicrop", "preview", "--data", str(data), "--crops",
                           "2x128,3x64", "--images", "2", "--levels", "2", "--targets", "3", "--tile", "64",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert preview_size(2, 5, 2, 64) == (6 * 64, 2 * 3 * 64)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (384, 384)
        pixels = np.asarray(img.convert("RGB")).astype(int)
    # crop cells hold the coordinate ramps (red grows left to right unless flipped): not blank
    crop_cell = pixels[0:64, 64:128]
    assert crop_cell.std() > 10
    # the mask rows of a global crop differ from the plain crop (dimmed and coloured patches)
    assert np.abs(pixels[64:128, 64:128] - crop_cell).mean() > 5
    assert "384x384 px" in proc.stdout


def test_preview_bad_strategy_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dali_multicrop", "preview", "--strategy", "x"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
