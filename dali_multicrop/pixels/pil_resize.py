"""torchvision's resize on PIL images, bit for bit: Pillow's two-pass resampling (issue #29).

DINO, DINOv2, iBOT, SwAV and I-JEPA resize PIL images, so torchvision's ``RandomResizedCrop`` hands the work to
Pillow: ``img.crop((x0, y0, x1, y1))`` (whole pixels), then ``resize((S, S), filter)``. Pillow's resampling (its
``Resample.c``) runs in two passes, each rounded to uint8:

* per output column, then per output row, the weights of the source pixels: the filter (bilinear: a triangle of
  support 1; bicubic: Keys' cubic with ``a = -0.5``, support 2) stretched by the scale where it shrinks (the
  antialiasing), centred on ``in0 + (i + 0.5) * scale``, cut to the source, normalised to sum 1 (double precision),
  then turned into fixed point with :data:`PRECISION_BITS` fractional bits (rounded away from zero);
* the horizontal pass over the source rows the vertical pass will read, then the vertical pass (Pillow 13 runs the
  vertical pass first where the height shrinks much more than the width: :func:`vertical_first`); each output value
  is ``(2**21 + sum(pixel * weight)) >> 22`` clipped to [0, 255].

These functions do the same integer arithmetic (``tests/test_pil_resize.py`` checks them against Pillow, value for
value, over both filters, shrinking and enlarging, whole and fractional boxes). The CPU graph's resize is built of
them (:mod:`dali_multicrop.graph.cpu_crop`); the GPU graph resizes with DALI's ``fn.resize`` (the same filter,
antialiased: within 0.15 code values of these, ``docs/fidelity.md``).

A crop of a random window is torchvision's crop then resize: the filter is cut at the window's edges
(:func:`resized_crop` with ``clamp_to_window``). An evaluation crop (``Resize(R)`` then ``CenterCrop(S)``) is the
whole image resized: the filter is cut at the image's edges, the window a box in the image (Pillow's ``box``).
"""

from __future__ import annotations

import math

import numpy as np

from ..common.compiled import jit

__all__ = ["BILINEAR", "BICUBIC", "FILTERS", "PRECISION_BITS", "HORIZONTAL_FIRST", "PILLOW_13", "weights",
           "pillow_rule", "vertical_first", "resized_crop"]

BILINEAR, BICUBIC = 0, 1
"""The filters' ids (:data:`FILTERS` names them as recipes do)."""
FILTERS = {"bilinear": BILINEAR, "bicubic": BICUBIC}
"""A recipe's ``interpolation`` (:data:`~dali_multicrop.recipes.spec.INTERPOLATIONS`) to its filter's id."""
PRECISION_BITS = 32 - 8 - 2
"""Fractional bits of Pillow's fixed-point weights for 8-bit images (22)."""
_HALF = 1 << (PRECISION_BITS - 1)
_CUBIC_A = -0.5


@jit
def _support(kind: int) -> float:
    """The filter's half-width in source pixels before stretching: 1 (bilinear) or 2 (bicubic)."""
    return 1.0 if kind == BILINEAR else 2.0


@jit
def _filter(kind: int, x: float) -> float:
    """Pillow's ``bilinear_filter`` / ``bicubic_filter`` at ``x`` (double precision)."""
    if x < 0.0:
        x = -x
    if kind == BILINEAR:
        return 1.0 - x if x < 1.0 else 0.0
    if x < 1.0:
        return ((_CUBIC_A + 2.0) * x - (_CUBIC_A + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * _CUBIC_A
    return 0.0


@jit
def weights(in_size: int, in0: float, in1: float, out_size: int, kind: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's ``precompute_coeffs`` then ``normalize_coeffs_8bpc`` along one axis: ``(bounds, fixed)`` where
    ``bounds[i] = (first, count)`` are the source pixels output pixel ``i`` reads (int32 ``[out_size, 2]``) and
    ``fixed[i, :count]`` their weights in fixed point (int32 ``[out_size, ksize]``). ``in_size``: the source's
    length in pixels (the filter is cut at 0 and ``in_size``); ``[in0, in1)``: the box resized, in source pixels
    (Pillow takes them as single precision)."""
    in0, in1 = np.float32(in0), np.float32(in1)
    scale = np.float64(np.float32(in1 - in0)) / out_size
    filterscale = max(scale, 1.0)
    support = _support(kind) * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    bounds = np.empty((out_size, 2), dtype=np.int32)
    fixed = np.zeros((out_size, ksize), dtype=np.int32)
    raw = np.empty(ksize, dtype=np.float64)
    inverse = 1.0 / filterscale
    for i in range(out_size):
        center = np.float64(in0) + (i + 0.5) * scale
        first = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), in_size) - first
        total = 0.0
        for x in range(count):
            w = _filter(kind, (x + first - center + 0.5) * inverse)
            raw[x] = w
            total += w
        for x in range(count):
            w = raw[x] / total if total != 0.0 else raw[x]
            fixed[i, x] = int(w * (1 << PRECISION_BITS) + (-0.5 if w < 0 else 0.5))
        bounds[i, 0], bounds[i, 1] = first, count
    return bounds, fixed


@jit
def _clip8(value: int) -> np.uint8:
    """Pillow's ``clip8``: a fixed-point sum to uint8 (floor, clipped to [0, 255])."""
    value >>= PRECISION_BITS
    if value < 0:
        return np.uint8(0)
    if value > 255:
        return np.uint8(255)
    return np.uint8(value)


@jit
def _pass(out: np.ndarray, src: np.ndarray, y0: int, x0: int, bounds: np.ndarray, fixed: np.ndarray) -> None:
    """One of Pillow's passes along the first axis (its ``ImagingResampleVertical_8bpc``; the horizontal pass is the
    same on the transposed pixels): ``out`` (uint8 ``[height, width, 3]``) row ``j`` = the rows of ``src`` (uint8
    HWC, C-contiguous, its rows counted from ``y0``, its columns from ``x0``) that ``bounds[j]`` names, weighted by
    ``fixed[j]``, summed in 32-bit integers from half a unit and clipped as Pillow's ``clip8``. A row of sums at a
    time over the values in order, which the compiler vectorises."""
    height, width = out.shape[0], out.shape[1]
    n, skip = 3 * width, 3 * x0
    flat = src.reshape(src.shape[0], -1)
    acc = np.empty(n, dtype=np.int32)
    for j in range(height):
        first, count = y0 + bounds[j, 0], bounds[j, 1]
        for t in range(n):
            acc[t] = _HALF
        for y in range(count):
            k = fixed[j, y]
            line = flat[first + y, skip:skip + n]
            for t in range(n):
                acc[t] += np.int32(line[t]) * k
        row = out[j].reshape(-1)
        for t in range(n):
            row[t] = _clip8(acc[t])


@jit
def _transposed(out: np.ndarray, src: np.ndarray, y0: int, x0: int, mirror: bool) -> None:
    """``out[a, b]`` = ``src[y0 + b, x0 + a]`` (uint8, 3 channels): the pixels' rows and columns swapped, ``b``
    counted from the end where ``mirror``."""
    size_a, size_b = out.shape[0], out.shape[1]
    for a in range(size_a):
        for b in range(size_b):
            at = size_b - 1 - b if mirror else b
            for c in range(3):
                out[a, b, c] = src[y0 + at, x0 + a, c]


HORIZONTAL_FIRST, PILLOW_13 = 0, 1
"""The pass-order rules: Pillow before 13 always runs the horizontal pass first; Pillow 13 runs the vertical pass
first where the height shrinks by more than twice as many pixels as the width does (:func:`vertical_first`). The two
orders differ by 1 code value in a few pixels of the crops where they differ."""


def pillow_rule() -> int:
    """The pass-order rule of the installed Pillow (:data:`PILLOW_13` from Pillow 13 on)."""
    import PIL

    return PILLOW_13 if int(PIL.__version__.split(".")[0]) >= 13 else HORIZONTAL_FIRST


@jit
def vertical_first(in_h: int, in_w: int, out_h: int, out_w: int, rule: int) -> bool:
    """Whether Pillow resizes ``in_h x in_w`` pixels (the whole image it is given, whatever the box) to ``out_h x
    out_w`` with the vertical pass first, under pass-order ``rule`` (:data:`PILLOW_13` or :data:`HORIZONTAL_FIRST`)."""
    return rule == PILLOW_13 and out_h < in_h and in_h - out_h > 2 * (in_w - out_w)


@jit
def resized_crop(out: np.ndarray, image: np.ndarray, y0: float, x0: float, y1: float, x1: float, kind: int,
                 clamp_to_window: bool, mirror: bool, rule: int = PILLOW_13) -> None:
    """``out`` (uint8 ``[S, S, 3]``) = the window ``[y0, y1) x [x0, x1)`` (pixels) of ``image`` (uint8 HWC) resized
    to ``S x S`` with filter ``kind`` as Pillow resizes, then mirrored left-right where ``mirror``.

    ``clamp_to_window``: torchvision's ``RandomResizedCrop``, the window (whole pixels) cut out first, so the
    filter stops at its edges. Otherwise the whole image is resized with the window as Pillow's ``box`` (the
    filter stops at the image's edges): an evaluation crop's ``Resize`` then ``CenterCrop``. ``rule``: the pass order
    of the Pillow to match (:func:`pillow_rule`).
    """
    size_y, size_x = out.shape[0], out.shape[1]
    if clamp_to_window:
        top, left = int(y0), int(x0)
        in_h, in_w = int(y1) - top, int(x1) - left
        by0, bx0, by1, bx1 = 0.0, 0.0, float(in_h), float(in_w)
    else:
        top, left = 0, 0
        in_h, in_w = image.shape[0], image.shape[1]
        by0, bx0, by1, bx1 = y0, x0, y1, x1
    col_bounds, col_fixed = weights(in_w, bx0, bx1, size_x, kind)
    row_bounds, row_fixed = weights(in_h, by0, by1, size_y, kind)
    # the columns and rows the passes read (Pillow's horizontal pass reads only the rows its vertical pass will)
    col0 = col_bounds[0, 0]
    cols = col_bounds[size_x - 1, 0] + col_bounds[size_x - 1, 1] - col0
    row0 = row_bounds[0, 0]
    rows = row_bounds[size_y - 1, 0] + row_bounds[size_y - 1, 1] - row0
    # each pass runs along the first axis of C-contiguous pixels; the horizontal one on the transposed pixels
    if vertical_first(in_h, in_w, size_y, size_x, rule):
        tall = np.empty((size_y, cols, 3), dtype=np.uint8)
        _pass(tall, image, top, left + col0, row_bounds, row_fixed)
        turned = np.empty((cols, size_y, 3), dtype=np.uint8)
        _transposed(turned, tall, 0, 0, False)
        done = np.empty((size_x, size_y, 3), dtype=np.uint8)
        _pass(done, turned, -col0, 0, col_bounds, col_fixed)
        _transposed(out, done, 0, 0, mirror)
    else:
        turned = np.empty((cols, rows, 3), dtype=np.uint8)
        _transposed(turned, image, top + row0, left + col0, False)
        wide = np.empty((size_x, rows, 3), dtype=np.uint8)
        _pass(wide, turned, -col0, 0, col_bounds, col_fixed)
        back = np.empty((rows, size_x, 3), dtype=np.uint8)
        _transposed(back, wide, 0, 0, mirror)
        _pass(out, back, -row0, 0, row_bounds, row_fixed)
