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

from dali_multicrop.step.layout import ATTEMPTS
from dali_multicrop.recipes.spec import CropGroup, MultiCropSpec
from dali_multicrop.step import FIELDS, crop_constants, crop_flips, step_outputs
from dali_multicrop.step.windows import crop_windows, window_candidates


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
    # the crop step's own draws (from per-sample keys), not numpy's
    one = crop_constants(MultiCropSpec((CropGroup(count=1, size=32, scale=scale, ratio=ratio),)))
    draws = window_candidates(one, np.random.default_rng(1).integers(0, 2**64, count, dtype=np.uint64))
    ours = crop_windows(np.array([[height, width]] * count), draws, np.array([ratio]))[:, 0]
    # this wide image rejects many attempts: the fallback's share must match too
    for k, what in enumerate(("top", "left", "height", "width")):
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            a, b = np.quantile(theirs[:, k], q), np.quantile(ours[:, k], q)
            assert abs(a - b) <= 0.04 * max(height, width), f"{what} quantile {q}: torchvision {a}, ours {b}"
    fallback = lambda w: np.mean((w[:, 2] == height) & (w[:, 3] == round(height * ratio[1])))
    assert abs(fallback(theirs) - fallback(ours)) < 0.02


def test_rows_flip_the_resize_region_not_the_box():
    # crops whose every candidate is the whole image (scale 1, ratio 1, a square image): known windows, any key;
    # crop 0 always mirrored, crop 1 never
    whole = dict(count=1, size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    spec = MultiCropSpec((CropGroup(**whole, flip_prob=1.0), CropGroup(**whole, flip_prob=0.0)))
    constants = crop_constants(spec)
    assert constants.shape == (2, FIELDS)
    keys = np.array([12345], dtype=np.uint64)
    assert crop_flips(constants, keys).tolist() == [[True, False]]
    rows = step_outputs(constants, keys, np.array([[100, 100, 3]])).rows
    assert rows.shape == (1, 8, 2) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[0, :4], [[0, 100], [100, 0], [0, 0], [100, 100]])  # crop 0: x start/end swapped
    np.testing.assert_array_equal(rows[0, 4:].reshape(2, 4), [[0, 0, 1, 1], [0, 0, 1, 1]])


def test_rows_are_the_windows_of_every_crop():
    """The graph's rows and the Python windows are one kernel: the rows' regions and boxes are the windows',
    evaluation crops included."""
    spec = MultiCropSpec((CropGroup(count=2, size=224, scale=(0.3, 1.0)),
                          CropGroup(count=1, size=224, scale=(0.3, 1.0), center=0.875),
                          CropGroup(count=3, size=96, scale=(0.05, 0.4), ratio=(0.5, 2.0))), num_global_groups=2)
    rng = np.random.default_rng(3)
    hw = np.concatenate([rng.integers(1, 700, (200, 2)), [[1, 1], [3, 4], [20, 400], [400, 20]]])
    keys = rng.integers(0, 2**64, len(hw), dtype=np.uint64)
    constants = crop_constants(spec)
    flips = crop_flips(constants, keys)
    assert 0.4 < flips.mean() < 0.6
    windows = crop_windows(hw, window_candidates(constants, keys), constants[:, 4:6], constants[:, 6], constants[:, 7])
    rows = step_outputs(constants, keys, hw).rows
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
    code = ("import numpy as np; from dali_multicrop.step import windows as w, window_kernel as k; "
            "from dali_multicrop.step.layout import ATTEMPTS; "
            "print(type(k.window._cache).__name__, w.crop_windows(np.array([[10, 10]]), "
            "np.full((1, 1, ATTEMPTS + 1, 2), 0.5), np.array([[0.75, 4 / 3]])).tolist())")
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "_IPythonCacheLocator"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "NullCache" and "[[[0.0,3.0,10.0,5.0]]]" in done.stdout.replace(" ", "")


def _chi2_uniform(values: np.ndarray, bins: int = 20) -> float:
    """Pearson's statistic of ``values`` in [0, 1) against the uniform distribution over ``bins`` equal bins."""
    counts = np.bincount(np.minimum((values * bins).astype(np.int64), bins - 1), minlength=bins)
    expected = len(values) / bins
    return float(((counts - expected) ** 2 / expected).sum())


def test_the_steps_draws_are_uniform_in_each_crops_ranges_and_independent():
    """The counter-based draws (:func:`window_candidates`, the kernel's own): area fractions uniform in each
    group's scale, log aspect ratios uniform in its log ratio range, positions uniform in [0, 1); no correlation
    between attempts, crops or samples. Pearson's statistic over 20 bins (19 degrees of freedom) stays below 45
    (p = 0.0007 for a uniform source; at these counts a bin half a percentage point too likely gives 160 or more)."""
    spec = MultiCropSpec((CropGroup(count=2, size=224, scale=(0.4, 1.0)),
                          CropGroup(count=6, size=96, scale=(0.05, 0.4), ratio=(0.5, 2.0))))
    keys = np.random.default_rng(7).integers(0, 2**64, 20000, dtype=np.uint64)
    constants = crop_constants(spec)
    draws = window_candidates(constants, keys)
    assert draws.shape == (20000, 8, ATTEMPTS + 1, 2) and draws.dtype == np.float64
    for crops, (low, high), (r_low, r_high) in ((slice(0, 2), (0.4, 1.0), (3 / 4, 4 / 3)),
                                                 (slice(2, 8), (0.05, 0.4), (0.5, 2.0))):
        area, ratio = draws[:, crops, :ATTEMPTS, 0], draws[:, crops, :ATTEMPTS, 1]
        assert area.min() >= low and area.max() < high
        assert ratio.min() >= r_low * (1 - 1e-12) and ratio.max() < r_high * (1 + 1e-12)
        assert _chi2_uniform(((area - low) / (high - low)).ravel()) < 45
        log = (np.log(ratio) - math.log(r_low)) / (math.log(r_high) - math.log(r_low))
        assert _chi2_uniform(np.clip(log, 0, 1 - 1e-12).ravel()) < 45
    position = draws[:, :, ATTEMPTS]
    assert position.min() >= 0 and position.max() < 1 and _chi2_uniform(position.ravel()) < 45
    u = (draws[:, 2:, :ATTEMPTS, 0] - 0.05) / 0.35
    for a, b in ((u[:, 0, 0], u[:, 0, 1]), (u[:, 0, 0], u[:, 1, 0]), (u[:-1, 0, 0], u[1:, 0, 0]),
                 (position[:, 0, 0], position[:, 0, 1]), (u[:, 0, 0], position[:, 2, 0])):
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.03  # 4 standard errors at 20000 pairs
    # keyed: the same keys, the same draws; one key changed changes that sample's only
    again = window_candidates(constants, keys)
    np.testing.assert_array_equal(draws, again)
    other = keys.copy()
    other[5] += np.uint64(1)
    changed = window_candidates(constants, other)
    assert not np.isin(changed[5], draws[5]).any() and np.array_equal(np.delete(changed, 5, 0), np.delete(draws, 5, 0))


def test_a_crops_draws_do_not_depend_on_the_crops_after_it():
    """Crop ``c`` reads its own stretch of the sample's stream: the globals draw the same whatever the locals."""
    keys = np.arange(1, 65, dtype=np.uint64)
    few = window_candidates(crop_constants(MultiCropSpec.parse("2x224,2x96")), keys)
    many = window_candidates(crop_constants(MultiCropSpec.parse("2x224,10x96")), keys)
    np.testing.assert_array_equal(few, many[:, :4])


def test_the_graphs_boxes_are_the_windows_of_the_feeds_keys():
    """End to end on the CPU graph: every batch's boxes are, to float32, the windows Python computes from the
    feed's keys for that batch (``draw_batch`` keyed on seed, shard, epoch and batch) and the images' sizes."""
    from dali_multicrop import ArraySource, DaliMultiCropLoader
    from dali_multicrop.step.draws import batch_keys, draw_batch, epoch_key

    rng = np.random.default_rng(0)
    shapes = [(60, 80), (45, 30), (20, 200), (64, 64)] * 3
    images = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in shapes]
    spec = MultiCropSpec.parse("2x32,3x16")
    loader = DaliMultiCropLoader(ArraySource(images, np.zeros(len(images), dtype=np.int64)), crops=spec,
                                 batch_size=4, device="cpu", shuffle=False, seed=9)
    constants = crop_constants(spec)
    for b, batch in enumerate(loader):
        keys = draw_batch(spec, batch_keys(epoch_key(9, 0, 0), b, 4)).keys
        hw = np.array([shapes[i] for i in batch.indices.tolist()])
        y0, x0, h, w = np.moveaxis(crop_windows(hw, window_candidates(constants, keys), constants[:, 4:6]), -1, 0)
        want = np.stack([x0 / hw[:, None, 1], y0 / hw[:, None, 0], (x0 + w) / hw[:, None, 1],
                         (y0 + h) / hw[:, None, 0]], axis=-1).astype(np.float32)
        np.testing.assert_array_equal(batch.boxes.numpy(), want)


def test_every_bit_of_a_key_counts():
    """Keys differing in any one bit, the top and the bottom included, draw different tries, and equal keys the
    same (the graph gets the keys as uint64: the end-to-end test above draws keys with their top bits set)."""
    constants = crop_constants(MultiCropSpec.parse("1x224"))
    base = np.uint64(0x8000_0001_8000_0001)
    keys = np.array([base] + [base ^ (np.uint64(1) << np.uint64(b)) for b in range(64)] + [base], dtype=np.uint64)
    draws = window_candidates(constants, keys)[:, 0, 0, 0]
    assert draws[0] == draws[-1] and len(np.unique(draws[:-1])) == 65
