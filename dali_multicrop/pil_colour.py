"""torchvision's colour operations as they run on PIL images, bit for bit, as compiled kernels (issue #29).

DINO, DINOv2, iBOT and SwAV apply ``ColorJitter`` and ``RandomGrayscale`` to PIL images, so torchvision hands each
operation to Pillow, which works in uint8 and rounds its own way after every step. These kernels do the same
arithmetic on a uint8 HWC crop, so their output is the reference's exactly (``tests/test_pil_colour.py`` checks
them against torchvision on PIL, value for value, over every RGB colour where a pixel stands alone and over
natural photographs for the rest):

* brightness ``b``: Pillow's blend of a black image and the crop with factor ``b`` (``ImageEnhance.Brightness``);
* contrast ``c``: the blend of a grey image and the crop, the grey being the crop's own mean luma, rounded
  (``ImageEnhance.Contrast``: the mean of the *current* crop, after whatever ran before it);
* saturation ``s``: the blend of the crop's luma and the crop (``ImageEnhance.Color``);
* hue ``h`` (a fraction of a turn): Pillow's RGB to HSV (uint8 channels), the hue channel plus
  ``uint8(int32(h * 255))`` modulo 256, then HSV to RGB (torchvision's ``_functional_pil.adjust_hue``);
* grayscale: the luma, in all three channels (``rgb_to_grayscale(num_output_channels=3)``).

Pillow's blend computes ``in1 + alpha * (in2 - in1)`` in single precision and truncates it to uint8 (clipped to
[0, 255] where ``alpha`` is outside [0, 1]); its luma is ``(19595 R + 38470 G + 7471 B + 2**15) >> 16``.
``ColorJitter`` applies its four operations in a random order drawn per call (``torch.randperm(4)``):
:func:`jitter` takes that order. Plain functions of a pixel or a crop (``njit``), so that the graph's CPU and GPU
operators can be built from the same arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

from ._numba import jit

__all__ = ["BRIGHTNESS", "CONTRAST", "SATURATION", "HUE", "luma", "blend", "rgb_to_hsv", "hsv_to_rgb", "hue_shift",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "to_grayscale", "jitter"]

BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3
"""The operations' ids in an order, as ``ColorJitter.forward`` numbers them (``fn_idx``)."""


@jit
def luma(r: int, g: int, b: int) -> int:
    """Pillow's RGB to L: ``(19595 R + 38470 G + 7471 B + 2**15) >> 16`` (0-255)."""
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


@jit
def blend(in1: int, in2: int, alpha: np.float32) -> int:
    """Pillow's ``Image.blend`` of one value: ``in1 + alpha * (in2 - in1)`` in single precision, truncated to uint8
    (clipped to [0, 255] where ``alpha`` is outside [0, 1], as Pillow extrapolates)."""
    value = np.float32(in1) + alpha * np.float32(in2 - in1)
    if alpha >= 0 and alpha <= 1:
        return int(value)
    if value <= 0:
        return 0
    if value >= 255:
        return 255
    return int(value)


@jit
def rgb_to_hsv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """Pillow's RGB to HSV of one pixel (``Convert.c``'s ``rgb2hsv``), uint8 channels."""
    maxc = max(r, g, b)
    minc = min(r, g, b)
    if minc == maxc:
        return 0, 0, maxc
    cr = np.float32(maxc - minc)
    s = cr / np.float32(maxc)
    rc = np.float32(maxc - r) / cr
    gc = np.float32(maxc - g) / cr
    bc = np.float32(maxc - b) / cr
    if r == maxc:
        h = bc - gc
    elif g == maxc:  # Pillow adds in double precision (a double constant), then keeps the sum in a float
        h = np.float32(2.0 + np.float64(rc) - np.float64(bc))
    else:
        h = np.float32(4.0 + np.float64(gc) - np.float64(rc))
    turn = np.float64(h) / 6.0 + 1.0  # in (0, 2): fmod(turn, 1) is turn - floor(turn)
    hue = np.float32(turn - math.floor(turn))  # Pillow keeps it in a float
    return min(max(int(np.float64(hue) * 255.0), 0), 255), min(max(int(np.float64(s) * 255.0), 0), 255), maxc


@jit
def hsv_to_rgb(h: int, s: int, v: int) -> tuple[int, int, int]:
    """Pillow's HSV to RGB of one pixel (``Convert.c``'s ``hsv2rgb``), uint8 channels."""
    if s == 0:
        return v, v, v
    i = int(math.floor(np.float32(h) * 6.0 / 255.0))
    f = np.float32(np.float32(h) * 6.0 / 255.0 - np.float32(i))
    fs = f * np.float32(s)
    p = min(max(int(round(np.float32(v) * (1.0 - np.float32(s) / 255.0))), 0), 255)
    q = min(max(int(round(np.float32(v) * (1.0 - fs / 255.0))), 0), 255)
    t = min(max(int(round(np.float32(v) * (1.0 - (np.float32(s) - fs) / 255.0))), 0), 255)
    k = i % 6
    if k == 0:
        return v, t, p
    if k == 1:
        return q, v, p
    if k == 2:
        return p, v, t
    if k == 3:
        return p, q, v
    if k == 4:
        return t, p, v
    return v, p, q


def hue_shift(hue: float) -> int:
    """The hue channel's shift for a hue factor (fraction of a turn), as torchvision adds it: the factor times 255
    in double precision, truncated to int32, wrapped to uint8."""
    return int(np.int32(hue * 255)) & 0xFF


@jit
def adjust_brightness(crop: np.ndarray, factor: np.float32) -> None:
    """``ImageEnhance.Brightness(crop).enhance(factor)``, in place on a uint8 HWC crop."""
    height, width, _ = crop.shape
    for y in range(height):
        for x in range(width):
            for c in range(3):
                crop[y, x, c] = blend(0, crop[y, x, c], factor)


@jit
def adjust_contrast(crop: np.ndarray, factor: np.float32) -> None:
    """``ImageEnhance.Contrast(crop).enhance(factor)``, in place: the grey is the crop's mean luma, rounded."""
    height, width, _ = crop.shape
    total = 0
    for y in range(height):
        for x in range(width):
            total += luma(crop[y, x, 0], crop[y, x, 1], crop[y, x, 2])
    grey = int(total / (height * width) + 0.5)
    for y in range(height):
        for x in range(width):
            for c in range(3):
                crop[y, x, c] = blend(grey, crop[y, x, c], factor)


@jit
def adjust_saturation(crop: np.ndarray, factor: np.float32) -> None:
    """``ImageEnhance.Color(crop).enhance(factor)``, in place: each pixel blended with its own luma."""
    height, width, _ = crop.shape
    for y in range(height):
        for x in range(width):
            grey = luma(crop[y, x, 0], crop[y, x, 1], crop[y, x, 2])
            for c in range(3):
                crop[y, x, c] = blend(grey, crop[y, x, c], factor)


@jit
def adjust_hue(crop: np.ndarray, shift: int) -> None:
    """torchvision's ``adjust_hue`` on a PIL image, in place: the hue channel plus ``shift`` (see
    :func:`hue_shift`) modulo 256."""
    height, width, _ = crop.shape
    for y in range(height):
        for x in range(width):
            h, s, v = rgb_to_hsv(crop[y, x, 0], crop[y, x, 1], crop[y, x, 2])
            r, g, b = hsv_to_rgb((h + shift) & 0xFF, s, v)
            crop[y, x, 0], crop[y, x, 1], crop[y, x, 2] = r, g, b


@jit
def to_grayscale(crop: np.ndarray) -> None:
    """``rgb_to_grayscale(crop, num_output_channels=3)`` on a PIL image, in place."""
    height, width, _ = crop.shape
    for y in range(height):
        for x in range(width):
            grey = luma(crop[y, x, 0], crop[y, x, 1], crop[y, x, 2])
            crop[y, x, 0], crop[y, x, 1], crop[y, x, 2] = grey, grey, grey


@jit
def jitter(crop: np.ndarray, factors: np.ndarray, order: np.ndarray, shift: int, grayscale: bool) -> None:
    """``ColorJitter`` with the given factors (float32 ``[brightness, contrast, saturation, hue]``) applied in
    ``order`` (a permutation of the ids 0-3, as ``torch.randperm(4)``), then grayscale where ``grayscale``; in place
    on a uint8 HWC crop. ``shift``: the hue's shift (:func:`hue_shift`), or -1 where the jitter has no hue (a
    strength of 0: ``ColorJitter`` leaves the operation out, and Pillow's HSV round trip is not lossless, so a shift
    of 0 is not the same). A brightness, contrast or saturation factor of exactly 1 is the identity either way."""
    for k in range(4):
        op = order[k]
        if op == 0 and factors[0] != 1:
            adjust_brightness(crop, factors[0])
        elif op == 1 and factors[1] != 1:
            adjust_contrast(crop, factors[1])
        elif op == 2 and factors[2] != 1:
            adjust_saturation(crop, factors[2])
        elif op == 3 and shift >= 0:
            adjust_hue(crop, shift)
    if grayscale:
        to_grayscale(crop)
