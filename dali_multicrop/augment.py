"""The multi-crop augmentations as DALI graph pieces, written once for both devices.

Every function takes and returns DALI ``DataNode`` objects and runs on the device of the image it is given:
a GPU image (after the "mixed" decoder) stays on the GPU, a CPU image stays on the CPU. None of them draws
random numbers: their per-crop parameters come from :mod:`dali_multicrop.draws` through the graph's input,
as per-sample CPU argument inputs.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode

from .draws import NO_BLUR_SIGMA, SOLARIZE_OFFSET

__all__ = ["COLOUR_KERNELS", "resized_crop", "colour_transform", "blur", "blurred", "solarize", "normalize", "when",
           "opencv_available"]

_SOLARIZE_THRESHOLD = 128
"""Pixels at or above this value (0-255) are inverted by solarisation, as torchvision's and DINO's."""

# The solarising lookup table: index v (a pixel value) is left as it is, index SOLARIZE_OFFSET + v is solarised.
_LUT_KEYS = list(range(2 * SOLARIZE_OFFSET))
_LUT_VALUES = [v for v in range(SOLARIZE_OFFSET)] + [v if v < _SOLARIZE_THRESHOLD else 255 - v
                                                      for v in range(SOLARIZE_OFFSET)]


def resized_crop(image: DataNode, roi_start: Any, roi_end: Any, out_size: int, relative: bool = False) -> DataNode:
    """Cuts the window ``[roi_start, roi_end)`` (float ``(y, x)``, pixels or with ``relative`` fractions of the
    image; x swapped for a mirrored crop) out of an HWC uint8 image and resizes it to ``out_size x out_size``
    with antialiasing (linear), uint8 HWC out."""
    return fn.resize(image, roi_start=roi_start, roi_end=roi_end, roi_relative=relative, size=[out_size, out_size],
                     antialias=True, interp_type=types.INTERP_LINEAR, device=image.device)


COLOUR_KERNELS = ("auto", "dali", "opencv")
"""How :func:`colour_transform` runs on the CPU: ``dali`` (``fn.coord_transform``, the GPU graph's operator, on the
CPU), ``opencv`` (``cv2.transform`` per crop in a ``python_function``: the same map in a fraction of the CPU time,
within one code value of ``dali``'s, as the two round differently; ``bench/README.md``), ``auto`` (``opencv`` where
OpenCV imports).
The GPU always runs ``fn.coord_transform``."""


def opencv_available() -> bool:
    """Whether OpenCV (``cv2``) imports here."""
    try:
        import cv2  # noqa: F401
    except Exception:
        return False
    return True


def _opencv_colour(crops: Sequence[Any], blocks: Sequence[Any]) -> list[Any]:
    """The colour map of a batch of crops (uint8 HWC) with OpenCV: ``cv2.transform`` takes the ``[M | T]`` block
    as it is and saturates to uint8, as ``fn.coord_transform`` does."""
    import cv2

    return [cv2.transform(crop, block) for crop, block in zip(crops, blocks)]


def colour_transform(crop: DataNode, colour: DataNode, kernel: str = "dali") -> DataNode:
    """``out = M @ rgb + T`` per pixel, with ``colour`` the per-sample ``[M | T]`` block (float32 ``[3, 4]``,
    0-255 units); rounded and clamped to uint8. Colour jitter and grayscale are both such maps. ``kernel`` (see
    :data:`COLOUR_KERNELS`) chooses the CPU's implementation; on the GPU it is always ``fn.coord_transform``."""
    if kernel == "auto":
        kernel = "opencv" if opencv_available() else "dali"
    if crop.device == "cpu" and kernel == "opencv":
        return fn.python_function(crop, colour, function=_opencv_colour, batch_processing=True,
                                  output_layouts="HWC")
    return fn.coord_transform(crop, MT=colour, dtype=types.UINT8, device=crop.device)


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
