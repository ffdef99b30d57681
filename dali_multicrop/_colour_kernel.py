"""The CPU graph's colour map, compiled by Numba: ``out = M @ rgb + T`` per pixel, rounded to the nearest value (ties
to even) and saturated to uint8, as ``fn.coord_transform`` (the GPU graph's operator) computes it. One DALI operator
for the process, applied to every crop of every CPU graph: no Python per crop or per batch, so the GIL is free while
DALI's threads colour the crops (one sample a call, in parallel). Imported only when a CPU graph is built, so that
importing the package does not load Numba and LLVM."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ._numba import jit

__all__ = ["colour_operator", "map_pixels"]


@jit
def map_pixels(out: np.ndarray, crop: np.ndarray, block: np.ndarray) -> None:
    """``out`` (uint8 HWC) = the map ``block`` (float32 ``[3, 4]``, ``[M | T]`` in 0-255 units) of ``crop`` (uint8
    HWC, the same shape), rounded and saturated."""
    height, width, _ = crop.shape
    for y in range(height):
        for x in range(width):
            r, g, b = np.float32(crop[y, x, 0]), np.float32(crop[y, x, 1]), np.float32(crop[y, x, 2])
            for c in range(3):
                v = block[c, 0] * r + block[c, 1] * g + block[c, 2] * b + block[c, 3]
                out[y, x, c] = min(max(round(v), 0), 255)


def _run(out: Any, crop: Any, block: Any) -> None:
    map_pixels(out, crop, block)


def _setup(outs: Any, ins: Any) -> None:
    """The output's shape per sample: the crop's."""
    for i in range(len(outs[0])):
        for d in range(3):
            outs[0][i][d] = ins[0][i][d]


_LOCK = threading.Lock()
_OPERATOR: list[Any] = []


def colour_operator() -> Any:
    """DALI's CPU operator for the map, compiled once per process (about 2 s, at the first CPU graph's build) and
    shared by every crop and graph: call it with a crop node (uint8 HWC) and its ``[3, 4]`` block node (float32)."""
    with _LOCK:
        if not _OPERATOR:
            from nvidia.dali import types
            from nvidia.dali.plugin.numba.experimental import NumbaFunction

            _OPERATOR.append(NumbaFunction(run_fn=_run, setup_fn=_setup, out_types=[types.UINT8],
                                           in_types=[types.UINT8, types.FLOAT], outs_ndim=[3], ins_ndim=[3, 2],
                                           device="cpu"))
        return _OPERATOR[0]
