"""The crop step's kernel (see :mod:`dali_multicrop.step`), compiled by Numba: DALI's operator, and the same
per-sample function for Python callers. Imported only when a graph is built or a batch drawn, so that importing
the package does not load Numba and LLVM."""

from __future__ import annotations

from typing import Any

import numpy as np

from numba import carray

from ..common.compiled import (RUN_SIGNATURE, SETUP_SIGNATURE, c_function, cpu_operator, data, jit, operator_once,
                      shape)
from ..pixels.pil_colour import ROW_FIELDS
from .draw_kernel import crop_flip, crop_parameters
from .layout import ATTEMPTS, CENTER, KEY_BYTES
from .window_kernel import candidates, window

__all__ = ["batch_flips", "batch_parameters", "batch_step", "key_of", "step_operator"]


@jit
def _sample(rows: np.ndarray, colour: np.ndarray, blur: np.ndarray, solarize: np.ndarray, key: np.uint64,
            constants: np.ndarray, shape: np.ndarray) -> None:
    """One sample's outputs (``rows`` ``[4n, 2]``, ``colour`` ``[n, ROW_FIELDS]``, ``blur`` and ``solarize`` ``[n, 1]``;
    see :mod:`dali_multicrop.step`) from its stream ``key``, the ``[n, FIELDS]`` constants and its image's shape
    (HWC)."""
    height, width = np.float64(shape[0]), np.float64(shape[1])
    n = constants.shape[0]
    draws = np.empty((ATTEMPTS + 1, 2))
    for c in range(n):
        d = constants[c]
        if d[CENTER] != d[CENTER]:  # NaN: a random window (an evaluation crop draws none)
            candidates(draws, key, c, d)
        y0, x0, h, w = window(height, width, draws, d)
        y1, x1 = y0 + h, x0 + w
        mirrored = crop_flip(key, c, d)
        rows[2 * c, 0], rows[2 * c, 1] = y0, (x1 if mirrored else x0)
        rows[2 * c + 1, 0], rows[2 * c + 1, 1] = y1, (x0 if mirrored else x1)
        rows[2 * n + 2 * c, 0], rows[2 * n + 2 * c, 1] = x0 / width, y0 / height
        rows[2 * n + 2 * c + 1, 0], rows[2 * n + 2 * c + 1, 1] = x1 / width, y1 / height
        blur[c, 0], solarize[c, 0] = crop_parameters(colour[c], key, c, d)


@jit
def batch_step(constants: np.ndarray, keys: np.ndarray, shapes: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`_sample` of every sample: ``rows`` float32 ``[B, 4n, 2]``, ``colour`` float32 ``[B, n, ROW_FIELDS]``,
    ``blur`` float32 and ``solarize`` uint16 ``[B, n, 1]``, from ``[n, FIELDS]`` constants, ``[B]`` uint64 keys
    and ``[B, 2]`` int64 shapes."""
    b, n = keys.shape[0], constants.shape[0]
    rows = np.empty((b, 4 * n, 2), dtype=np.float32)
    colour = np.empty((b, n, ROW_FIELDS), dtype=np.float32)
    blur = np.empty((b, n, 1), dtype=np.float32)
    solarize = np.empty((b, n, 1), dtype=np.uint16)
    for i in range(b):
        _sample(rows[i], colour[i], blur[i], solarize[i], keys[i], constants, shapes[i])
    return rows, colour, blur, solarize


@jit
def batch_parameters(constants: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every crop's random parameters without its window (they do not depend on the image): ``colour`` float32
    ``[B, n, ROW_FIELDS]``, ``blur`` float32 and ``solarize`` uint16 ``[B, n, 1]``, as :func:`batch_step` draws them,
    from ``[n, FIELDS]`` constants and ``[B]`` uint64 keys."""
    b, n = keys.shape[0], constants.shape[0]
    colour = np.empty((b, n, ROW_FIELDS), dtype=np.float32)
    blur = np.empty((b, n, 1), dtype=np.float32)
    solarize = np.empty((b, n, 1), dtype=np.uint16)
    for i in range(b):
        for c in range(n):
            blur[i, c, 0], solarize[i, c, 0] = crop_parameters(colour[i, c], keys[i], c, constants[c])
    return colour, blur, solarize


@jit
def batch_flips(constants: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """bool ``[B, n]``: every crop's flip, from ``[n, FIELDS]`` constants and ``[B]`` uint64 keys."""
    out = np.empty((keys.shape[0], constants.shape[0]), dtype=np.bool_)
    for i in range(keys.shape[0]):
        for c in range(constants.shape[0]):
            out[i, c] = crop_flip(keys[i], c, constants[c])
    return out


@jit
def key_of(row: np.ndarray) -> np.uint64:
    """The stream key in the last ``KEY_BYTES`` bytes of a uint8 ``row``, little-endian (a row of the feed's
    ``keyed_paths`` or ``keys``: :func:`~dali_multicrop.step.draws.key_rows`)."""
    key = np.uint64(0)
    start = row.shape[0] - KEY_BYTES
    for j in range(KEY_BYTES):
        key |= np.uint64(row[start + j]) << np.uint64(8 * j)
    return key


@c_function(RUN_SIGNATURE)
def _run(outs: Any, out_shapes: Any, out_ndims: Any, num_outs: Any, ins: Any, in_shapes: Any, in_ndims: Any,
         num_ins: Any) -> None:
    """The step's per-sample function: :func:`_sample` on DALI's outputs and inputs (the sample's key row of the
    feed's keyed paths or keys, the constants, the image's shape)."""
    n = shape(out_shapes, 1, 2)[0]
    rows = carray(data(outs, 0), (4 * n, 2), dtype=np.float32)
    colour = carray(data(outs, 1), (n, ROW_FIELDS), dtype=np.float32)
    blur = carray(data(outs, 2), (n, 1), dtype=np.float32)
    solarize = carray(data(outs, 3), (n, 1), dtype=np.uint16)
    key = carray(data(ins, 0), shape(in_shapes, 0, 1)[0], dtype=np.uint8)
    table = shape(in_shapes, 1, 2)
    constants = carray(data(ins, 1), (table[0], table[1]), dtype=np.float64)
    image_shape = carray(data(ins, 2), shape(in_shapes, 2, 1)[0], dtype=np.int64)
    _sample(rows, colour, blur, solarize, key_of(key), constants, image_shape)


@c_function(SETUP_SIGNATURE)
def _setup(out_shapes: Any, out_ndims: Any, num_outs: Any, in_shapes: Any, in_ndims: Any, num_ins: Any,
           samples: Any) -> None:
    """The step's output shapes per sample, ``n`` the constants' rows: ``[4n, 2]``, ``[n, ROW_FIELDS]``, ``[n, 1]``,
    ``[n, 1]``."""
    for i in range(samples):
        n = shape(in_shapes, 1, 2, i, samples)[0]
        fields = (2, ROW_FIELDS, 1, 1)
        for k in range(4):
            out = shape(out_shapes, k, 2, i, samples)
            out[0], out[1] = (4 * n if k == 0 else n), fields[k]


def step_operator() -> Any:
    """DALI's operator for the step, made once per process and shared by every graph (its arguments do not depend on
    the spec). Its C functions are compiled at the first import of this module after an install and cached on disk
    (:func:`~dali_multicrop.common.compiled.c_function`); other processes load them."""
    def make() -> Any:
        from nvidia.dali import types

        return cpu_operator(_run, _setup, out_types=[types.FLOAT, types.FLOAT, types.FLOAT, types.UINT16],
                            in_types=[types.UINT8, types.FLOAT64, types.INT64], outs_ndim=[2, 2, 2, 2],
                            ins_ndim=[1, 2, 1])

    return operator_once("crop step", make)
