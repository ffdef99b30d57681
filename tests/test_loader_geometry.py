"""Crops show the window their box says, with areas, aspect ratios and flips as configured."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import COORD_SIZES, DEVICES, pixels
from dali_multicrop import ColorJitter, DaliMultiCropLoader, MultiCropSpec

NO_JITTER = ColorJitter(probability=0.0)
SPEC = MultiCropSpec.parse("2x48,4x24").with_global(color_jitter=NO_JITTER).with_local(color_jitter=NO_JITTER)
EPOCHS = 6


def source_hw(index: int) -> tuple[int, int]:
    """(H, W) of sample ``index`` in the coord folder (class k = index // 4, item i = index % 4)."""
    return COORD_SIZES[(index // 4 + index % 4) % 3]


@pytest.fixture(scope="module", params=DEVICES)
def collected(request, coord_folder):
    """Every batch of several epochs: crops as pixel values, plus boxes, flips and indices, on the CPU."""
    loader = DaliMultiCropLoader(coord_folder, crops=SPEC, batch_size=5, device=request.param, seed=3,
                                 num_threads=2)
    out = {"pixels": [[] for _ in range(SPEC.num_crops)], "boxes": [], "flipped": [], "indices": [],
           "device": loader.torch_device, "batches": []}
    for _ in range(EPOCHS):
        for batch in loader:
            out["batches"].append(batch)
            for i, crop in enumerate(batch.crops):
                out["pixels"][i].append(pixels(crop))
            out["boxes"].append(batch.boxes.cpu())
            out["flipped"].append(batch.flipped.cpu())
            out["indices"].append(batch.indices.cpu())
    out["pixels"] = [torch.cat(p) for p in out["pixels"]]
    for key in ("boxes", "flipped", "indices"):
        out[key] = torch.cat(out[key])
    return out


def test_shapes_dtypes_devices(collected):
    for batch in collected["batches"]:
        b = batch.batch_size
        assert [tuple(c.shape) for c in batch.crops] == [(b, 3, s, s) for s in SPEC.sizes]
        assert all(c.dtype == torch.float32 and c.device == collected["device"] for c in batch.crops)
        assert batch.boxes.shape == (b, SPEC.num_crops, 4) and batch.boxes.dtype == torch.float32
        assert batch.flipped.shape == (b, SPEC.num_crops) and batch.flipped.dtype == torch.bool
        assert batch.labels.dtype == torch.int64 and batch.indices.dtype == torch.int64
        for t in (batch.boxes, batch.flipped, batch.labels, batch.indices):
            assert t.device == collected["device"]
        assert torch.equal(batch.labels.cpu(), batch.indices.cpu() // 4)  # classes of 4 images each


def expected_profile(start_px: float, length_px: float, out_size: int, extent: int) -> np.ndarray:
    """Code values a coordinate ramp shows along one axis of a crop: pixel-centre sampling of the window."""
    centres = start_px + (np.arange(out_size) + 0.5) * length_px / out_size - 0.5
    return centres * 255.0 / (extent - 1)


def test_crop_content_matches_box_and_flip(collected):
    checked = 0
    for i, size in enumerate(SPEC.sizes):
        for k in range(len(collected["indices"])):
            h, w = source_hw(int(collected["indices"][k]))
            x0, y0, x1, y1 = collected["boxes"][k, i].double().tolist()
            img = collected["pixels"][i][k].numpy()
            red_cols = img[0].mean(axis=0)    # R encodes x: one value per output column
            green_rows = img[1].mean(axis=1)  # G encodes y: one value per output row
            want_x = expected_profile(x0 * w, (x1 - x0) * w, size, w)
            if collected["flipped"][k, i]:
                want_x = want_x[::-1]
            want_y = expected_profile(y0 * h, (y1 - y0) * h, size, h)
            inner = slice(1, size - 1)  # edge pixels see the filter's border handling
            np.testing.assert_allclose(red_cols[inner], want_x[inner], atol=2.0,
                                       err_msg=f"crop {i} of sample {k}: columns do not show the box's x range")
            np.testing.assert_allclose(green_rows[inner], want_y[inner], atol=2.0,
                                       err_msg=f"crop {i} of sample {k}: rows do not show the box's y range")
            assert np.allclose(img[2], 128, atol=1.0)
            checked += 1
    assert checked == SPEC.num_crops * 12 * EPOCHS


def _spread_check(values: np.ndarray, lo: float, hi: float, what: str, rel_tol: float) -> None:
    span = hi - lo
    assert values.min() >= lo - rel_tol * abs(lo) - 1e-6, f"{what} below range: {values.min()} < {lo}"
    assert values.max() <= hi + rel_tol * abs(hi) + 1e-6, f"{what} above range: {values.max()} > {hi}"
    assert values.min() < lo + 0.2 * span, f"{what} never near the low end {lo}: min {values.min()}"
    assert values.max() > hi - 0.2 * span, f"{what} never near the high end {hi}: max {values.max()}"


@pytest.mark.parametrize("group_index", [0, 1])
def test_area_and_aspect_in_range_and_spread(collected, group_index):
    group = SPEC.groups[group_index]
    first = sum(g.count for g in SPEC.groups[:group_index])
    crops = range(first, first + group.count)
    sizes = np.array([source_hw(int(i)) for i in collected["indices"]], dtype=np.float64)  # (H, W)
    boxes = collected["boxes"][:, list(crops)].double().numpy()
    width_px = (boxes[..., 2] - boxes[..., 0]) * sizes[:, None, 1]
    height_px = (boxes[..., 3] - boxes[..., 1]) * sizes[:, None, 0]
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])).ravel()
    log_ratio = np.log(width_px / height_px).ravel()
    # windows are whole pixels: a 0.05 area of a 200x200 image is about 45x45 px, so allow 1 px of rounding
    _spread_check(area, *group.scale, what="area fraction", rel_tol=0.06)
    _spread_check(log_ratio, *np.log(group.ratio), what="log aspect ratio", rel_tol=0.06)
    assert abs(log_ratio.mean()) < 0.06, "log aspect ratio should centre on 0 for a symmetric range"
    assert np.all((boxes >= 0) & (boxes <= 1))
    assert np.all(boxes[..., 2] > boxes[..., 0]) and np.all(boxes[..., 3] > boxes[..., 1])


def test_flip_rate_matches_probability(collected):
    flips = collected["flipped"].double()
    n = flips.numel()
    rate = flips.mean().item()
    assert abs(rate - 0.5) < 4 * math.sqrt(0.25 / n), f"flip rate {rate} over {n} crops"
    # every crop flips independently: crops of one image do not all flip together
    per_image = flips.mean(dim=1)
    assert ((per_image > 0) & (per_image < 1)).float().mean() > 0.5


def test_crops_of_one_image_draw_independently(collected):
    boxes = collected["boxes"]
    for i in range(SPEC.num_crops):
        for j in range(i + 1, SPEC.num_crops):
            assert not torch.allclose(boxes[:, i], boxes[:, j]), f"crops {i} and {j} share their windows"
