"""Crop windows: the vectorised RandomResizedCrop equals a one-crop-at-a-time reference of torchvision's algorithm
on the same draws, and its distribution matches torchvision's own ``get_params``."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from dali_multicrop.draws import ATTEMPTS
from dali_multicrop.spec import CropGroup, MultiCropSpec
from dali_multicrop.windows import FIELDS, WindowInput, crop_windows, window_rows


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


def test_rows_flip_the_resize_region_not_the_box():
    # two crops of a 100 x 200 image whose first attempt is (y0, x0, h, w) = (10, 20, 30, 40) and (0, 0, 5, 8)
    spec = MultiCropSpec((CropGroup(count=2, size=32, scale=(0.05, 1.0)),))
    draws = np.zeros((1, 2, ATTEMPTS + 1, 2))
    draws[0, :, 0] = [[1200 / 20000, 40 / 30], [40 / 20000, 8 / 5]]  # area fraction, aspect ratio
    draws[0, :, ATTEMPTS] = [[10.5 / 71, 20.5 / 161], [0.0, 0.0]]  # positions: floor(u * (free + 1))
    packed = WindowInput(spec).pack(draws, np.array([[True, False]]))
    assert packed.shape == (1, 2, FIELDS)
    rows = window_rows(packed, np.array([[100, 200, 3]]))
    assert rows.shape == (1, 8, 2) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[0, :4], [[10, 60], [40, 20], [0, 0], [5, 8]])  # crop 0: x start/end swapped
    np.testing.assert_allclose(rows[0, 4:].reshape(2, 4), [[0.1, 0.1, 0.3, 0.4], [0.0, 0.0, 0.04, 0.05]], rtol=1e-6)


def test_rows_are_the_windows_of_every_crop():
    """The graph's rows and the Python windows are one kernel: the rows' regions and boxes are the windows',
    evaluation crops included."""
    spec = MultiCropSpec((CropGroup(count=2, size=224, scale=(0.3, 1.0)),
                          CropGroup(count=1, size=224, scale=(0.3, 1.0), center=0.875),
                          CropGroup(count=3, size=96, scale=(0.05, 0.4), ratio=(0.5, 2.0))), num_global_groups=2)
    rng = np.random.default_rng(3)
    hw = np.concatenate([rng.integers(1, 700, (200, 2)), [[1, 1], [3, 4], [20, 400], [400, 20]]])
    draws = random_draws(rng, (len(hw), spec.num_crops), (0.05, 1.0), (3 / 4, 4 / 3))
    flips = rng.random((len(hw), spec.num_crops)) < 0.5
    constants = WindowInput(spec).constants
    windows = crop_windows(hw, draws, constants[:, :2], constants[:, 2], constants[:, 3])
    rows = window_rows(WindowInput(spec).pack(draws, flips), hw)
    n = spec.num_crops
    y0, x0, h, w = np.moveaxis(windows, -1, 0)
    start, end = rows[:, 0:2 * n:2], rows[:, 1:2 * n:2]
    np.testing.assert_array_equal(start[..., 0], y0.astype(np.float32))
    np.testing.assert_array_equal(end[..., 0], (y0 + h).astype(np.float32))
    np.testing.assert_array_equal(np.where(flips, end[..., 1], start[..., 1]), x0.astype(np.float32))
    np.testing.assert_array_equal(np.where(flips, start[..., 1], end[..., 1]), (x0 + w).astype(np.float32))
    boxes = rows[:, 2 * n:].reshape(len(hw), n, 4)
    np.testing.assert_array_equal(boxes[..., 0], (x0 / hw[:, None, 1]).astype(np.float32))
    np.testing.assert_array_equal(boxes[..., 3], ((y0 + h) / hw[:, None, 0]).astype(np.float32))


def test_windows_compile_where_no_cache_folder_is_writable(tmp_path):
    """A read-only install and home: Numba finds no folder for its cache (forced here by leaving it only the
    IPython locator, which answers nothing outside IPython); the kernel then compiles in the process instead of
    failing the import."""
    code = ("import numpy as np; from dali_multicrop import windows as w, _window_kernel as k; "
            "print(type(k._window._cache).__name__, w.crop_windows(np.array([[10, 10]]), "
            "np.full((1, 1, w.ATTEMPTS + 1, 2), 0.5), np.array([[0.75, 4 / 3]])).tolist())")
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "_IPythonCacheLocator"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "NullCache" and "[[[0.0,3.0,10.0,5.0]]]" in done.stdout.replace(" ", "")
