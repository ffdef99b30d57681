"""torchvision's colour operations as they run on PIL images, bit for bit, one pixel at a time (issue #29).

DINO, DINOv2, iBOT and SwAV apply ``ColorJitter`` and ``RandomGrayscale`` to PIL images, so torchvision hands each
operation to Pillow, which works in uint8 and rounds its own way after every step. These functions do the same
arithmetic on a pixel, so what is built of them gives the reference's values exactly (``tests/test_pil_colour.py``
checks them against Pillow over every RGB colour, and the crops made of them against torchvision on PIL over natural
photographs):

* brightness ``b``: Pillow's blend of a black image and the crop with factor ``b`` (``ImageEnhance.Brightness``);
* contrast ``c``: the blend of a grey image and the crop, the grey being the crop's own mean luma, rounded
  (``ImageEnhance.Contrast``: the mean of the *current* crop, after whatever ran before it);
* saturation ``s``: the blend of the crop's luma and the crop (``ImageEnhance.Color``);
* hue ``h`` (a fraction of a turn): Pillow's RGB to HSV (uint8 channels), the hue channel plus
  ``uint8(int32(h * 255))`` modulo 256, then HSV to RGB (torchvision's ``_functional_pil.adjust_hue``);
* grayscale: the luma, in all three channels (``rgb_to_grayscale(num_output_channels=3)``).

Pillow's blend computes ``in1 + alpha * (in2 - in1)`` in single precision and truncates it to uint8 (clipped to
[0, 255] where ``alpha`` is outside [0, 1]); its luma is ``(19595 R + 38470 G + 7471 B + 2**15) >> 16``.
``ColorJitter`` applies its four operations in a random order drawn per call (``torch.randperm(4)``). The graph hands
each crop its parameters as a row of numbers (:data:`ROW_FIELDS`, :func:`colour_row`). From these functions
(``njit``) are built the CPU graph's operator (:mod:`dali_multicrop.pixels.crop_colour`: a crop, one operation at a
time) and the GPU graph's kernels (a thread per pixel, :mod:`dali_multicrop.graph.gpu_colour`).
"""

from __future__ import annotations

import math

import numpy as np

from ..common.compiled import jit

__all__ = ["BRIGHTNESS", "CONTRAST", "SATURATION", "HUE", "ROW_FIELDS", "ROW_GRAY", "ROW_ORDER", "ROW_SHIFT", "luma",
           "blend", "rgb_to_hsv", "hsv_to_rgb", "hue_shift", "apply", "applied", "colour_pixel", "contrast_stage",
           "grey_of", "colour_row"]

BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3
"""The operations' ids in an order, as ``ColorJitter.forward`` numbers them (``fn_idx``)."""


@jit
def luma(r: int, g: int, b: int) -> int:
    """Pillow's RGB to L: ``(19595 R + 38470 G + 7471 B + 2**15) >> 16`` (0-255)."""
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


@jit
def blend_value(in1: int, in2: int, alpha: np.float32) -> np.float32:
    """Pillow's ``Image.blend`` of one value before its conversion to uint8: ``in1 + alpha * (in2 - in1)`` in single
    precision."""
    return np.float32(in1) + alpha * np.float32(in2 - in1)


@jit
def blend_clipped(value: np.float32) -> int:
    """A blended value to uint8 as Pillow converts it: truncated, within [0, 255] (the clip only acts where ``alpha``
    was outside [0, 1]: inside, the value lies between its two ends)."""
    low = value if value > 0 else np.float32(0)  # comparisons: Numba's CUDA target has no two-argument max
    return int(low if low < 255 else np.float32(255))


@jit
def blend(in1: int, in2: int, alpha: np.float32) -> int:
    """Pillow's ``Image.blend`` of one value: ``in1 + alpha * (in2 - in1)`` in single precision, truncated to uint8
    (clipped to [0, 255] where ``alpha`` is outside [0, 1], as Pillow extrapolates)."""
    return blend_clipped(blend_value(in1, in2, alpha))


@jit
def _larger(a: int, b: int) -> int:
    """The larger of two values (comparisons: Numba's CUDA target has no ``max`` of integers)."""
    return a if a > b else b


@jit
def _smaller(a: int, b: int) -> int:
    """The smaller of two values."""
    return a if a < b else b


@jit
def _clip8(value: int) -> int:
    """``value`` clipped to [0, 255]."""
    return _smaller(_larger(value, 0), 255)


@jit
def rgb_to_hsv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """Pillow's RGB to HSV of one pixel (``Convert.c``'s ``rgb2hsv``), uint8 channels."""
    maxc = _larger(_larger(r, g), b)
    minc = _smaller(_smaller(r, g), b)
    if minc == maxc:
        return 0, 0, maxc
    cr = np.float32(maxc - minc)
    s = cr / np.float32(maxc)
    # Pillow divides all three; each branch reads two of them (the same quotients)
    if r == maxc:
        h = np.float32(maxc - b) / cr - np.float32(maxc - g) / cr
    elif g == maxc:  # Pillow adds in double precision (a double constant), then keeps the sum in a float
        h = np.float32(2.0 + np.float64(np.float32(maxc - r) / cr) - np.float64(np.float32(maxc - b) / cr))
    else:
        h = np.float32(4.0 + np.float64(np.float32(maxc - g) / cr) - np.float64(np.float32(maxc - r) / cr))
    turn = np.float64(h) / 6.0 + 1.0  # in (0, 2): fmod(turn, 1) is turn - floor(turn)
    hue = np.float32(turn - math.floor(turn))  # Pillow keeps it in a float
    return _clip8(int(np.float64(hue) * 255.0)), _clip8(int(np.float64(s) * 255.0)), maxc


@jit
def hsv_sector(h: int) -> tuple[int, np.float32]:
    """The sector (0-6) of a hue byte and the fraction of the way through it, as Pillow's ``hsv2rgb`` computes them
    (single precision)."""
    i = int(math.floor(np.float32(h) * 6.0 / 255.0))
    return i, np.float32(np.float32(h) * 6.0 / 255.0 - np.float32(i))


@jit
def hsv_shade(v: int, amount: np.float32) -> int:
    """``v * (1 - amount / 255)``, rounded and clipped to uint8: Pillow's ``p`` (``amount`` the saturation), ``q``
    and ``t`` (``amount`` the saturation's share left after or before the sector's fraction)."""
    return _clip8(int(round(np.float32(v) * (1.0 - amount / 255.0))))


@jit
def hsv_from_sector(i: int, f: np.float32, s: int, v: int, p: int) -> tuple[int, int, int]:
    """Pillow's HSV to RGB of a pixel that is not grey (``s > 0``) from its hue's :func:`hsv_sector` and its ``p``
    (``hsv_shade(v, s)``)."""
    fs = f * np.float32(s)
    k = i % 6
    if k % 2 == 0:  # Pillow computes q and t both; each sector reads one of them
        t = hsv_shade(v, np.float32(s) - fs)
        if k == 0:
            return v, t, p
        if k == 2:
            return p, v, t
        return t, p, v
    q = hsv_shade(v, fs)
    if k == 1:
        return q, v, p
    if k == 3:
        return p, q, v
    return v, p, q


@jit
def hsv_to_rgb(h: int, s: int, v: int) -> tuple[int, int, int]:
    """Pillow's HSV to RGB of one pixel (``Convert.c``'s ``hsv2rgb``), uint8 channels."""
    if s == 0:
        return v, v, v
    i, f = hsv_sector(h)
    return hsv_from_sector(i, f, s, v, hsv_shade(v, np.float32(s)))


@jit
def hue_shift(hue: float) -> int:
    """The hue channel's shift for a hue factor (fraction of a turn), as torchvision adds it: the factor times 255
    in double precision, truncated toward zero, wrapped to uint8 (the crop step draws it so)."""
    return int(hue * 255.0) & 0xFF


ROW_SHIFT, ROW_ORDER, ROW_GRAY, ROW_FIELDS = 3, 4, 8, 9
"""A crop's colour row (float32 ``[ROW_FIELDS]``, as the graph's crop step writes it for each crop): fields 0-2 the
brightness, contrast and saturation factors (1: not applied), ``ROW_SHIFT`` the hue's shift (:func:`hue_shift`; -1:
no hue), ``ROW_ORDER`` to ``ROW_ORDER + 3`` the order of the four operations (a permutation of their ids, as
``torch.randperm(4)``), ``ROW_GRAY`` 1 where the crop is then turned grey, else 0."""


@jit
def apply(op: int, r: int, g: int, b: int, row: np.ndarray, grey: int) -> tuple[int, int, int]:
    """Operation ``op`` (an id: brightness, contrast, saturation, hue) of one pixel with the factors of ``row``;
    ``grey`` is the contrast's grey (the crop's mean luma, rounded: :func:`grey_of`)."""
    if op == BRIGHTNESS:
        f = row[BRIGHTNESS]
        return blend(0, r, f), blend(0, g, f), blend(0, b, f)
    if op == CONTRAST:
        f = row[CONTRAST]
        return blend(grey, r, f), blend(grey, g, f), blend(grey, b, f)
    if op == SATURATION:
        f = row[SATURATION]
        grey = luma(r, g, b)
        return blend(grey, r, f), blend(grey, g, f), blend(grey, b, f)
    h, s, v = rgb_to_hsv(r, g, b)
    return hsv_to_rgb((h + int(row[ROW_SHIFT])) & 0xFF, s, v)


@jit
def applied(op: int, row: np.ndarray) -> bool:
    """Whether ``row`` applies operation ``op``: a factor other than 1, or a hue shift (a shift of 0 is applied:
    Pillow's HSV round trip is not lossless)."""
    if op == HUE:
        return row[ROW_SHIFT] >= 0
    return row[op] != 1


@jit
def colour_pixel(r: int, g: int, b: int, row: np.ndarray, grey: int, stages: int) -> tuple[int, int, int]:
    """One pixel through the first ``stages`` (0-4) operations of ``row``'s order, the ones it applies; after all
    four, grayscale where ``row`` says so. ``grey``: the contrast's grey (:func:`grey_of`)."""
    for k in range(stages):
        op = int(row[ROW_ORDER + k])
        if applied(op, row):
            r, g, b = apply(op, r, g, b, row, grey)
    if stages == 4 and row[ROW_GRAY] != 0:
        grey = luma(r, g, b)
        return grey, grey, grey
    return r, g, b


@jit
def contrast_stage(row: np.ndarray) -> int:
    """Where contrast comes in ``row``'s order (0-3): the stages before it make the pixels whose mean it takes."""
    for k in range(4):
        if int(row[ROW_ORDER + k]) == CONTRAST:
            return k
    return 4


@jit
def grey_of(total: int, pixels: int) -> int:
    """The contrast's grey from the sum of a crop's ``pixels`` lumas: their mean, rounded half up (Pillow's
    ``int(ImageStat.Stat(L).mean[0] + 0.5)``, in double precision)."""
    return int(total / pixels + 0.5)


def colour_row(factors: np.ndarray, order: np.ndarray, shift: int, grayscale: bool) -> np.ndarray:
    """A crop's colour row (float32 ``[ROW_FIELDS]``) from its factors (``[brightness, contrast, saturation]``, 1:
    not applied), its ``order`` (a permutation of the ids 0-3), its hue ``shift`` (:func:`hue_shift`, -1: no hue) and
    whether it is then turned grey."""
    row = np.empty(ROW_FIELDS, dtype=np.float32)
    row[:3] = np.asarray(factors, dtype=np.float32)[:3]
    row[ROW_SHIFT] = shift
    row[ROW_ORDER:ROW_ORDER + 4] = order
    row[ROW_GRAY] = 1.0 if grayscale else 0.0
    return row
