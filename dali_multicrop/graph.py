"""The DALI pipeline graph: read once, decode once, crop many times.

One builder serves both devices. The graph reads top to bottom like the data flow:

    file path, sample index, label       (external source fed by the loader, CPU)
      -> read the file (DALI threads)
      -> decode once                     ("mixed" = GPU decode for device="gpu", "cpu" otherwise)
      -> per crop: window drawn on CPU -> resize (antialias) -> colour ops -> flip + normalise to CHW
      -> outputs: crop_0 .. crop_{n-1}, boxes [n, 4] (y0, x0, y1, x1), flipped [n], indices, labels
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ._dali import dali_modules
from .spec import IMAGENET_MEAN, IMAGENET_STD, MultiCropSpec

__all__ = ["GraphSettings", "build_pipeline", "build_decode_pipeline", "output_names"]


@dataclass(frozen=True)
class GraphSettings:
    """Everything the graph needs besides the crop spec.

    ``device``: "gpu" or "cpu". ``device_id``: CUDA device for "gpu" (ignored for "cpu").
    ``dtype``: "float32" or "float16" crops. ``mean``/``std``: per channel, in [0, 1] units (RGB).
    ``seed``: the pipeline's random seed. ``prefetch``: batches DALI computes ahead.
    """

    device: str
    batch_size: int
    num_threads: int
    seed: int
    device_id: int = 0
    dtype: str = "float32"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    prefetch: int = 2


def output_names(spec: MultiCropSpec) -> list[str]:
    """Names of the graph's outputs, in order."""
    return [f"crop_{i}" for i in range(spec.num_crops)] + ["boxes", "flipped", "indices", "labels"]


def build_pipeline(source: Callable[[Any], tuple], spec: MultiCropSpec, settings: GraphSettings) -> Any:
    """Builds (not yet runs) the multi-crop pipeline.

    ``source(batch_info)`` returns three lists per batch: file paths (UTF-8 bytes as 1-D uint8 arrays), sample
    indices and labels (int64 scalars); it raises ``StopIteration`` at the end of an epoch.
    """
    dali, fn, types = dali_modules()
    from . import augment

    dtype = {"float32": types.FLOAT, "float16": types.FLOAT16}[settings.dtype]
    on_gpu = settings.device == "gpu"

    # DALI conditionals (AutoGraph) only where some crop applies an operation to a share of the samples
    @dali.pipeline_def(enable_conditionals=any(augment.needs_conditionals(g) for g in spec.groups))
    def multicrop():
        image, indices, labels = _read_and_decode(source, on_gpu)
        shape_hwc = image.shape()
        image_hw = fn.cast(shape_hwc[0:2], dtype=types.FLOAT)
        crops, boxes, flips = [], [], []
        for group in spec.crops():
            anchor, size = augment.sample_window(shape_hwc, group)
            crop = augment.resized_crop(image, anchor, size, group.size)
            crop = augment.color_ops(crop, group)
            crop, flipped = augment.flip_and_normalize(crop, group.flip_prob, settings.mean, settings.std, dtype)
            crops.append(crop)
            boxes.append(augment.window_box(anchor, size, image_hw))
            flips.append(flipped)
        return (*crops, fn.stack(*boxes), fn.stack(*flips), indices, labels)

    return multicrop(**_pipeline_args(settings))


def _read_and_decode(source: Callable[[Any], tuple], on_gpu: bool) -> tuple[Any, Any, Any]:
    """The graph's head: file paths, indices and labels from ``source``; each file read by DALI's threads
    and decoded once, RGB HWC uint8 ("mixed": on the GPU, with the hardware JPEG decoder where there is one)."""
    _, fn, types = dali_modules()
    paths, indices, labels = fn.external_source(
        source=source, num_outputs=3, batch=True, batch_info=True, dtype=[types.UINT8, types.INT64, types.INT64])
    encoded = fn.io.file.read(paths)
    image = fn.decoders.image(encoded, device="mixed" if on_gpu else "cpu", output_type=types.RGB)
    return image, indices, labels


def _pipeline_args(settings: GraphSettings) -> dict[str, Any]:
    on_gpu = settings.device == "gpu"
    return dict(batch_size=settings.batch_size, num_threads=settings.num_threads,
                device_id=settings.device_id if on_gpu else None, seed=settings.seed,
                prefetch_queue_depth=settings.prefetch)


def build_decode_pipeline(source: Callable[[Any], tuple], settings: GraphSettings) -> Any:
    """The multi-crop graph's head alone (read and decode, no crops): the ceiling the full graph is measured
    against. Outputs the decoded images and the sample indices."""
    dali, _, _ = dali_modules()

    @dali.pipeline_def
    def decode_only():
        image, indices, _ = _read_and_decode(source, settings.device == "gpu")
        return image, indices

    return decode_only(**_pipeline_args(settings))
