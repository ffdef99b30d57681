"""The batch's draws: keyed and reproducible, drawn as the recipe says (the crop step's own, from the keys): the colour
rows as torchvision's ``ColorJitter`` and ``RandomGrayscale`` draw them (the operations themselves:
``tests/test_pil_colour.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dali_multicrop import ColorJitter, CropGroup, MultiCropSpec
from dali_multicrop.step.draws import NO_BLUR_SIGMA, SOLARIZE_OFFSET, batch_keys, draw_batch, epoch_key
from dali_multicrop.pixels.crop_colour import colour_crop
from dali_multicrop.pixels.pil_colour import ROW_FIELDS, ROW_GRAY, ROW_ORDER, ROW_SHIFT
from dali_multicrop.recipes.presets import load_preset

OFF = ColorJitter(probability=0.0)


def test_same_key_same_draws_other_keys_differ():
    spec = load_preset("dino")
    a = draw_batch(spec, batch_keys(epoch_key(3, 1, 5), 7, 16))
    b = draw_batch(spec, batch_keys(epoch_key(3, 1, 5), 7, 16))
    for field in ("keys", "flips", "colour", "blur_sigma", "solarize"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for seed, shard, epoch, batch in [(4, 1, 5, 7), (3, 2, 5, 7), (3, 1, 6, 7), (3, 1, 5, 8), (2**32 + 3, 1, 5, 7)]:
        other = draw_batch(spec, batch_keys(epoch_key(seed, shard, epoch), batch, 16))
        assert not np.isin(a.keys, other.keys).any(), (seed, shard, epoch, batch)
        assert not np.array_equal(a.colour, other.colour), (seed, shard, epoch, batch)


def test_every_sample_of_an_epoch_has_its_own_key_and_the_keys_bits_are_fair():
    key = epoch_key(0, 0, 0)
    keys = np.concatenate([batch_keys(key, b, 256) for b in range(200)])
    assert len(np.unique(keys)) == len(keys)
    bits = (keys[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 4 * math.sqrt(0.25 / len(keys)))  # every bit a fair coin
    with pytest.raises(ValueError, match="batch must be in"):
        batch_keys(key, -1, 4)


def test_shapes_and_rates_follow_the_recipe():
    spec = load_preset("dino")  # 1x224 always blurred, 1x224 blur 0.1 + solarize 0.2, 8x96 blur 0.5
    d = draw_batch(spec, batch_keys(epoch_key(0, 0, 0), 0, 4000))
    n = spec.num_crops
    assert d.keys.shape == (4000,) and d.keys.dtype == np.uint64
    assert d.flips.shape == (4000, n) and d.colour.shape == (4000, n, ROW_FIELDS)
    blurred = d.blur_sigma[..., 0] > NO_BLUR_SIGMA
    band = lambda p, k: 4 * math.sqrt(p * (1 - p) / k)
    assert blurred[:, 0].all()
    assert abs(blurred[:, 1].mean() - 0.1) < band(0.1, 4000)
    assert abs(blurred[:, 2:].mean() - 0.5) < band(0.5, 4000 * 8)
    assert d.blur_sigma[blurred].min() >= 0.1 and d.blur_sigma[blurred].max() <= 2.0
    solar = d.solarize[..., 0] == SOLARIZE_OFFSET
    assert not solar[:, 0].any() and not solar[:, 2:].any()
    assert abs(solar[:, 1].mean() - 0.2) < band(0.2, 4000)
    assert abs(d.flips.mean() - 0.5) < band(0.5, 4000 * n)
    assert len(np.unique(d.keys)) == 4000


def jittered(jitter: ColorJitter, count: int, seed: int, grayscale_prob: float = 0.0) -> np.ndarray:
    """The colour rows (float32 ``[count, ROW_FIELDS]``) the crop step draws for ``count`` crops of one group with
    ``jitter``."""
    group = CropGroup(count=1, size=32, scale=(0.5, 1.0), color_jitter=jitter, grayscale_prob=grayscale_prob)
    return draw_batch(MultiCropSpec((group,)), batch_keys(epoch_key(seed, 0, 0), 0, count)).colour[:, 0]


def applied(rows: np.ndarray) -> np.ndarray:
    """Which rows jitter at all (a factor other than 1, or a hue shift)."""
    return np.any(rows[:, :3] != 1, axis=1) | (rows[:, ROW_SHIFT] >= 0)


def test_a_crop_not_jittered_nor_grey_keeps_its_pixels():
    rows = jittered(OFF, 50, 0)
    assert np.all(rows[:, :3] == 1) and np.all(rows[:, ROW_SHIFT] == -1) and np.all(rows[:, ROW_GRAY] == 0)
    assert np.all(rows[:, ROW_ORDER:ROW_ORDER + 4] == np.arange(4))
    crop = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    out = np.empty_like(crop)
    colour_crop(out, crop, rows[0])
    np.testing.assert_array_equal(out, crop)


def test_the_factors_are_colorjitters_uniform_independent_draws():
    rows = jittered(ColorJitter(0.8, 0.4, 0.4, 0.2, 0.1), 4000, 3, grayscale_prob=0.2)
    on = applied(rows)
    assert abs(on.mean() - 0.8) < 4 * math.sqrt(0.16 / 4000)
    assert abs(rows[:, ROW_GRAY].mean() - 0.2) < 4 * math.sqrt(0.16 / 4000)
    for field, low, high in ((0, 0.6, 1.4), (1, 0.6, 1.4), (2, 0.8, 1.2)):  # uniform in ColorJitter's range
        values = rows[on, field]
        assert low <= values.min() and values.max() <= high
        counts = np.histogram(values, bins=8, range=(low, high))[0]
        expected = on.sum() / 8
        assert ((counts - expected) ** 2 / expected).sum() < 24.3, counts  # chi-square, 7 dof, p = 0.001
    assert np.all(rows[~on, :3] == 1) and np.all(rows[~on, ROW_SHIFT] == -1)
    assert abs(np.corrcoef(rows[on, 0], rows[on, 1])[0, 1]) < 0.1  # the stream's draws are independent
    assert abs(np.corrcoef(rows[on, 2], rows[on, ROW_SHIFT])[0, 1]) < 0.1


def test_the_hue_shift_is_torchvisions_int_of_a_uniform_factor_times_255():
    """torchvision adds ``int(h * 255)`` (toward zero) to Pillow's uint8 hue, ``h`` uniform in [-0.1, 0.1]: shifts
    -25..25 modulo 256, 0 twice as likely as the others (h * 255 in (-1, 1)), +-25 half as likely."""
    rows = jittered(ColorJitter(1.0, 0.0, 0.0, 0.0, 0.1), 20000, 5)
    shift = rows[:, ROW_SHIFT].astype(int)
    signed = np.where(shift < 128, shift, shift - 256)
    assert signed.min() == -25 and signed.max() == 25
    width = np.ones(51)
    width[25], width[0], width[50] = 2.0, 0.5, 0.5
    expected = len(signed) * width / width.sum()
    counts = np.bincount(signed + 25, minlength=51)
    assert ((counts - expected) ** 2 / expected).sum() < 86.7, counts  # chi-square, 50 dof, p = 0.001
    assert np.all(jittered(ColorJitter(1.0, 0.4, 0.4, 0.2, 0.0), 200, 5)[:, ROW_SHIFT] == -1)  # no hue: none


def test_the_order_is_a_uniform_permutation_drawn_per_jittered_crop():
    rows = jittered(ColorJitter(0.5, 0.4, 0.4, 0.2, 0.1), 24000, 7)
    on = applied(rows)
    orders = rows[:, ROW_ORDER:ROW_ORDER + 4].astype(int)
    assert np.all(np.sort(orders, axis=1) == np.arange(4))
    assert np.all(orders[~on] == np.arange(4))
    codes = orders[on] @ np.array([64, 16, 4, 1])
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 24
    expected = on.sum() / 24
    assert ((counts - expected) ** 2 / expected).sum() < 49.7, counts  # chi-square, 23 dof, p = 0.001


def test_draws_do_not_depend_on_the_spec_order_of_other_groups():
    base = MultiCropSpec.parse("2x224,6x96")
    a = draw_batch(base, batch_keys(epoch_key(0, 0, 0), 0, 8))
    b = draw_batch(base.with_local(blur_prob=0.5), batch_keys(epoch_key(0, 0, 0), 0, 8))
    np.testing.assert_array_equal(a.keys, b.keys)  # the keys unchanged
    # every draw has its own counter: the flips and colours do not move when the blur is switched on
    np.testing.assert_array_equal(a.flips, b.flips)
    np.testing.assert_array_equal(a.colour, b.colour)


def test_a_crops_parameters_do_not_depend_on_the_crops_after_it():
    few = draw_batch(MultiCropSpec.parse("2x224,2x96"), batch_keys(epoch_key(1, 0, 0), 0, 64))
    many = draw_batch(MultiCropSpec.parse("2x224,10x96"), batch_keys(epoch_key(1, 0, 0), 0, 64))
    np.testing.assert_array_equal(few.flips, many.flips[:, :4])
    np.testing.assert_array_equal(few.colour, many.colour[:, :4])
    assert not np.array_equal(many.flips[:, 4:8], many.flips[:, :4])  # and the crops' draws differ


def test_draw_batch_gives_the_steps_parameters_for_images_of_any_size():
    """draw_batch draws no windows: its colour rows, blur sigmas and solarisation equal the whole step's on images
    of random sizes (a crop's parameters do not depend on its image)."""
    from dali_multicrop.step import crop_constants, step_outputs

    spec = load_preset("dino")
    keys = batch_keys(epoch_key(3, 0, 1), 2, 64)
    shapes = np.random.default_rng(0).integers(16, 900, (64, 2))
    whole = step_outputs(crop_constants(spec), keys, shapes)
    draws = draw_batch(spec, keys)
    assert np.array_equal(draws.colour, whole.colour)
    assert np.array_equal(draws.blur_sigma, whole.blur) and np.array_equal(draws.solarize, whole.solarize)
    assert len(np.unique(draws.blur_sigma)) > 10  # the draws differ between crops
