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
:func:`jitter` takes that order. The graph hands each crop its parameters as a row of numbers (:data:`ROW_FIELDS`);
:func:`colour_crop` applies one to a crop. The arithmetic is in functions of one pixel (``njit``: :func:`apply`,
:func:`colour_pixel`), from which the CPU graph's operator (a loop over the crop) and the GPU graph's kernels (a
thread per pixel, :mod:`dali_multicrop._colour_kernel`) are both built.
"""

from __future__ import annotations

import math

import numpy as np

from ._numba import jit

__all__ = ["BRIGHTNESS", "CONTRAST", "SATURATION", "HUE", "ROW_FIELDS", "ROW_GRAY", "ROW_ORDER", "ROW_SHIFT", "luma",
           "blend", "rgb_to_hsv", "hsv_to_rgb", "hue_shift", "apply", "applied", "colour_pixel", "contrast_stage",
           "grey_of", "contrast_grey", "colour_crop", "colour_row", "adjust_brightness", "adjust_contrast",
           "adjust_saturation", "adjust_hue", "to_grayscale", "jitter"]

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
def hsv_to_rgb(h: int, s: int, v: int) -> tuple[int, int, int]:
    """Pillow's HSV to RGB of one pixel (``Convert.c``'s ``hsv2rgb``), uint8 channels."""
    if s == 0:
        return v, v, v
    i = int(math.floor(np.float32(h) * 6.0 / 255.0))
    f = np.float32(np.float32(h) * 6.0 / 255.0 - np.float32(i))
    fs = f * np.float32(s)
    p = _clip8(int(round(np.float32(v) * (1.0 - np.float32(s) / 255.0))))
    k = i % 6
    if k % 2 == 0:  # Pillow computes q and t both; each sector reads one of them
        t = _clip8(int(round(np.float32(v) * (1.0 - (np.float32(s) - fs) / 255.0))))
        if k == 0:
            return v, t, p
        if k == 2:
            return p, v, t
        return t, p, v
    q = _clip8(int(round(np.float32(v) * (1.0 - fs / 255.0))))
    if k == 1:
        return q, v, p
    if k == 3:
        return p, q, v
    return v, p, q


def hue_shift(hue: float) -> int:
    """The hue channel's shift for a hue factor (fraction of a turn), as torchvision adds it: the factor times 255
    in double precision, truncated to int32, wrapped to uint8."""
    return int(np.int32(hue * 255)) & 0xFF


ROW_SHIFT, ROW_ORDER, ROW_GRAY, ROW_FIELDS = 3, 4, 8, 9
"""A crop's colour row (float32 ``[ROW_FIELDS]``, as the graph's crop step writes it for each crop): fields 0-2 the
brightness, contrast and saturation factors (1: not applied), ``ROW_SHIFT`` the hue's shift (:func:`hue_shift`; -1:
no hue), ``ROW_ORDER`` to ``ROW_ORDER + 3`` the order of the four operations (a permutation of their ids, as
``torch.randperm(4)``), ``ROW_GRAY`` 1 where the crop is then turned grey, else 0."""


@jit
def apply(op: int, r: int, g: int, b: int, row: np.ndarray, grey: int) -> tuple[int, int, int]:
    """Operation ``op`` (an id: brightness, contrast, saturation, hue) of one pixel with the factors of ``row``;
    ``grey`` is the contrast's grey (the crop's mean luma, rounded: :func:`contrast_grey`)."""
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
    four, grayscale where ``row`` says so. ``grey``: the contrast's grey (:func:`contrast_grey`)."""
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


@jit
def contrast_grey(crop: np.ndarray, row: np.ndarray) -> int:
    """The grey ``row``'s contrast blends ``crop`` (uint8 HWC) with: the mean luma of the crop as the operations
    before contrast leave it, rounded (0 where ``row`` applies no contrast)."""
    if not applied(CONTRAST, row):
        return 0
    stages = contrast_stage(row)
    height, width, _ = crop.shape
    total = 0
    for y in range(height):
        for x in range(width):
            r, g, b = colour_pixel(crop[y, x, 0], crop[y, x, 1], crop[y, x, 2], row, 0, stages)
            total += luma(r, g, b)
    return grey_of(total, height * width)


@jit
def _through_table(out: np.ndarray, grey: int, factor: np.float32) -> None:
    """``out`` in place: every value ``v`` replaced by ``blend(grey, v, factor)`` (brightness: grey 0; contrast:
    the crop's mean luma), through a table of the 256 values."""
    table = np.empty(256, dtype=np.uint8)
    for v in range(256):
        table[v] = blend(grey, v, factor)
    height, width, _ = out.shape
    for y in range(height):
        for x in range(width):
            for c in range(3):
                out[y, x, c] = table[out[y, x, c]]


@jit
def _mean_grey(out: np.ndarray) -> int:
    """The crop's mean luma, rounded (:func:`grey_of`)."""
    height, width, _ = out.shape
    total = 0
    for y in range(height):
        for x in range(width):
            total += luma(out[y, x, 0], out[y, x, 1], out[y, x, 2])
    return grey_of(total, height * width)


@jit
def _saturate(out: np.ndarray, factor: np.float32) -> None:
    """``out`` in place: each pixel blended with its own luma (saturation; with ``factor`` 0, grayscale)."""
    height, width, _ = out.shape
    for y in range(height):
        for x in range(width):
            r, g, b = out[y, x, 0], out[y, x, 1], out[y, x, 2]
            grey = luma(r, g, b)
            out[y, x, 0] = blend(grey, r, factor)
            out[y, x, 1] = blend(grey, g, factor)
            out[y, x, 2] = blend(grey, b, factor)


@jit
def _turn_hue(out: np.ndarray, shift: int) -> None:
    """``out`` in place: each pixel's hue turned by ``shift`` (:func:`hue_shift`) through Pillow's HSV."""
    height, width, _ = out.shape
    for y in range(height):
        for x in range(width):
            h, s, v = rgb_to_hsv(out[y, x, 0], out[y, x, 1], out[y, x, 2])
            out[y, x, 0], out[y, x, 1], out[y, x, 2] = hsv_to_rgb((h + shift) & 0xFF, s, v)


@jit
def colour_crop(out: np.ndarray, crop: np.ndarray, row: np.ndarray) -> None:
    """``out`` (uint8 HWC, ``crop``'s shape) = ``ColorJitter`` then ``RandomGrayscale`` of ``crop`` as ``row`` (see
    :data:`ROW_FIELDS`) draws them, as torchvision on PIL images computes it: one operation at a time over the whole
    crop, as Pillow does (brightness and contrast through a table of the 256 values; contrast's grey the mean luma
    of the crop as it stands). The same arithmetic as :func:`colour_pixel`'s, the same values."""
    out[...] = crop
    for k in range(4):
        op = int(row[ROW_ORDER + k])
        if not applied(op, row):
            continue
        if op == BRIGHTNESS:
            _through_table(out, 0, row[BRIGHTNESS])
        elif op == CONTRAST:
            _through_table(out, _mean_grey(out), row[CONTRAST])
        elif op == SATURATION:
            _saturate(out, row[SATURATION])
        else:
            _turn_hue(out, int(row[ROW_SHIFT]))
    if row[ROW_GRAY] != 0:
        _saturate(out, np.float32(0))


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


def _each(crop: np.ndarray, op: int, factor: float, shift: int = -1) -> None:
    """One operation on ``crop`` in place (the others left out)."""
    factors = np.ones(3, dtype=np.float32)
    if op != HUE:
        factors[op] = factor
    out = np.empty_like(crop)
    colour_crop(out, crop, colour_row(factors, np.arange(4), shift, False))  # one operation: any order
    crop[...] = out


def adjust_brightness(crop: np.ndarray, factor: float) -> None:
    """``ImageEnhance.Brightness(crop).enhance(factor)``, in place on a uint8 HWC crop."""
    _each(crop, BRIGHTNESS, factor)


def adjust_contrast(crop: np.ndarray, factor: float) -> None:
    """``ImageEnhance.Contrast(crop).enhance(factor)``, in place: the grey is the crop's mean luma, rounded."""
    _each(crop, CONTRAST, factor)


def adjust_saturation(crop: np.ndarray, factor: float) -> None:
    """``ImageEnhance.Color(crop).enhance(factor)``, in place: each pixel blended with its own luma."""
    _each(crop, SATURATION, factor)


def adjust_hue(crop: np.ndarray, shift: int) -> None:
    """torchvision's ``adjust_hue`` on a PIL image, in place: the hue channel plus ``shift`` (see
    :func:`hue_shift`) modulo 256."""
    _each(crop, HUE, 1.0, shift)


def to_grayscale(crop: np.ndarray) -> None:
    """``rgb_to_grayscale(crop, num_output_channels=3)`` on a PIL image, in place."""
    out = np.empty_like(crop)
    colour_crop(out, crop, colour_row(np.ones(3), np.arange(4), -1, True))
    crop[...] = out


def jitter(crop: np.ndarray, factors: np.ndarray, order: np.ndarray, shift: int, grayscale: bool) -> None:
    """``ColorJitter`` with the given factors (``[brightness, contrast, saturation, ...]``) applied in ``order`` (a
    permutation of the ids 0-3, as ``torch.randperm(4)``), then grayscale where ``grayscale``; in place on a uint8
    HWC crop. ``shift``: the hue's shift (:func:`hue_shift`), or -1 where the jitter has no hue (a strength of 0:
    ``ColorJitter`` leaves the operation out, and Pillow's HSV round trip is not lossless, so a shift of 0 is not
    the same). A brightness, contrast or saturation factor of exactly 1 is the identity either way."""
    out = np.empty_like(crop)
    colour_crop(out, crop, colour_row(factors, order, shift, grayscale))
    crop[...] = out
