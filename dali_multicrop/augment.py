"""The multi-crop augmentations as DALI graph pieces, written once for both devices.

Every function takes and returns DALI ``DataNode`` objects and runs on the device of the image it is given:
a GPU image (after the "mixed" decoder) stays on the GPU, a CPU image stays on the CPU. None of them draws
random numbers: their per-crop parameters come from the graph's crop step (:mod:`dali_multicrop.step`), as
per-sample CPU argument inputs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, Sequence

from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode

from .draws import NO_BLUR_SIGMA, SOLARIZE_OFFSET

__all__ = ["CPU_KERNELS", "cpu_kernel", "resized_crop", "colour_transform", "opencv_crops", "blur", "blurred",
           "solarize", "normalize", "when", "opencv_available"]

_SOLARIZE_THRESHOLD = 128
"""Pixels at or above this value (0-255) are inverted by solarisation, as torchvision's and DINO's."""

# The solarising lookup table: index v (a pixel value) is left as it is, index SOLARIZE_OFFSET + v is solarised.
_LUT_KEYS = list(range(2 * SOLARIZE_OFFSET))
_LUT_VALUES = [v for v in range(SOLARIZE_OFFSET)] + [v if v < _SOLARIZE_THRESHOLD else 255 - v
                                                      for v in range(SOLARIZE_OFFSET)]


def resized_crop(image: DataNode, roi_start: Any, roi_end: Any, out_size: int, relative: bool = False,
                 minibatch_size: Optional[int] = None) -> DataNode:
    """Cuts the window ``[roi_start, roi_end)`` (float ``(y, x)``, pixels or with ``relative`` fractions of the
    image; x swapped for a mirrored crop) out of an HWC uint8 image and resizes it to ``out_size x out_size``
    with antialiasing (linear), uint8 HWC out. ``minibatch_size``: the most samples one kernel launch takes (None:
    DALI's default, 32; see :mod:`dali_multicrop.executor`)."""
    launch = {} if minibatch_size is None else {"minibatch_size": minibatch_size}
    return fn.resize(image, roi_start=roi_start, roi_end=roi_end, roi_relative=relative, size=[out_size, out_size],
                     antialias=True, interp_type=types.INTERP_LINEAR, device=image.device, **launch)


CPU_KERNELS = ("auto", "dali", "opencv")
"""How the CPU graph resizes and colours its random-window crops: ``dali`` (the GPU graph's operators on the CPU:
:func:`resized_crop` and :func:`colour_transform`), ``opencv`` (:func:`opencv_crops`: OpenCV's resize, mirror and
colour map of every such crop in one step per batch, on the graph's threads: about 40% of ``dali``'s CPU time for
these steps, within the tolerance ``bench/README.md`` states and ``tests/test_loader_colour.py`` holds), ``auto``
(``opencv`` where OpenCV imports). The GPU graph, and crops with a fixed evaluation window, always take ``dali``."""


def cpu_kernel(kernel: str) -> str:
    """``kernel`` (one of :data:`CPU_KERNELS`) with ``auto`` resolved."""
    if kernel not in CPU_KERNELS:
        raise ValueError(f"cpu_kernel must be one of {', '.join(CPU_KERNELS)}, got {kernel!r}")
    if kernel == "auto":
        return "opencv" if opencv_available() else "dali"
    return kernel


def opencv_available() -> bool:
    """Whether OpenCV (``cv2``) imports here."""
    try:
        import cv2  # noqa: F401
    except Exception:
        return False
    return True


def colour_transform(crop: DataNode, colour: DataNode) -> DataNode:
    """``out = M @ rgb + T`` per pixel, with ``colour`` the per-sample ``[M | T]`` block (float32 ``[3, 4]``,
    0-255 units); rounded and clamped to uint8. Colour jitter and grayscale are both such maps."""
    return fn.coord_transform(crop, MT=colour, dtype=types.UINT8, device=crop.device)


class _OpenCVCrops:
    """The step :func:`opencv_crops` runs (``fn.python_function``, once per batch): per sample and crop, the window
    cut out of the image (whole pixels), resized with OpenCV (``INTER_AREA`` where the window is at least the crop's
    size both ways, an antialiasing box filter; ``INTER_LINEAR`` where it is enlarged), mirrored where its x ends are
    swapped, then colour-mapped (``cv2.transform``: the ``[M | T]`` block as it is, saturated to uint8, as
    ``fn.coord_transform``). OpenCV releases the GIL: the crops run on ``threads`` threads."""

    def __init__(self, crops: Sequence[int], sizes: Sequence[int], threads: int) -> None:
        self.crops, self.sizes, self.threads = list(crops), list(sizes), max(1, int(threads))

    def _one(self, image: Any, rows: Any, block: Any, crop: int, size: int) -> Any:
        import cv2

        (y0, xa), (y1, xb) = rows[2 * crop].round().astype(int), rows[2 * crop + 1].round().astype(int)
        x0, x1 = min(xa, xb), max(xa, xb)
        shrink = y1 - y0 >= size and x1 - x0 >= size
        out = cv2.resize(image[y0:y1, x0:x1], (size, size),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if xa > xb:
            out = cv2.flip(out, 1)
        return cv2.transform(out, block)

    def __call__(self, images: Sequence[Any], rows: Sequence[Any], colours: Sequence[Any]) -> Any:
        jobs = [(k, c, size) for c, size in zip(self.crops, self.sizes) for k in range(len(images))]
        with ThreadPoolExecutor(self.threads) as pool:  # threads of this call only: none outlives the batch
            done = list(pool.map(lambda job: self._one(images[job[0]], rows[job[0]], colours[job[0]][job[1]],
                                                       job[1], job[2]), jobs))
        b = len(images)
        outs = [done[i * b:(i + 1) * b] for i in range(len(self.crops))]
        return tuple(outs) if len(outs) > 1 else outs[0]


def opencv_crops(image: DataNode, rows: DataNode, colour: DataNode, crops: Sequence[int], sizes: Sequence[int],
                 threads: int) -> list[DataNode]:
    """CPU only: crops ``crops`` (indices into the spec; random windows, whole pixels) of every sample, resized to
    ``sizes`` pixels, mirrored and colour-mapped by OpenCV in one step (see :class:`_OpenCVCrops`); ``rows`` the
    crop step's per-sample ``[4n, 2]`` resize regions, ``colour`` its per-sample ``[n, 3, 4]`` blocks. uint8 HWC
    out, one node per crop."""
    out = fn.python_function(image, rows, colour, function=_OpenCVCrops(crops, sizes, threads),
                             batch_processing=True, num_outputs=len(crops), output_layouts=["HWC"] * len(crops))
    return list(out) if isinstance(out, (list, tuple)) else [out]


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
