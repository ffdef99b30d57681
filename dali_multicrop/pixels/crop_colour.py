"""A crop through its colour row, one operation at a time over the whole crop as Pillow does: the CPU graph's colour
(its crop operator, :mod:`dali_multicrop.graph.cpu_crop`, runs :func:`colour_in_place` on each resized crop), and the
crop-level functions torchvision's are compared with (``tests/test_pil_colour.py``).

The arithmetic is :mod:`dali_multicrop.pixels.pil_colour`'s, value for value. Brightness and contrast go through a table
of the 256 values; the hue's RGB to HSV reads two tables made of :func:`~dali_multicrop.pixels.pil_colour.rgb_to_hsv`
itself (the hue byte depends only on which channel is largest, which smallest, the range and the third channel's
distance from the top; the saturation byte on the range and the top), built once per process (about 460 KB), checked
against the arithmetic over all 2**24 colours in the tests.
"""

from __future__ import annotations

import numpy as np

from ..common.compiled import jit
from .pil_colour import (BRIGHTNESS, CONTRAST, HUE, ROW_GRAY, ROW_ORDER, ROW_SHIFT, SATURATION, _larger, _smaller,
                         applied, blend, blend_clipped, blend_value, colour_row, grey_of, hsv_from_sector, hsv_sector,
                         hsv_shade, luma, rgb_to_hsv)

__all__ = ["colour_in_place", "colour_crop", "fast_rgb_to_hsv", "fast_hsv_to_rgb", "adjust_brightness",
           "adjust_contrast", "adjust_saturation", "adjust_hue", "to_grayscale", "jitter"]


@jit
def _hue_case(r: int, g: int, b: int, top: int, bottom: int) -> tuple[int, int, int]:
    """``(case, range, distance)`` of a pixel that is not grey, ``top`` and ``bottom`` its largest and smallest
    channel: ``case`` (0-5) the branch Pillow's ``rgb2hsv`` takes (red, green or blue largest, in that precedence)
    and which other channel is smallest; ``distance`` the remaining channel's distance from the largest."""
    if r == top:
        return (0, top - bottom, top - b) if g == bottom else (1, top - bottom, top - g)
    if g == top:
        return (2, top - bottom, top - b) if r == bottom else (3, top - bottom, top - r)
    return (4, top - bottom, top - r) if g == bottom else (5, top - bottom, top - g)


@jit
def _case_pixel(case: int, span: int, distance: int) -> tuple[int, int, int]:
    """A pixel of ``case`` with this range and distance, its largest channel 255 (the hue depends on neither)."""
    low, mid = 255 - span, 255 - distance
    if case == 0:
        return 255, low, mid
    if case == 1:
        return 255, mid, low
    if case == 2:
        return low, 255, mid
    if case == 3:
        return mid, 255, low
    if case == 4:
        return mid, low, 255
    return low, mid, 255


@jit
def _fill_tables(hues: np.ndarray, saturations: np.ndarray) -> None:
    for case in range(6):
        for span in range(1, 256):
            for distance in range(span + 1):
                r, g, b = _case_pixel(case, span, distance)
                hues[case, span, distance] = rgb_to_hsv(r, g, b)[0]
    for top in range(1, 256):
        for span in range(1, top + 1):
            saturations[span, top] = rgb_to_hsv(top, top - span, top - span)[1]


def _tables() -> tuple[np.ndarray, np.ndarray]:
    hues = np.zeros((6, 256, 256), dtype=np.uint8)
    saturations = np.zeros((256, 256), dtype=np.uint8)
    _fill_tables(hues, saturations)
    return hues, saturations


HUES, SATURATIONS = _tables()
"""The hue byte by ``(case, range, distance)`` and the saturation byte by ``(range, largest)`` (see the module)."""


@jit
def fast_rgb_to_hsv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """:func:`~dali_multicrop.pixels.pil_colour.rgb_to_hsv`'s values, read from the tables."""
    top, bottom = _larger(_larger(r, g), b), _smaller(_smaller(r, g), b)
    if top == bottom:
        return 0, 0, top
    case, span, distance = _hue_case(r, g, b, top, bottom)
    return HUES[case, span, distance], SATURATIONS[span, top], top


@jit
def _fill_hsv_tables(sectors: np.ndarray, fractions: np.ndarray, shades: np.ndarray) -> None:
    for h in range(256):
        sectors[h], fractions[h] = hsv_sector(h)
    for s in range(256):
        for v in range(256):
            shades[s, v] = hsv_shade(v, np.float32(s))


def _hsv_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sectors = np.zeros(256, dtype=np.int64)
    fractions = np.zeros(256, dtype=np.float32)
    shades = np.zeros((256, 256), dtype=np.uint8)
    _fill_hsv_tables(sectors, fractions, shades)
    return sectors, fractions, shades


SECTORS, FRACTIONS, SHADES = _hsv_tables()
"""HSV to RGB's parts that depend on the hue byte alone (its sector and the fraction through it) and on the
saturation and value alone (Pillow's ``p``), made by :mod:`~dali_multicrop.pixels.pil_colour`'s own functions."""


@jit
def fast_hsv_to_rgb(h: int, s: int, v: int) -> tuple[int, int, int]:
    """:func:`~dali_multicrop.pixels.pil_colour.hsv_to_rgb`'s values, its hue and ``p`` parts read from the tables."""
    if s == 0:
        return v, v, v
    return hsv_from_sector(SECTORS[h], FRACTIONS[h], s, v, SHADES[s, v])


@jit
def _through_table(out: np.ndarray, grey: int, factor: np.float32) -> None:
    """``out`` in place: every value ``v`` replaced by ``blend(grey, v, factor)`` (brightness: grey 0; contrast:
    the crop's mean luma), through a table of the 256 values."""
    table = np.empty(256, dtype=np.uint8)
    for v in range(256):
        table[v] = blend(grey, v, factor)
    flat = out.reshape(-1)
    for p in range(flat.size):
        flat[p] = table[flat[p]]


@jit
def _mean_grey(out: np.ndarray) -> int:
    """The crop's mean luma, rounded (:func:`grey_of`)."""
    flat = out.reshape(-1)
    total = 0
    for p in range(flat.size // 3):
        total += luma(np.int32(flat[3 * p]), np.int32(flat[3 * p + 1]), np.int32(flat[3 * p + 2]))
    return grey_of(total, flat.size // 3)


@jit
def _saturate(out: np.ndarray, factor: np.float32) -> None:
    """``out`` in place: each pixel blended with its own luma (saturation; with ``factor`` 0, grayscale). One loop
    over the crop's values in order, which the compiler vectorises."""
    flat = out.reshape(-1)
    for p in range(flat.size // 3):
        r, g, b = np.int32(flat[3 * p]), np.int32(flat[3 * p + 1]), np.int32(flat[3 * p + 2])
        grey = luma(r, g, b)
        flat[3 * p] = blend_clipped(blend_value(grey, r, factor))
        flat[3 * p + 1] = blend_clipped(blend_value(grey, g, factor))
        flat[3 * p + 2] = blend_clipped(blend_value(grey, b, factor))


@jit
def _grey(out: np.ndarray) -> None:
    """``out`` in place: each pixel's luma in all three channels (grayscale)."""
    flat = out.reshape(-1)
    for p in range(flat.size // 3):
        grey = np.uint8(luma(np.int32(flat[3 * p]), np.int32(flat[3 * p + 1]), np.int32(flat[3 * p + 2])))
        flat[3 * p] = flat[3 * p + 1] = flat[3 * p + 2] = grey


@jit
def _turn_hue(out: np.ndarray, shift: int) -> None:
    """``out`` in place: each pixel's hue turned by ``shift`` (:func:`hue_shift`) through Pillow's HSV."""
    height, width, _ = out.shape
    for y in range(height):
        for x in range(width):
            h, s, v = fast_rgb_to_hsv(out[y, x, 0], out[y, x, 1], out[y, x, 2])
            out[y, x, 0], out[y, x, 1], out[y, x, 2] = fast_hsv_to_rgb((h + shift) & 0xFF, s, v)


@jit
def colour_in_place(out: np.ndarray, row: np.ndarray) -> None:
    """``out`` (uint8 HWC) in place through ``ColorJitter`` then ``RandomGrayscale`` as ``row`` (see
    :data:`ROW_FIELDS`) draws them, as torchvision on PIL images computes it: one operation at a time over the whole
    crop, as Pillow does (brightness and contrast through a table of the 256 values; contrast's grey the mean luma
    of the crop as it stands). The same arithmetic as :func:`colour_pixel`'s, the same values."""
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
        _grey(out)


@jit
def colour_crop(out: np.ndarray, crop: np.ndarray, row: np.ndarray) -> None:
    """``out`` (uint8 HWC, ``crop``'s shape) = ``crop`` through its colour ``row`` (:func:`colour_in_place`)."""
    out[...] = crop
    colour_in_place(out, row)


def _in_place(crop: np.ndarray, row: np.ndarray) -> None:
    """:func:`colour_crop` of ``crop`` with ``row``, written back into ``crop``."""
    out = np.empty_like(crop)
    colour_crop(out, crop, row)
    crop[...] = out


def _each(crop: np.ndarray, op: int, factor: float, shift: int = -1) -> None:
    """One operation on ``crop`` in place (the others left out)."""
    factors = np.ones(3, dtype=np.float32)
    if op != HUE:
        factors[op] = factor
    _in_place(crop, colour_row(factors, np.arange(4), shift, False))  # one operation: any order


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
    _in_place(crop, colour_row(np.ones(3), np.arange(4), -1, True))


def jitter(crop: np.ndarray, factors: np.ndarray, order: np.ndarray, shift: int, grayscale: bool) -> None:
    """``ColorJitter`` with the given factors (``[brightness, contrast, saturation, ...]``) applied in ``order`` (a
    permutation of the ids 0-3, as ``torch.randperm(4)``), then grayscale where ``grayscale``; in place on a uint8
    HWC crop. ``shift``: the hue's shift (:func:`hue_shift`), or -1 where the jitter has no hue (a strength of 0:
    ``ColorJitter`` leaves the operation out, and Pillow's HSV round trip is not lossless, so a shift of 0 is not
    the same). A brightness, contrast or saturation factor of exactly 1 is the identity either way."""
    _in_place(crop, colour_row(factors, order, shift, grayscale))
