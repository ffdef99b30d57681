"""cross_crop_prediction: targets lie where both crops show the image; the context does not show them."""

from __future__ import annotations

import pytest
import torch

from conftest import DEVICES
from dali_multicrop import MaskLevel, MultiCropBatch, MultiCropMaskGenerator

SIZES = (64, 64, 32, 32)  # 2 globals of 4x4 patches, 2 locals of 2x2 (patch 16)


def random_batch(b: int, device: str, seed: int = 0) -> MultiCropBatch:
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(b, len(SIZES), 2, generator=g) * 0.6
    ext = 0.2 + torch.rand(b, len(SIZES), 2, generator=g) * 0.4
    boxes = torch.cat([lo, (lo + ext).clamp(max=1.0)], dim=-1)
    flipped = torch.rand(b, len(SIZES), generator=g) < 0.5
    return MultiCropBatch([torch.zeros(b, 3, s, s) for s in SIZES], boxes, flipped,
                          torch.zeros(b, dtype=torch.long), torch.arange(b)).to(device)


def centre(box, flip, grid, n):
    """Source-image position of patch n's centre (plain floats: the reference for the vectorised code)."""
    row, col = divmod(n, grid)
    u, v = (col + 0.5) / grid, (row + 0.5) / grid
    if flip:
        u = 1 - u
    x0, y0, x1, y1 = box
    return x0 + u * (x1 - x0), y0 + v * (y1 - y0)


def cell_of(point, box, flip, grid):
    x, y = point
    x0, y0, x1, y1 = box
    u, v = (x - x0) / (x1 - x0), (y - y0) / (y1 - y0)
    if flip:
        u = 1 - u
    if not (0 <= u < 1 and 0 <= v < 1):
        return None
    return int(v * grid) * grid + int(u * grid)


@pytest.mark.parametrize("device", [d for d in DEVICES])
def test_cross_targets_and_context_match_a_per_patch_reference(device):
    dev = {"cpu": "cpu", "gpu": "cuda"}[device]
    batch = random_batch(24, dev)
    gen = MultiCropMaskGenerator("2x64,2x32", strategy="cross_crop_prediction", num_targets=2,
                                 levels=(MaskLevel((0.1, 0.25)), MaskLevel((0.2, 0.4))))
    masks = gen(batch)
    assert sorted(masks.cross_targets) == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 3)]
    boxes, flips = batch.boxes.cpu().tolist(), batch.flipped.cpu().tolist()
    grids = [s // 16 for s in SIZES]
    checked_targets = checked_context = 0
    for (i, j), cross in masks.cross_targets.items():
        cross, targets = cross.cpu(), masks.targets[i].cpu()
        context, base = masks.cross_context[(i, j)].cpu(), masks.context[j].cpu()
        assert cross.shape == targets.shape and context.shape == base.shape
        for b in range(24):
            for n in range(grids[i] ** 2):
                x, y = centre(boxes[b][i], flips[b][i], grids[i], n)
                x0, y0, x1, y1 = boxes[b][j]
                in_j = x0 <= x <= x1 and y0 <= y <= y1
                want = targets[:, b, :, n] & in_j
                assert torch.equal(cross[:, b, :, n], want)
                checked_targets += int(cross[:, b, :, n].sum())
            for q in range(grids[j] ** 2):
                cell = cell_of(centre(boxes[b][j], flips[b][j], grids[j], q), boxes[b][i], flips[b][i], grids[i])
                for l in range(2):
                    covered = cell is not None and bool(targets[l, b, :, cell].any())
                    assert bool(context[l, b, q]) == (bool(base[l, b, q]) and not covered)
                    checked_context += int(covered and bool(base[l, b, q]))
    assert checked_targets > 50 and checked_context > 20, (checked_targets, checked_context)


def test_cross_needs_a_batch():
    gen = MultiCropMaskGenerator("2x64,2x32", strategy="cross_crop_prediction", levels=(MaskLevel((0.1, 0.2)),))
    with pytest.raises(ValueError, match="needs a MultiCropBatch"):
        gen(batch_size=4)


def test_allow_overlap_keeps_the_context_whole():
    gen = MultiCropMaskGenerator("2x64,2x32", strategy="cross_crop_prediction", allow_overlap=True,
                                 levels=(MaskLevel((0.1, 0.2)),))
    masks = gen(random_batch(8, "cpu"))
    for (i, j), context in masks.cross_context.items():
        assert torch.equal(context, masks.context[j])
