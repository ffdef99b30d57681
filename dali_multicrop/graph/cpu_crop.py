"""The CPU graph's crop operator: each crop's window resized, mirrored and coloured as torchvision on PIL images
does it, in one compiled call per crop: :func:`~dali_multicrop.pixels.pil_resize.resized_crop` (Pillow's two resampling
passes, value for value) then :func:`~dali_multicrop.pixels.crop_colour.colour_in_place` (``ColorJitter`` and grayscale,
value for value) on the crop while it is still in the cache.

One DALI ``numba_function`` for the process (compiled at the first CPU graph's build, a couple of seconds) serves
every crop size, filter and kind of window: a loop over the crop's pixels in DALI's threads, one sample a call, no
Python and no GIL. Its inputs, per crop:

* the crop group's *plan*, a constant of the graph, uint8 ``[S]``: its length is the crop's side ``S``, its values
  the filter, the kind of window and the installed Pillow's pass order (:func:`plan_code`). It comes first because
  DALI's setup of a ``numba_function``'s output shapes sees only its inputs' shapes, and (DALI 2.4) only as many
  inputs as the operator has outputs;
* the image (uint8 HWC);
* the crop's resize region as the crop step gives it: start and end ``(y, x)`` in pixels (float32 ``[2]`` each), x
  start and end swapped for a mirrored crop;
* the crop's colour row (float32 ``[ROW_FIELDS]``, :data:`~dali_multicrop.pixels.pil_colour.ROW_FIELDS`;
  :data:`NO_COLOUR` for a resize alone).

The GPU graph runs the same steps as separate operators: DALI's ``fn.resize`` (the same filter, antialiased) and the
colour's CUDA kernels (:mod:`dali_multicrop.graph.gpu_colour`); see :func:`dali_multicrop.graph.augment.coloured_crop`.
Imported only when a graph is built, so that importing the package does not load Numba and LLVM.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numba import carray

from ..common.compiled import RUN_SIGNATURE, SETUP_SIGNATURE, c_function, cpu_operator, data, operator_once, shape
from ..pixels.crop_colour import colour_in_place
from ..pixels.pil_colour import ROW_FIELDS, colour_row
from ..pixels.pil_resize import FILTERS, pillow_rule, resized_crop

__all__ = ["NO_COLOUR", "plan_code", "crop_operator", "crop_node"]

NO_COLOUR = colour_row(np.ones(3), np.arange(4), -1, False)
"""The colour row that leaves a crop as it is (every factor 1, no hue, not grey)."""


def plan_code(interpolation: str, cut: bool, rule: int) -> int:
    """The value of a crop group's plan: ``4 * rule + 2 * filter + cut`` (filter:
    :data:`~dali_multicrop.pixels.pil_resize.FILTERS`; rule: the pass order of the Pillow matched,
    :func:`~dali_multicrop.pixels.pil_resize.pillow_rule`)."""
    return 4 * rule + 2 * FILTERS[interpolation] + int(cut)


@c_function(SETUP_SIGNATURE)
def _shape(out_shapes: Any, out_ndims: Any, num_outs: Any, in_shapes: Any, in_ndims: Any, num_ins: Any,
           samples: Any) -> None:
    """The operator's setup: each output ``S x S x 3``, ``S`` the length of the sample's plan (its first input)."""
    for i in range(samples):
        side = shape(in_shapes, 0, 1, i, samples)[0]
        out = shape(out_shapes, 0, 3, i, samples)
        out[0], out[1], out[2] = side, side, 3


@c_function(RUN_SIGNATURE)
def _run(outs: Any, out_shapes: Any, out_ndims: Any, num_outs: Any, ins: Any, in_shapes: Any, in_ndims: Any,
         num_ins: Any) -> None:
    """The operator's per-sample function (see the module's notes)."""
    side = shape(out_shapes, 0, 3)
    out = carray(data(outs, 0), (side[0], side[1], side[2]), dtype=np.uint8)
    size = shape(in_shapes, 1, 3)
    image = carray(data(ins, 1), (size[0], size[1], size[2]), dtype=np.uint8)
    start = carray(data(ins, 2), 2, dtype=np.float32)
    end = carray(data(ins, 3), 2, dtype=np.float32)
    row = carray(data(ins, 4), ROW_FIELDS, dtype=np.float32)
    y0, x0, y1, x1 = start[0], start[1], end[0], end[1]
    mirror = x0 > x1
    if mirror:
        x0, x1 = x1, x0
    code = carray(data(ins, 0), 1, dtype=np.uint8)[0]
    resized_crop(out, image, y0, x0, y1, x1, (code >> 1) & 1, (code & 1) == 1, mirror, code >> 2)
    colour_in_place(out, row)


def crop_operator() -> Any:
    """DALI's CPU crop operator for the process (see the module's notes); its C functions are compiled at the first
    import of this module in a fresh install and cached on disk."""
    def make() -> Any:
        from nvidia.dali import types

        return cpu_operator(_run, _shape, out_types=[types.UINT8],
                            in_types=[types.UINT8, types.UINT8, types.FLOAT, types.FLOAT, types.FLOAT],
                            outs_ndim=[3], ins_ndim=[1, 3, 1, 1, 1])

    return operator_once("crop, cpu", make)


def crop_node(image: Any, start: Any, end: Any, row: Any, size: int, interpolation: str, cut: bool = True) -> Any:
    """In a pipeline definition, on the CPU: the window ``[start, end)`` of ``image`` resized to ``size x size`` with
    ``interpolation`` ("bilinear" or "bicubic"), then coloured by ``row`` (a node, or None: not coloured), as
    torchvision on PIL images does; uint8 HWC. ``cut``: a random window, cut out before resizing
    (``RandomResizedCrop``); otherwise an evaluation window, a box of the whole image resized (``Resize`` then
    ``CenterCrop``)."""
    from nvidia.dali import fn, types

    plan = fn.constant(idata=[plan_code(interpolation, cut, pillow_rule())], shape=[size], dtype=types.UINT8)
    if row is None:
        row = fn.constant(fdata=[float(v) for v in NO_COLOUR], dtype=types.FLOAT)
    # DALI's numba_function sets no layout on its output: name it (a metadata-only reshape, no copy)
    return fn.reshape(crop_operator()(plan, image, start, end, row), layout="HWC")
