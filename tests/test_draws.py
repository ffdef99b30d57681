"""The batch's draws: keyed and reproducible, drawn as the recipe says (the crop step's own, from the keys), and
colour transforms equal to the parts they are made of."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dali_multicrop import ColorJitter, CropGroup, MultiCropSpec
from dali_multicrop.draws import (LUMA, NO_BLUR_SIGMA, SOLARIZE_OFFSET, ColourFactors, batch_keys, colour_blocks,
                                  draw_batch, epoch_key)
from dali_multicrop.presets import load_preset
from dali_multicrop.step import colour_factors, crop_constants

OFF = ColorJitter(probability=0.0)


def apply(block: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """``[M | T]`` blocks ``[K, 3, 4]`` applied to colours ``[K, 3]`` (0-255), unclamped."""
    return np.einsum("kij,kj->ki", block[..., :3], rgb) + block[..., 3]


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
    assert d.flips.shape == (4000, n) and d.colour.shape == (4000, n, 3, 4)
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


def factors(count: int, **values) -> ColourFactors:
    neutral = dict(brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0, brightness_last=False, gray=False)
    neutral.update(values)
    return ColourFactors(**{k: np.broadcast_to(np.asarray(v), (count,)) for k, v in neutral.items()})


def jittered(jitter: ColorJitter, count: int, seed: int,
             grayscale_prob: float = 0.0) -> tuple[ColourFactors, np.ndarray]:
    """The factors and float32 blocks the crop step draws for ``count`` crops of one group with ``jitter``."""
    group = CropGroup(count=1, size=32, scale=(0.5, 1.0), color_jitter=jitter, grayscale_prob=grayscale_prob)
    spec = MultiCropSpec((group,))
    d = draw_batch(spec, batch_keys(epoch_key(seed, 0, 0), 0, count))
    f = colour_factors(crop_constants(spec), d.keys)
    return ColourFactors(*(getattr(f, k)[:, 0] for k in ColourFactors.__dataclass_fields__)), d.colour[:, 0]


def test_neutral_factors_are_exactly_the_identity():
    assert np.array_equal(colour_blocks(factors(5)), np.broadcast_to(np.eye(3, 4), (5, 3, 4)))
    _, block = jittered(OFF, 50, 0)
    assert np.array_equal(block, np.broadcast_to(np.eye(3, 4), (50, 3, 4)))


def test_the_steps_blocks_are_the_blocks_of_its_factors():
    f, block = jittered(ColorJitter(0.8, 0.4, 0.4, 0.2, 0.1), 2000, 3, grayscale_prob=0.2)
    np.testing.assert_array_equal(block, colour_blocks(f).astype(np.float32))
    assert abs(f.gray.mean() - 0.2) < 4 * math.sqrt(0.16 / 2000)
    on = f.brightness != 1
    assert abs(on.mean() - 0.8) < 4 * math.sqrt(0.16 / 2000)
    for values, low, high in ((f.brightness, 0.6, 1.4), (f.contrast, 0.6, 1.4), (f.saturation, 0.8, 1.2),
                              (f.hue, -0.1, 0.1)):  # uniform in ColorJitter's range where jittered
        assert low <= values[on].min() and values[on].max() <= high
        counts = np.histogram(values[on], bins=8, range=(low, high))[0]
        expected = on.sum() / 8
        assert ((counts - expected) ** 2 / expected).sum() < 24.3, counts  # chi-square, 7 dof, p = 0.001
    assert np.all(f.contrast[~on] == 1) and np.all(f.saturation[~on] == 1) and np.all(f.hue[~on] == 0)
    # the factors are independent of each other (the stream's draws are)
    assert abs(np.corrcoef(f.brightness[on], f.contrast[on])[0, 1]) < 0.1
    assert abs(np.corrcoef(f.saturation[on], f.hue[on])[0, 1]) < 0.1


RGB = np.random.default_rng(1).uniform(90, 160, (40, 3))  # mid-range colours: nothing clamps at factors <= 1.5


def torchvision_colour(kernel, rgb: np.ndarray, *args) -> np.ndarray:
    image = torch.tensor(rgb / 255.0)[:, :, None, None]
    return kernel(image, *args)[..., 0, 0].numpy() * 255.0


@pytest.mark.parametrize("factor", [0.5, 0.9, 1.3, 1.5])
def test_brightness_saturation_grayscale_equal_torchvision(factor):
    from torchvision.transforms.v2 import functional as F

    n = len(RGB)
    np.testing.assert_allclose(apply(colour_blocks(factors(n, brightness=factor)), RGB),
                               torchvision_colour(F.adjust_brightness, RGB, factor), atol=1e-6)
    np.testing.assert_allclose(apply(colour_blocks(factors(n, saturation=factor)), RGB),
                               torchvision_colour(F.adjust_saturation, RGB, factor), atol=1e-6)
    np.testing.assert_allclose(apply(colour_blocks(factors(n, gray=True)), RGB),
                               torchvision_colour(F.rgb_to_grayscale, RGB, 3), atol=1e-6)
    # grayscale after a jitter: torchvision's chain, in the order brightness, saturation, grayscale
    rgb = RGB * 0.5 + 45  # 75..140: nothing clamps on the way
    ours = apply(colour_blocks(factors(n, brightness=factor, saturation=1.2, gray=True)), rgb)
    image = torch.tensor(rgb / 255.0)[:, :, None, None]
    theirs = F.rgb_to_grayscale(F.adjust_saturation(F.adjust_brightness(image, factor), 1.2), 3)[..., 0, 0]
    np.testing.assert_allclose(ours, theirs.numpy() * 255.0, atol=1e-6)


@pytest.mark.parametrize("brightness_last", [False, True])
def test_contrast_pivots_on_mid_grey_in_either_order(brightness_last):
    n = len(RGB)
    out = apply(colour_blocks(factors(n, brightness=1.2, contrast=0.7, brightness_last=brightness_last)), RGB)
    want = 1.2 * (128 + 0.7 * (RGB - 128)) if brightness_last else 128 + 0.7 * (1.2 * RGB - 128)
    np.testing.assert_allclose(out, want, atol=1e-6)


@pytest.mark.parametrize("hue", [-0.1, -0.02, 0.02, 0.1])
def test_hue_keeps_luma_and_greys_and_shifts_hsv_hue_by_about_as_much(hue):
    import colorsys

    block = colour_blocks(factors(4, hue=hue))
    colours = np.array([[200.0, 60.0, 60.0], [60.0, 180.0, 80.0], [70.0, 90.0, 200.0], [150.0, 110.0, 90.0]])
    out = apply(block, colours)
    np.testing.assert_allclose(out @ LUMA, colours @ LUMA, atol=1e-6)
    np.testing.assert_allclose(apply(block, np.full((4, 3), 90.0)), 90.0, atol=1e-6)
    # torchvision shifts the HSV hue by exactly ``hue`` turns; turning the YIQ chroma plane comes close
    hsv_hue = lambda rgb: np.array([colorsys.rgb_to_hsv(*(c / 255.0))[0] for c in rgb])
    shift = (hsv_hue(out) - hsv_hue(colours) + 0.5) % 1.0 - 0.5
    assert np.all(0.5 < shift / hue) and np.all(shift / hue < 1.6), shift


def test_order_coin_is_fair_and_only_drawn_for_jittered_crops():
    f, _ = jittered(ColorJitter(0.5, 0.4, 0.4, 0, 0), 20000, 7)
    on = f.brightness != 1
    assert abs(f.brightness_last[on].mean() - 0.5) < 4 * math.sqrt(0.25 / on.sum())
    assert not f.brightness_last[~on].any()
    assert f.brightness[on].min() < 0.62 and f.brightness.max() > 1.38


@pytest.mark.parametrize("probability", [0.3, 0.8])
def test_jitter_probability(probability):
    _, block = jittered(ColorJitter(probability, 0.4, 0, 0, 0), 20000, 8)
    on = ~np.all(block == np.eye(3, 4), axis=(1, 2))
    assert abs(on.mean() - probability) < 4 * math.sqrt(probability * (1 - probability) / 20000)


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
