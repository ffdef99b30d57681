"""Crop windows: the vectorised RandomResizedCrop equals a one-crop-at-a-time reference of torchvision's algorithm
on the same draws, and its distribution matches torchvision's own ``get_params``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dali_multicrop.draws import ATTEMPTS
from dali_multicrop.windows import crop_windows, windows_to_outputs


def reference_window(height: int, width: int, draws: np.ndarray, ratio: tuple[float, float]) -> tuple[int, ...]:
    """torchvision's ``RandomResizedCrop.get_params``, one crop, reading its random numbers from ``draws``
    (``[ATTEMPTS + 1, 2]``: (area fraction, aspect ratio) per attempt, then (u_y, u_x))."""
    area = height * width
    for k in range(ATTEMPTS):
        target_area = area * float(draws[k, 0])
        aspect_ratio = float(draws[k, 1])
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = min(int(float(draws[ATTEMPTS, 0]) * (height - h + 1)), height - h)
            j = min(int(float(draws[ATTEMPTS, 1]) * (width - w + 1)), width - w)
            return i, j, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    w, h = max(w, 1), max(h, 1)  # where torchvision's fallback would be empty (a 1x1 image), one pixel
    return (height - h) // 2, (width - w) // 2, h, w


def random_draws(rng: np.random.Generator, shape: tuple[int, ...], scale, ratio) -> np.ndarray:
    out = np.empty((*shape, ATTEMPTS + 1, 2), dtype=np.float32)
    out[..., :ATTEMPTS, 0] = rng.uniform(*scale, (*shape, ATTEMPTS))
    out[..., :ATTEMPTS, 1] = np.exp(rng.uniform(*np.log(ratio), (*shape, ATTEMPTS)))
    out[..., ATTEMPTS, :] = rng.random((*shape, 2))
    return out


@pytest.mark.parametrize("scale,ratio", [((0.05, 0.4), (3 / 4, 4 / 3)), ((0.4, 1.0), (3 / 4, 4 / 3)),
                                         ((0.9, 1.0), (0.5, 2.0)), ((0.3, 1.0), (2.5, 3.0))])
def test_equals_reference_on_the_same_draws(scale, ratio):
    rng = np.random.default_rng(0)
    # ordinary, very wide, very tall and tiny images: every fallback branch and the 1-pixel edges
    hw = np.array([[375, 500], [500, 375], [20, 400], [400, 20], [3, 4], [1, 1], [224, 224], [7, 300]] * 40)
    n = 3
    draws = random_draws(rng, (len(hw), n), scale, ratio)
    bounds = np.array([ratio] * n)
    got = crop_windows(hw, draws, bounds)
    assert got.shape == (len(hw), n, 4) and np.array_equal(got, np.rint(got))  # whole pixels
    for b, (h, w) in enumerate(hw):
        for c in range(n):
            assert tuple(got[b, c]) == reference_window(int(h), int(w), draws[b, c], ratio), (b, c, h, w)
    y0, x0, hh, ww = np.moveaxis(got, -1, 0)
    assert np.all((y0 >= 0) & (x0 >= 0) & (hh >= 1) & (ww >= 1))
    assert np.all((y0 + hh <= hw[:, None, 0]) & (x0 + ww <= hw[:, None, 1]))


def test_position_draw_of_one_stays_inside():
    draws = np.zeros((1, 1, ATTEMPTS + 1, 2), dtype=np.float32)
    draws[..., :ATTEMPTS, :] = 0.25, 1.0
    draws[..., ATTEMPTS, :] = 1.0  # a float32 draw rounded up to 1.0
    y0, x0, h, w = crop_windows(np.array([[100, 100]]), draws, np.array([[0.75, 4 / 3]]))[0, 0]
    assert (y0 + h, x0 + w) == (100, 100)


def test_distribution_matches_torchvision_get_params():
    from torchvision.transforms import RandomResizedCrop

    height, width, scale, ratio, count = 60, 300, (0.3, 1.0), (3 / 4, 4 / 3), 6000
    torch.manual_seed(0)
    image = torch.empty(3, height, width)
    theirs = np.array([RandomResizedCrop.get_params(image, list(scale), list(ratio)) for _ in range(count)])
    draws = random_draws(np.random.default_rng(1), (count, 1), scale, ratio)
    ours = crop_windows(np.array([[height, width]] * count), draws, np.array([ratio]))[:, 0]
    # this wide image rejects many attempts: the fallback's share must match too
    for k, what in enumerate(("top", "left", "height", "width")):
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            a, b = np.quantile(theirs[:, k], q), np.quantile(ours[:, k], q)
            assert abs(a - b) <= 0.04 * max(height, width), f"{what} quantile {q}: torchvision {a}, ours {b}"
    fallback = lambda w: np.mean((w[:, 2] == height) & (w[:, 3] == round(height * ratio[1])))
    assert abs(fallback(theirs) - fallback(ours)) < 0.02


def test_outputs_flip_the_resize_region_not_the_box():
    windows = np.array([[[10, 20, 30, 40], [0, 0, 5, 8]]])  # (y0, x0, h, w)
    rois, boxes = windows_to_outputs(windows, np.array([[100, 200]]), np.array([[True, False]]))
    assert rois.shape == (1, 4, 2) and boxes.shape == (1, 2, 4)
    np.testing.assert_array_equal(rois[0], [[10, 60], [40, 20], [0, 0], [5, 8]])  # crop 0: x start/end swapped
    np.testing.assert_allclose(boxes[0], [[0.1, 0.1, 0.3, 0.4], [0.0, 0.0, 0.04, 0.05]], rtol=1e-6)
