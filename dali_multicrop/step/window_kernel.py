"""The crop-window kernel, compiled by Numba (see :mod:`dali_multicrop.step.windows`; imported only when a window is
computed, so that importing the package does not load Numba and LLVM)."""

from __future__ import annotations

import math

import numpy as np

from ..common.compiled import jit as _jit
from .layout import (ATTEMPTS, CENTER, LOG_RATIO_HIGH, LOG_RATIO_LOW, RATIO_HIGH, RATIO_LOW, SCALE_HIGH, SCALE_LOW,
                     SIZE, STREAM)
from .stream import uniform, unit


@_jit
def candidates(out: np.ndarray, key: np.uint64, crop: int, d: np.ndarray) -> None:
    """Writes crop ``crop``'s draws (float64 ``[ATTEMPTS + 1, 2]``: the attempts' (area fraction uniform in the
    crop's scale, aspect ratio log-uniform in its ratio), then the position (u_y, u_x)) from its constants ``d``:
    draws ``STREAM * crop`` onwards of the stream ``key``."""
    first = STREAM * crop
    for k in range(ATTEMPTS):
        out[k, 0] = uniform(key, first + 2 * k, d[SCALE_LOW], d[SCALE_HIGH])
        out[k, 1] = math.exp(uniform(key, first + 2 * k + 1, d[LOG_RATIO_LOW], d[LOG_RATIO_HIGH]))
    out[ATTEMPTS, 0] = unit(key, first + 2 * ATTEMPTS)
    out[ATTEMPTS, 1] = unit(key, first + 2 * ATTEMPTS + 1)


@_jit
def window(height: float, width: float, draws: np.ndarray, d: np.ndarray) -> tuple[float, float, float, float]:
    """One crop's window ``(y0, x0, h, w)`` in pixels (float64) in an image of ``height`` x ``width`` pixels, from
    its draws ``draws`` (``[ATTEMPTS + 1, 2]``, see :func:`candidates`; unread for an evaluation crop) and its
    constants ``d``."""
    center = d[CENTER]
    if center == center:  # an evaluation crop: torchvision's Resize(R) + CenterCrop(S), R = round(S / c)
        size = d[SIZE]
        resize = np.rint(size / center)
        short = min(height, width)
        # torchvision: the shorter side becomes R, the longer int(R * long / short)
        rh = resize if height <= width else np.floor(resize * height / short)
        rw = resize if width <= height else np.floor(resize * width / short)
        top, left = np.rint((rh - size) / 2.0), np.rint((rw - size) / 2.0)
        sy, sx = height / rh, width / rw
        return top * sy, left * sx, size * sy, size * sx
    area = height * width
    for k in range(ATTEMPTS):
        target = area * draws[k, 0]
        ratio = draws[k, 1]
        w = np.rint(math.sqrt(target * ratio))  # round half to even, as Python's round() in torchvision
        h = np.rint(math.sqrt(target / ratio))
        if 0.0 < w <= width and 0.0 < h <= height:
            y0 = min(np.floor(draws[ATTEMPTS, 0] * (height - h + 1.0)), height - h)
            x0 = min(np.floor(draws[ATTEMPTS, 1] * (width - w + 1.0)), width - w)
            return y0, x0, h, w
    in_ratio = width / height
    w = np.rint(height * d[RATIO_HIGH]) if in_ratio > d[RATIO_HIGH] else width
    h = np.rint(width / d[RATIO_LOW]) if in_ratio < d[RATIO_LOW] else height
    w, h = max(w, 1.0), max(h, 1.0)  # where torchvision's fallback would be empty (a 1x1 image), one pixel
    return np.floor((height - h) / 2.0), np.floor((width - w) / 2.0), h, w


@_jit
def batch_candidates(constants: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """:func:`candidates` of every crop: float64 ``[B, n, ATTEMPTS + 1, 2]`` from ``[n, FIELDS]`` constants and
    ``[B]`` uint64 keys."""
    out = np.empty((keys.shape[0], constants.shape[0], ATTEMPTS + 1, 2))
    for b in range(keys.shape[0]):
        for c in range(constants.shape[0]):
            candidates(out[b, c], keys[b], c, constants[c])
    return out


@_jit
def batch_windows(draws: np.ndarray, constants: np.ndarray, hw: np.ndarray) -> np.ndarray:
    """:func:`window` of every crop: float64 ``[B, n, 4]`` from draws ``[B, n, ATTEMPTS + 1, 2]``, ``[n, FIELDS]``
    constants and ``[B, 2]`` float64 heights and widths."""
    out = np.empty((draws.shape[0], draws.shape[1], 4), dtype=np.float64)
    for b in range(draws.shape[0]):
        for c in range(draws.shape[1]):
            out[b, c, 0], out[b, c, 1], out[b, c, 2], out[b, c, 3] = window(hw[b, 0], hw[b, 1], draws[b, c],
                                                                            constants[c])
    return out
