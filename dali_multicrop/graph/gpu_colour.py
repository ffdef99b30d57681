"""The GPU graph's colour operators: each crop's ``ColorJitter`` (in its own order) and grayscale, as torchvision on
PIL images computes them (:mod:`dali_multicrop.pixels.pil_colour`'s arithmetic), from the crop's colour row (the crop
step's ``colour`` output, :data:`~dali_multicrop.pixels.pil_colour.ROW_FIELDS`).

* CPU (for comparison): the CPU graph colours each crop in its crop operator as it resizes it
  (:mod:`dali_multicrop.graph.cpu_crop`, :func:`~dali_multicrop.pixels.crop_colour.colour_in_place`: one operation at a
  time over the crop), compiled once and shared by every crop and graph: no Python per crop or per batch.
* GPU: the same per-pixel functions in two CUDA kernels, a thread per pixel (grid-stride): the first writes each
  pixel's luma as the operations before contrast leave it (:func:`luma_before_contrast`), DALI's
  ``fn.reductions.sum`` adds them up on the device, the second applies the row (:func:`colour_pixels`), its
  contrast's grey taken from that sum. Nothing crosses to the host. DALI's GPU ``numba_function`` launches its kernel
  once per sample; the kernels run in Numba's CUDA simulator in the CPU tests (``tests/test_colour_kernel.py``).

Imported only when a graph is built, so that importing the package does not load Numba and LLVM.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import cuda  # a module global: Numba's CUDA simulator swaps it for its own in a kernel's globals

from ..common.compiled import SETUP_SIGNATURE, c_function, operator_class, operator_once, shape
from ..pixels.pil_colour import CONTRAST, ROW_FIELDS, applied, colour_pixel, contrast_stage, grey_of, luma

__all__ = ["GPU_BLOCKS", "GPU_THREADS", "colour_pixels", "gpu_colour", "launch",
           "luma_before_contrast", "luma_total"]

GPU_BLOCKS = (160, 1, 1)
"""Blocks per sample of the GPU kernels' launch (a grid-stride loop covers crops of any size)."""
GPU_THREADS = (256, 1, 1)
"""Threads per block of the GPU kernels' launch."""


@cuda.jit(device=True)
def _in_registers(row: Any, local: Any) -> Any:
    """``local`` (the thread's own ``[ROW_FIELDS]``) holding the colour ``row``: read once per thread (and, in Numba's
    CUDA simulator, a numpy array, which the per-pixel functions take where they would not take its arrays)."""
    for j in range(ROW_FIELDS):
        local[j] = row[j]
    return local


def luma_before_contrast(lum: Any, crop: Any, row: Any) -> None:
    """GPU kernel, a thread per pixel: ``lum`` (uint8 ``[H, W]``) = each pixel's luma as the operations before
    contrast in ``row``'s order leave it (0 where the row applies no contrast); their sum over the crop gives the
    contrast's grey (:func:`~dali_multicrop.pixels.pil_colour.grey_of`)."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    height, width = crop.shape[0], crop.shape[1]
    row = _in_registers(row, cuda.local.array(ROW_FIELDS, numba.float32))
    contrast = applied(CONTRAST, row)
    stages = contrast_stage(row)
    for i in range(start, height * width, stride):
        y, x = i // width, i % width
        if contrast:
            r, g, b = colour_pixel(crop[y, x, 0], crop[y, x, 1], crop[y, x, 2], row, 0, stages)
            lum[y, x] = luma(r, g, b)
        else:
            lum[y, x] = 0


def colour_pixels(out: Any, crop: Any, row: Any, total: Any) -> None:
    """GPU kernel, a thread per pixel: ``out`` (uint8 HWC) = ``crop`` through ``row`` (see
    :func:`~dali_multicrop.pixels.crop_colour.colour_crop`), the contrast's grey from ``total`` (uint64 ``[1, 1]``: the
    sum of :func:`luma_before_contrast`'s output, :func:`luma_total`)."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    height, width = crop.shape[0], crop.shape[1]
    row = _in_registers(row, cuda.local.array(ROW_FIELDS, numba.float32))
    grey = grey_of(total[0, 0], height * width)
    for i in range(start, height * width, stride):
        y, x = i // width, i % width
        r, g, b = colour_pixel(crop[y, x, 0], crop[y, x, 1], crop[y, x, 2], row, grey, 4)
        out[y, x, 0], out[y, x, 1], out[y, x, 2] = r, g, b


@c_function(SETUP_SIGNATURE)
def _same_shape(out_shapes: Any, out_ndims: Any, num_outs: Any, in_shapes: Any, in_ndims: Any, num_ins: Any,
                samples: Any) -> None:
    """The output's shape per sample: the crop's (its first input, HWC)."""
    for i in range(samples):
        crop, out = shape(in_shapes, 0, 3, i, samples), shape(out_shapes, 0, 3, i, samples)
        out[0], out[1], out[2] = crop[0], crop[1], crop[2]


@c_function(SETUP_SIGNATURE)
def _plane(out_shapes: Any, out_ndims: Any, num_outs: Any, in_shapes: Any, in_ndims: Any, num_ins: Any,
           samples: Any) -> None:
    """The output's shape per sample: the crop's height and width."""
    for i in range(samples):
        crop, out = shape(in_shapes, 0, 3, i, samples), shape(out_shapes, 0, 2, i, samples)
        out[0], out[1] = crop[0], crop[1]


def _gpu_function(**kwargs: Any) -> Any:
    """DALI's GPU ``numba_function`` (its kernel compiled for the pipeline's GPU by Numba's CUDA target). Where no
    GPU is visible the graph can still be defined, never built (``operator_counts`` measures its shape on a CPU
    machine): the operator is then made without its CUDA checks and without compiling its kernel, which leaves it
    nothing to launch. Called with :func:`~dali_multicrop.common.compiled.operator_once`'s lock held."""
    from nvidia.dali.plugin.numba.experimental import NumbaFunction

    Compiled = operator_class()  # the setups are cached C functions; DALI compiles the kernel for the device
    if cuda.is_available():
        try:
            return Compiled(**kwargs)
        except Exception as error:  # Numba's CUDA target, its NVVM or the driver: say what the graph needs
            raise RuntimeError(f"the GPU graph's colour kernels could not be compiled ({error}); they need Numba's "
                               "CUDA target and CUDA's NVVM (a CUDA toolkit, or pip install nvidia-nvvm with "
                               "CUDA_HOME laid out as Numba looks for it: bench/README.md, 'On a lent GPU')"
                               ) from error

    class DefinedOnly(Compiled):
        def _get_run_fn_gpu(self, run_fn: Any, types: Any, dims: Any) -> int:
            return 0

    checks = ("_check_minimal_numba_version", "_check_cuda_compatibility")
    saved = {name: NumbaFunction.__dict__[name] for name in checks}
    try:  # DALI calls them on the class: no CUDA runtime to ask here
        for name in checks:
            setattr(NumbaFunction, name, staticmethod(lambda throw=True: True))
        return DefinedOnly(**kwargs)
    finally:
        for name, check in saved.items():
            setattr(NumbaFunction, name, check)


def gpu_colour(crop: Any, row: Any) -> Any:
    """In a pipeline definition, on the GPU: ``crop`` (uint8 HWC, on the GPU) through its colour ``row`` (float32
    ``[ROW_FIELDS]``, on the GPU): the two kernels and DALI's sum between them. The kernels are compiled once per
    process, for the first GPU graph's device (Numba's CUDA target)."""
    from nvidia.dali import types

    def make(kernel: Any, setup: Any, ndim: int, extra: list[Any]) -> Any:
        return lambda: _gpu_function(run_fn=kernel, setup_fn=setup, out_types=[types.UINT8],
                                     in_types=[types.UINT8, types.FLOAT, *extra], outs_ndim=[ndim],
                                     ins_ndim=[3, 1] + [2] * len(extra), device="gpu", blocks=list(GPU_BLOCKS),
                                     threads_per_block=list(GPU_THREADS))

    suffix = "" if cuda.is_available() else " (defined only)"
    first = operator_once("colour, gpu luma" + suffix, make(luma_before_contrast, _plane, 2, []))
    second = operator_once("colour, gpu pixels" + suffix, make(colour_pixels, _same_shape, 3, [types.UINT64]))
    return second(crop, row, luma_total(first(crop, row)))


def luma_total(lum: Any) -> Any:
    """In a pipeline definition: the sum of each sample's lumas (uint8 ``[H, W]``), uint64 ``[1, 1]``, on the
    node's device (DALI sums uint8 into unsigned 64-bit integers, not signed ones)."""
    from nvidia.dali import fn, types

    return fn.reductions.sum(lum, dtype=types.UINT64, keep_dims=True, device=lum.device)


def launch(kernel: Any, *arrays: np.ndarray, blocks: int = 2, threads: int = 16) -> None:
    """Runs a GPU kernel of this module over numpy arrays, ``blocks`` x ``threads`` threads (the grid-stride loop
    covers any crop with any launch): on a GPU, or in Numba's CUDA simulator where ``NUMBA_ENABLE_CUDASIM=1`` was
    set before Numba was imported (the CPU tests; the simulator runs a Python thread per CUDA thread, so keep the
    launch small there)."""
    cuda.jit(kernel)[blocks, threads](*arrays)
