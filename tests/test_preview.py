"""`dali-multicrop preview` writes a PNG of the documented size, with crops and masks drawn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import coordinate_image, write_folder


def test_preview_writes_png_of_the_right_size(tmp_path):
    data = write_folder(tmp_path / "data", {"a": [coordinate_image(150, 200)] * 3, "b": [coordinate_image(200, 150)]})
    out = tmp_path / "p.png"
    proc = subprocess.run([sys.executable, "-m", "dali_multicrop", "preview", "--data", str(data), "--crops",
                           "2x128,3x64", "--images", "2", "--levels", "2", "--targets", "3", "--tile", "64",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.format == "PNG"
        pixels = np.asarray(img.convert("RGB")).astype(int)
    # a source column of two tiles and a column per crop; per image a crop row and a row per level; a legend below
    rows = 2 * (1 + 2)
    assert pixels.shape[1] == (2 + 5) * 64 and rows * 64 < pixels.shape[0] <= rows * 64 + 64
    # crop cells hold the coordinate ramps (red grows left to right unless flipped): not blank
    crop_cell = pixels[20:60, 128 + 4:192 - 4]
    assert crop_cell.std() > 10
    # the mask rows of a global crop differ from the plain crop (dimmed and coloured patches)
    assert np.abs(pixels[64 + 20:64 + 60, 128 + 4:192 - 4] - crop_cell).mean() > 5
    # the local crops, unmasked with global_only, are left out of the level rows ("no mask")
    assert pixels[64 + 24:128 - 4, 4 * 64 + 4:5 * 64 - 4].std() < 1
    # the legend strip says what the colours and outlines are
    assert pixels[2 * 3 * 64 + 4:, :].std() > 5
    assert f"{pixels.shape[1]}x{pixels.shape[0]} px" in proc.stdout  # the command says the size it wrote


def test_preview_bad_strategy_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dali_multicrop", "preview", "--strategy", "x"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--strategy must be one of" in proc.stderr and "--masks" not in proc.stderr


def test_each_strategy_draws_what_it_adds():
    import torch

    from dali_multicrop import MultiCropBatch, MultiCropMaskGenerator
    from dali_multicrop.preview import _strategy_view

    batch = MultiCropBatch(crops=[torch.zeros(2, 3, s, s) for s in (64, 64, 32, 32)],
                           boxes=torch.tensor([[0.0, 0.0, 0.8, 0.8], [0.2, 0.2, 1.0, 1.0], [0.1, 0.1, 0.5, 0.5],
                                               [0.5, 0.5, 0.9, 0.9]]).repeat(2, 1, 1),
                           flipped=torch.zeros(2, 4, dtype=torch.bool), labels=torch.zeros(2, dtype=torch.long),
                           indices=torch.arange(2))
    views = {}
    for strategy in ("global_only", "global_with_local_context", "cross_crop_prediction"):
        masks = MultiCropMaskGenerator("2x64,2x32", patch_size=16, strategy=strategy, num_levels=1, num_targets=2,
                                       min_keep=1)(batch)
        views[strategy] = [_strategy_view(masks, i, 0, 0) for i in range(4)]
        if strategy == "cross_crop_prediction":
            assert (views[strategy][1][0] == masks.cross_context[(0, 1)][0, 0].numpy()).all()
    assert [v[2] for v in views["global_only"]] == ["", "", "", ""]
    assert [v[2] for v in views["global_with_local_context"]] == ["", "", "joins 0's ctx", "joins 0's ctx"]
    assert [v[2] for v in views["cross_crop_prediction"]] == ["seen by others", "ctx for 0", "ctx for 0", "ctx for 0"]


def test_preview_of_ibot_masks(tmp_path):
    """--strategy ibot: one mask row; on the global crops the masked patches drawn over the crop (with their count
    against the target), the local crops left as they are."""
    data = write_folder(tmp_path / "data", {"a": [coordinate_image(150, 200)] * 4})
    out = tmp_path / "p.png"
    proc = subprocess.run([sys.executable, "-m", "dali_multicrop", "preview", "--data", str(data), "--crops",
                           "2x128,3x64", "--images", "4", "--strategy", "ibot", "--tile", "64", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "patch masks on the global crops" in proc.stdout
    with Image.open(out) as img:
        pixels = np.asarray(img.convert("RGB")).astype(int)
    assert pixels.shape[1] == 7 * 64 and 4 * 2 * 64 < pixels.shape[0] <= 4 * 2 * 64 + 64  # one mask row per image
    # a local crop (never masked) shows in its crop row only; its mask cell is left blank ("no mask")
    for k in range(4):
        y = k * 128
        plain, mask_row = pixels[y + 20:y + 44, 5 * 64 + 4:6 * 64 - 4], pixels[y + 88:y + 124, 5 * 64 + 4:6 * 64 - 4]
        assert plain.std() > 10 and mask_row.std() < 1


def test_patch_view_marks_the_masked_patches():
    import torch

    from dali_multicrop.masking.patches import PatchMasks
    from dali_multicrop.preview import _patch_view

    masks = torch.zeros(2, 3, 16, dtype=torch.bool)
    masks[0, 1, :5] = True
    view = PatchMasks(masks=masks, targets=torch.tensor([[0, 6, 0], [0, 0, 0]]), upperbound=6)
    context, targets, note = _patch_view(view, 0, 1)
    assert note == "5/6 masked" and (targets[0] == masks[0, 1].numpy()).all() and (context == ~masks[0, 1].numpy()).all()
    assert _patch_view(view, 1, 0)[2] == "not masked"
    context, targets, note = _patch_view(view, 2, 0)  # a local crop
    assert note == "no mask" and context.all() and not targets.any()
