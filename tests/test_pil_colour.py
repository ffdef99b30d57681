"""torchvision's colour operations on PIL images, reproduced bit for bit by the compiled kernels of
dali_multicrop.pixels.pil_colour (issue #29): Pillow's luma, HSV conversions and blend over every value they can take,
and each operation and the whole ColorJitter (random order, grayscale) on crops of natural photographs: equal, value for
value, to torchvision's own output."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
from PIL import Image

from dali_multicrop.pixels import crop_colour as cc
from dali_multicrop.pixels import pil_colour as pc

tvF = pytest.importorskip("torchvision.transforms.functional")
from torchvision.transforms import ColorJitter, RandomGrayscale  # noqa: E402


@pytest.fixture(scope="module")
def every_colour() -> np.ndarray:
    """All 2**24 RGB values, [N, 3] uint8."""
    axis = np.arange(256, dtype=np.uint8)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


@numba.njit
def _per_pixel(values: np.ndarray, kind: int) -> np.ndarray:
    out = np.empty_like(values)
    for i in range(values.shape[0]):
        a, b, c = values[i, 0], values[i, 1], values[i, 2]
        if kind == 0:
            g = pc.luma(a, b, c)
            out[i, 0], out[i, 1], out[i, 2] = g, g, g
        elif kind == 1:
            out[i, 0], out[i, 1], out[i, 2] = pc.rgb_to_hsv(a, b, c)
        elif kind == 3:  # the CPU graph's: read from tables made of rgb_to_hsv
            out[i, 0], out[i, 1], out[i, 2] = cc.fast_rgb_to_hsv(a, b, c)
        elif kind == 4:  # the CPU graph's: the hue's and p's parts read from tables made of hsv_to_rgb's own
            out[i, 0], out[i, 1], out[i, 2] = cc.fast_hsv_to_rgb(a, b, c)
        else:
            out[i, 0], out[i, 1], out[i, 2] = pc.hsv_to_rgb(a, b, c)
    return out


def pillow(values: np.ndarray, mode: str, to: str) -> np.ndarray:
    out = np.asarray(Image.fromarray(values.reshape(4096, 4096, 3), mode).convert(to))
    return (out if out.ndim == 3 else np.repeat(out[..., None], 3, -1)).reshape(-1, 3)


@pytest.mark.parametrize("kind, mode, to", [(0, "RGB", "L"), (1, "RGB", "HSV"), (2, "HSV", "RGB"), (3, "RGB", "HSV"),
                                           (4, "HSV", "RGB")])
def test_luma_and_the_hsv_conversions_are_pillows_for_every_value(every_colour, kind, mode, to):
    mine = _per_pixel(every_colour, kind)
    theirs = pillow(every_colour, mode, to)
    wrong = (mine != theirs).any(1)
    assert not wrong.any(), (int(wrong.sum()), every_colour[wrong][:3], theirs[wrong][:3], mine[wrong][:3])


@numba.njit
def _blend_all(alpha: np.float32) -> np.ndarray:
    out = np.empty((256, 256), np.uint8)
    for a in range(256):
        for b in range(256):
            out[a, b] = pc.blend(a, b, alpha)
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.37, 0.6, 0.999, 1.0, 1.0001, 1.2345, 1.4, 1.8, 2.0])
def test_blend_is_pillows_for_every_pair(alpha):
    first = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 256, 1)
    second = first.T.copy()
    theirs = np.asarray(Image.blend(Image.fromarray(first), Image.fromarray(second), alpha))
    np.testing.assert_array_equal(_blend_all(np.float32(alpha)), theirs)


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    """Crops of natural photographs (scikit-image's), or of the built-in sample where it is missing."""
    from dali_multicrop.fidelity.table import natural_photos, photo_crops

    try:
        photos = natural_photos()
    except ValueError:
        from dali_multicrop.sample_data import sample_image
        import io

        photos = [np.asarray(Image.open(io.BytesIO(sample_image(i))).convert("RGB")) for i in range(6)]
    return photo_crops(photos)


OPERATIONS = {"brightness": (cc.adjust_brightness, tvF.adjust_brightness, [0.6, 0.83, 1.0, 1.17, 1.4]),
              "contrast": (cc.adjust_contrast, tvF.adjust_contrast, [0.6, 0.77, 1.0, 1.29, 1.4]),
              "saturation": (cc.adjust_saturation, tvF.adjust_saturation, [0.0, 0.8, 1.0, 1.13, 1.2]),
              "hue": (cc.adjust_hue, tvF.adjust_hue, [-0.1, -0.037, 0.0, 0.004, 0.061, 0.1, 0.5])}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_each_operation_is_torchvisions_on_pil_value_for_value(crops, name):
    mine_op, theirs_op, factors = OPERATIONS[name]
    for crop in crops:
        for factor in factors:
            mine = crop.copy()
            mine_op(mine, pc.hue_shift(factor) if name == "hue" else np.float32(factor))
            theirs = np.asarray(theirs_op(Image.fromarray(crop), factor))
            np.testing.assert_array_equal(mine, theirs, err_msg=f"{name} {factor}")


def test_grayscale_is_torchvisions_on_pil(crops):
    for crop in crops:
        mine = crop.copy()
        cc.to_grayscale(mine)
        np.testing.assert_array_equal(mine, np.asarray(tvF.rgb_to_grayscale(Image.fromarray(crop), 3)))


@pytest.mark.parametrize("strengths", [(0.4, 0.4, 0.2, 0.1), (0.8, 0.8, 0.8, 0.2), (0.4, 0.4, 0.2, 0.0)])
def test_the_whole_jitter_in_its_random_order_then_grayscale_is_torchvisions(crops, strengths):
    """ColorJitter (DINO's strengths, SwAV's, and one without hue) then RandomGrayscale(0.5), as DINO composes them,
    on every crop 6 times: the parameters taken from the transforms' own draws (same seed), the kernels' output equal
    to torchvision's on PIL, value for value."""
    jitter, gray = ColorJitter(*strengths), RandomGrayscale(0.5)
    for k, crop in enumerate(crops):
        for repeat in range(6):
            torch.manual_seed(1000 * k + repeat)
            theirs = np.asarray(gray(jitter(Image.fromarray(crop))))
            torch.manual_seed(1000 * k + repeat)
            order, b, c, s, h = ColorJitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation,
                                                       jitter.hue)
            grayscale = torch.rand(1) < 0.5
            factors = np.float32([b if b is not None else 1.0, c if c is not None else 1.0,
                                  s if s is not None else 1.0, 0.0])
            mine = crop.copy()
            cc.jitter(mine, factors, order.numpy().astype(np.int64), -1 if h is None else pc.hue_shift(h),
                      bool(grayscale))
            np.testing.assert_array_equal(mine, theirs, err_msg=f"crop {k}, repeat {repeat}")
