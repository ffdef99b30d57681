"""The multi-crop augmentations as DALI graph pieces, written once for both devices.

Every function takes and returns DALI ``DataNode`` objects and runs on the device of the image it is given:
a GPU image (after the "mixed" decoder) stays on the GPU, a CPU image stays on the CPU. None of them draws
random numbers: their per-crop parameters come from the graph's crop step (:mod:`dali_multicrop.step`), as
per-sample CPU argument inputs.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode

from ..step.layout import NO_BLUR_SIGMA, SOLARIZE_OFFSET

__all__ = ["resized_crop", "colour", "coloured_crop", "blur", "blurred",
           "solarize", "normalize", "when"]

_SOLARIZE_THRESHOLD = 128
"""Pixels at or above this value (0-255) are inverted by solarisation, as torchvision's and DINO's."""

# The solarising lookup table: index v (a pixel value) is left as it is, index SOLARIZE_OFFSET + v is solarised.
_LUT_KEYS = list(range(2 * SOLARIZE_OFFSET))
_LUT_VALUES = [v for v in range(SOLARIZE_OFFSET)] + [v if v < _SOLARIZE_THRESHOLD else 255 - v
                                                      for v in range(SOLARIZE_OFFSET)]


_INTERP = {"bilinear": types.INTERP_LINEAR, "bicubic": types.INTERP_CUBIC}
"""DALI's filter for each of :data:`~dali_multicrop.recipes.spec.INTERPOLATIONS` (the GPU graph's resize): with
antialiasing, within 0.15 code values (0-255) of torchvision's resize on PIL images (``docs/fidelity.md``)."""


def resized_crop(image: DataNode, roi_start: Any, roi_end: Any, out_size: int, interpolation: str = "bilinear",
                 cut: bool = True, minibatch_size: Optional[int] = None) -> DataNode:
    """Cuts the window ``[roi_start, roi_end)`` (float32 ``(y, x)`` in pixels, x swapped for a mirrored crop) out of
    an HWC uint8 image and resizes it to ``out_size x out_size`` with ``interpolation`` ("bilinear" or "bicubic"),
    antialiased, as torchvision on PIL images; uint8 HWC out, on the image's device. ``cut``: a random window, cut
    out before resizing as ``RandomResizedCrop`` does (False: an evaluation window, a box of the whole image resized,
    as ``Resize`` then ``CenterCrop``).

    On the CPU, Pillow's own resampling, value for value (:mod:`dali_multicrop.graph.cpu_crop`); on the GPU, DALI's
    ``fn.resize`` with the same filter (within 0.15 code values). ``minibatch_size`` (the GPU's): the most samples
    one kernel launch takes (None: DALI's default, 32; see :mod:`dali_multicrop.graph.executor`)."""
    if image.device == "cpu":
        from .cpu_crop import crop_node

        return crop_node(image, roi_start, roi_end, None, out_size, interpolation, cut)
    launch = {} if minibatch_size is None else {"minibatch_size": minibatch_size}
    return fn.resize(image, roi_start=roi_start, roi_end=roi_end, size=[out_size, out_size], antialias=True,
                     interp_type=_INTERP[interpolation], device=image.device, **launch)


def colour(crop: DataNode, row: DataNode) -> DataNode:
    """``ColorJitter`` (in the crop's own order) then ``RandomGrayscale``, as torchvision on PIL images computes
    them, from the crop's colour ``row`` (float32 ``[ROW_FIELDS]``, the crop step's), on the GPU: two CUDA kernels
    built from the same per-pixel arithmetic as the CPU's (:mod:`dali_multicrop.graph.gpu_colour`). uint8 HWC out.
    The CPU colours a crop as it resizes it (:func:`coloured_crop`)."""
    from .gpu_colour import gpu_colour

    if crop.device != "gpu":
        raise ValueError("augment.colour runs on the GPU; on the CPU use augment.coloured_crop, which colours each "
                         "crop as it resizes it")
    # DALI's numba_function sets no layout on its output: name it, or a blur would take the channels for a third
    # spatial axis (a metadata-only reshape, no copy)
    return fn.reshape(gpu_colour(crop, row), layout="HWC")


def coloured_crop(image: DataNode, roi_start: Any, roi_end: Any, row: DataNode, out_size: int,
                  interpolation: str = "bilinear", cut: bool = True, minibatch_size: Optional[int] = None) -> DataNode:
    """:func:`resized_crop` then :func:`colour` with the crop's colour ``row`` (float32 ``[ROW_FIELDS]``, on the
    image's device): on the CPU one compiled operator per crop does both (the crop stays in the cache between
    them), on the GPU DALI's resize and the colour's two kernels. uint8 HWC out."""
    if image.device == "cpu":
        from .cpu_crop import crop_node

        return crop_node(image, roi_start, roi_end, row, out_size, interpolation, cut)
    return colour(resized_crop(image, roi_start, roi_end, out_size, interpolation, cut, minibatch_size), row)


def blur(crop: DataNode, sigma: DataNode) -> DataNode:
    """Gaussian blur with a per-sample sigma (float32 ``[1]``, output pixels; window ``2*ceil(3*sigma)+1``)."""
    return fn.gaussian_blur(crop, sigma=sigma, device=crop.device)


def blurred(sigma: DataNode) -> DataNode:
    """The bool scalar "this crop is blurred" from its blur sigma (``NO_BLUR_SIGMA`` where it is not)."""
    return fn.squeeze(sigma, axes=[0]) > 2 * NO_BLUR_SIGMA


def when(predicate: DataNode, op: Callable[..., DataNode], crop: DataNode, *args: Any) -> DataNode:
    """``op(crop, *args)`` where the per-sample bool scalar ``predicate`` is True, ``crop`` elsewhere; computed
    only where it is True (DALI conditionals: the pipeline needs ``enable_conditionals=True``)."""
    if predicate:
        out = op(crop, *args)
    else:
        out = crop
    return out


def solarize(crop: DataNode, offset: DataNode) -> DataNode:
    """Inverts the pixels at or above 128 where the per-sample ``offset`` (uint16 ``[1]``) is
    ``SOLARIZE_OFFSET``; crops with offset 0 pass unchanged."""
    return fn.lookup_table(crop + offset, keys=_LUT_KEYS, values=_LUT_VALUES, dtype=types.UINT8, device=crop.device)


def normalize(crop: DataNode, mean: Sequence[float], std: Sequence[float], dtype: types.DALIDataType) -> DataNode:
    """``(x/255 - mean) / std`` per channel (``mean``/``std`` RGB in [0, 1] units), HWC uint8 to CHW in
    ``dtype``."""
    return fn.crop_mirror_normalize(crop, output_layout="CHW", dtype=dtype, mean=[255.0 * m for m in mean],
                                    std=[255.0 * s for s in std], device=crop.device)
