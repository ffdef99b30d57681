"""The CPU path users pick for speed: OpenCV decode + albumentations (OpenCV kernels) in a torch DataLoader.

The same recipe as the DALI graph, built from the same :class:`CropGroup` objects: per crop
``RandomResizedCrop`` (the group's scale and ratio; linear or cubic interpolation as the group's, OpenCV's
``INTER_AREA`` where it downscales: albumentations' antialiasing resize), ``HorizontalFlip``, ``ColorJitter`` at the group's probability, ``ToGray``,
``GaussianBlur`` (sigma range, kernel from sigma), ``Solarize`` (at 128), ``Normalize``, then a CHW tensor; one
worker process per thread, OpenCV's own threads off in each (``cv2.setNumThreads(0)``, as albumentations' docs
advise for DataLoader workers).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..common.checks import install_hint
from ..sources import FileList
from ..recipes.spec import CropGroup, MultiCropSpec
from .torchvision_baseline import FileListDataset, baseline_loader, per_crop

__all__ = ["AlbumentationsMultiCrop", "albumentations_loader", "albumentations_missing", "cv2_rgb"]


def albumentations_missing() -> Optional[str]:
    """Why the albumentations backend cannot run here, or None."""
    try:
        import albumentations  # noqa: F401
        import cv2  # noqa: F401
    except Exception as exc:
        return f"albumentations does not import ({exc}); {install_hint('albumentations', 'albumentations')}"
    return None


_CV2_INTERP = {"bilinear": 1, "bicubic": 2}
"""OpenCV's ``INTER_LINEAR`` and ``INTER_CUBIC`` for each of the groups' interpolations."""


def _crop_pipeline(group: CropGroup, mean: Sequence[float], std: Sequence[float]) -> Any:
    import albumentations as A
    import cv2

    steps: list[Any] = [A.RandomResizedCrop(size=(group.size, group.size), scale=group.scale, ratio=group.ratio,
                                            interpolation=_CV2_INTERP[group.interpolation],
                                            area_for_downscale="image"),
                        A.HorizontalFlip(p=group.flip_prob)]
    jitter = group.color_jitter
    if jitter.active:
        steps.append(A.ColorJitter(brightness=jitter.brightness, contrast=jitter.contrast,
                                   saturation=jitter.saturation, hue=jitter.hue, p=jitter.probability))
    if group.grayscale_prob > 0:
        steps.append(A.ToGray(p=group.grayscale_prob))
    if group.blur_prob > 0:
        steps.append(A.GaussianBlur(sigma_limit=group.blur_sigma, blur_limit=0, p=group.blur_prob))
    if group.solarize_prob > 0:
        steps.append(A.Solarize(threshold_range=(128 / 255, 128 / 255), p=group.solarize_prob))
    steps.append(A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0))
    return A.Compose(steps)


class AlbumentationsMultiCrop:
    """RGB uint8 HWC array -> list of normalised CHW tensors, one per crop, globals first."""

    def __init__(self, spec: MultiCropSpec, mean: Sequence[float], std: Sequence[float],
                 dtype: torch.dtype = torch.float32) -> None:
        self.pipelines = per_crop(spec, lambda group: _crop_pipeline(group, mean, std))
        self.dtype = dtype

    def __call__(self, image: np.ndarray) -> list[torch.Tensor]:
        return [torch.from_numpy(p(image=image)["image"].transpose(2, 0, 1).copy()).to(self.dtype)
                for p in self.pipelines]


def cv2_rgb(path: str) -> np.ndarray:
    """The image at ``path`` decoded by OpenCV, as RGB (EXIF orientation applied, as DALI and PIL show it)."""
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"OpenCV cannot decode '{path}'")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(0)


def albumentations_loader(source: FileList, spec: MultiCropSpec, batch_size: int, workers: int, num_batches: int,
                          mean: Sequence[float], std: Sequence[float], dtype: torch.dtype, seed: int = 0,
                          pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """The albumentations path (see the module) as a DataLoader of ``(crops, labels, indices)``."""
    dataset = FileListDataset(source, AlbumentationsMultiCrop(spec, mean, std, dtype), decode=cv2_rgb)
    return baseline_loader(dataset, batch_size, workers, num_batches, seed, pin_memory, worker_init_fn=_worker_init)
