"""The crop-window kernel, compiled by Numba (see :mod:`dali_multicrop.windows`, which imports this module only when a
window is computed, so that importing the package does not load Numba and LLVM)."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from ._numba import jit as _jit
from .draws import ATTEMPTS
from .windows import (CENTER, FLIP, KEY_HIGH, KEY_LOW, LOG_RATIO_HIGH, LOG_RATIO_LOW, RATIO_HIGH, RATIO_LOW,
                      SCALE_HIGH, SCALE_LOW, SIZE, STREAM)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@_jit
def _mix(x: np.uint64) -> np.uint64:
    """SplitMix64's output function: a bijection of 64-bit words that scrambles every input bit into every output
    bit (Steele, Lea and Flood, 2014)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@_jit
def _unit(key: np.uint64, counter: int) -> float:
    """Draw number ``counter`` of the stream ``key``: uniform in [0, 1) on 2**-53 steps (SplitMix64 at the
    counter's position: counter-based, so any draw is computed on its own, in any order, in any thread)."""
    return np.float64(_mix(key + np.uint64(counter + 1) * _GOLDEN) >> np.uint64(11)) * _TO_UNIT


@_jit
def _key(d: np.ndarray) -> np.uint64:
    """The sample's stream key from a packed row ``d`` (its two 32-bit halves)."""
    return (np.uint64(d[KEY_HIGH]) << np.uint64(32)) | np.uint64(d[KEY_LOW])


@_jit
def _candidates(out: np.ndarray, crop: int, d: np.ndarray) -> None:
    """Writes crop ``crop``'s draws (float64 ``[ATTEMPTS + 1, 2]``: the attempts' (area fraction uniform in the
    crop's scale, aspect ratio log-uniform in its ratio), then the position (u_y, u_x)) from its packed row ``d``:
    draws ``STREAM * crop`` onwards of the stream of the sample's key (:func:`_key`)."""
    key = _key(d)
    first = STREAM * crop
    for k in range(ATTEMPTS):
        out[k, 0] = d[SCALE_LOW] + (d[SCALE_HIGH] - d[SCALE_LOW]) * _unit(key, first + 2 * k)
        out[k, 1] = math.exp(d[LOG_RATIO_LOW] + (d[LOG_RATIO_HIGH] - d[LOG_RATIO_LOW]) * _unit(key, first + 2 * k + 1))
    out[ATTEMPTS, 0] = _unit(key, first + 2 * ATTEMPTS)
    out[ATTEMPTS, 1] = _unit(key, first + 2 * ATTEMPTS + 1)


@_jit
def _window(height: float, width: float, draws: np.ndarray, d: np.ndarray) -> tuple[float, float, float, float]:
    """One crop's window ``(y0, x0, h, w)`` in pixels (float64) in an image of ``height`` x ``width`` pixels, from
    its draws ``draws`` (``[ATTEMPTS + 1, 2]``, see :func:`_candidates`) and its packed row ``d`` (``FIELDS``
    values: the constants)."""
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
def _sample_rows(out: np.ndarray, packed: np.ndarray, shape: np.ndarray) -> None:
    """One sample's output rows (float32 ``[4n, 2]``) from its packed input (``[n, FIELDS]``, its stream key
    included) and its image's shape (HWC): rows ``2c, 2c+1`` crop ``c``'s resize region, start ``(y, x)`` then end, in
    pixels (a mirrored crop has its x start and end swapped, which makes the resize mirror it); rows
    ``2n + 2c, 2n + 2c + 1`` its box ``(x0, y0), (x1, y1)`` as fractions of the image's width and height."""
    height, width = np.float64(shape[0]), np.float64(shape[1])
    n = packed.shape[0]
    draws = np.empty((ATTEMPTS + 1, 2))
    for c in range(n):
        if packed[c, CENTER] != packed[c, CENTER]:  # NaN: a random window (an evaluation crop draws nothing)
            _candidates(draws, c, packed[c])
        y0, x0, h, w = _window(height, width, draws, packed[c])
        y1, x1 = y0 + h, x0 + w
        mirrored = packed[c, FLIP] > 0.5
        out[2 * c, 0], out[2 * c, 1] = y0, (x1 if mirrored else x0)
        out[2 * c + 1, 0], out[2 * c + 1, 1] = y1, (x0 if mirrored else x1)
        out[2 * n + 2 * c, 0], out[2 * n + 2 * c, 1] = x0 / width, y0 / height
        out[2 * n + 2 * c + 1, 0], out[2 * n + 2 * c + 1, 1] = x1 / width, y1 / height


@_jit
def batch_rows(packed: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """:func:`_sample_rows` of every sample: float32 ``[B, 4n, 2]`` from ``[B, n, FIELDS]`` and ``[B, 2]`` int64
    shapes."""
    out = np.empty((packed.shape[0], 4 * packed.shape[1], 2), dtype=np.float32)
    for b in range(packed.shape[0]):
        _sample_rows(out[b], packed[b], shapes[b])
    return out


@_jit
def batch_candidates(packed: np.ndarray) -> np.ndarray:
    """:func:`_candidates` of every crop: float64 ``[B, n, ATTEMPTS + 1, 2]`` from ``[B, n, FIELDS]``."""
    out = np.empty((packed.shape[0], packed.shape[1], ATTEMPTS + 1, 2))
    for b in range(packed.shape[0]):
        for c in range(packed.shape[1]):
            _candidates(out[b, c], c, packed[b, c])
    return out


@_jit
def batch_windows(draws: np.ndarray, packed: np.ndarray, hw: np.ndarray) -> np.ndarray:
    """:func:`_window` of every crop: float64 ``[B, n, 4]`` from draws ``[B, n, ATTEMPTS + 1, 2]``, ``[B, n,
    FIELDS]`` and ``[B, 2]`` float64."""
    out = np.empty((packed.shape[0], packed.shape[1], 4), dtype=np.float64)
    for b in range(packed.shape[0]):
        for c in range(packed.shape[1]):
            out[b, c, 0], out[b, c, 1], out[b, c, 2], out[b, c, 3] = _window(hw[b, 0], hw[b, 1], draws[b, c],
                                                                             packed[b, c])
    return out


def _run(out: np.ndarray, packed: np.ndarray, shape: np.ndarray) -> None:
    """The step's per-sample function (compiled by DALI's plugin)."""
    _sample_rows(out, packed, shape)


def _setup(outs: Any, ins: Any) -> None:
    """The step's output shapes: ``[4n, 2]`` per sample, ``n`` the packed input's rows."""
    for i in range(len(outs[0])):
        outs[0][i][0] = 4 * ins[0][i][0]
        outs[0][i][1] = 2


_STEP_LOCK = threading.Lock()
_STEP: list[Any] = []


def step_operator() -> Any:
    """DALI's operator for the step, compiled once per process and shared by every graph (its arguments do not
    depend on the spec). The compilation, at the first graph's build, takes about 1.5-2 s and leaves about 90 MB of
    private memory (Numba's LLVM) in the process, measured on a 2-core x86 machine."""
    with _STEP_LOCK:
        if not _STEP:
            from nvidia.dali import types
            from nvidia.dali.plugin.numba.experimental import NumbaFunction

            _STEP.append(NumbaFunction(run_fn=_run, setup_fn=_setup, out_types=[types.FLOAT],
                                       in_types=[types.FLOAT64, types.INT64], outs_ndim=[2], ins_ndim=[2, 1]))
        return _STEP[0]
