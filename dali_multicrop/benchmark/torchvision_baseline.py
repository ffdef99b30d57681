"""The path users have today, for comparison: PIL decode + torchvision transforms in a torch DataLoader.

The same recipe as the DALI graph (one transform pipeline per crop, from the same :class:`CropGroup`), with
one worker process per core, as DINO's and solo-learn's training scripts do.
"""

from __future__ import annotations

import math
import multiprocessing
from typing import Any, Callable, Optional, Sequence

import torch

from ..sources import FileList
from ..recipes.spec import CropGroup, MultiCropSpec

__all__ = ["MultiCropTransform", "FileListDataset", "baseline_loader", "per_crop", "pil_rgb", "torchvision_loader"]


def _crop_transform(group: CropGroup, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype) -> Any:
    from torchvision.transforms import InterpolationMode, v2

    steps: list[Any] = [v2.RandomResizedCrop(group.size, scale=group.scale, ratio=group.ratio, antialias=True,
                                             interpolation=InterpolationMode(group.interpolation)),
                        v2.RandomHorizontalFlip(group.flip_prob)]
    jitter = group.color_jitter
    if jitter.active:
        steps.append(v2.RandomApply([v2.ColorJitter(jitter.brightness, jitter.contrast, jitter.saturation,
                                                    jitter.hue)], p=jitter.probability))
    if group.grayscale_prob > 0:
        steps.append(v2.RandomGrayscale(group.grayscale_prob))
    if group.blur_prob > 0:
        kernel = 2 * math.ceil(3 * group.blur_sigma[1]) + 1
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=group.blur_sigma)], p=group.blur_prob))
    if group.solarize_prob > 0:
        steps.append(v2.RandomSolarize(threshold=128, p=group.solarize_prob))
    steps += [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std)),
              v2.ToDtype(dtype)]
    return v2.Compose(steps)


def per_crop(spec: MultiCropSpec, build: Callable[[CropGroup], Any]) -> list[Any]:
    """``build(group)`` once per group of ``spec``, listed once per crop (globals first): a group's crops share
    what was built for it."""
    built = [build(group) for group in spec.groups]
    return [built[k] for k, group in enumerate(spec.groups) for _ in range(group.count)]


class MultiCropTransform:
    """PIL image -> list of normalised CHW tensors, one per crop, globals first."""

    def __init__(self, spec: MultiCropSpec, mean: Sequence[float], std: Sequence[float],
                 dtype: torch.dtype = torch.float32) -> None:
        self.transforms = per_crop(spec, lambda group: _crop_transform(group, mean, std, dtype))

    def __call__(self, image: Any) -> list[torch.Tensor]:
        return [t(image) for t in self.transforms]


def pil_rgb(path: str) -> Any:
    """The image at ``path`` decoded by PIL as RGB, as torchvision's ImageFolder does."""
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


class FileListDataset(torch.utils.data.Dataset):
    """``(crops, label, index)`` per sample: the file decoded by ``decode`` (default PIL RGB, as torchvision's
    ImageFolder), then ``transform``."""

    def __init__(self, source: FileList, transform: Callable[[Any], list[torch.Tensor]],
                 decode: Callable[[str], Any] = pil_rgb) -> None:
        self.source = source
        self.transform = transform
        self.decode = decode

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[list[torch.Tensor], int, int]:
        return self.transform(self.decode(self.source.files[index])), self.source.labels[index], index


def baseline_loader(dataset: FileListDataset, batch_size: int, workers: int, num_batches: int, seed: int = 0,
                    pin_memory: bool = False,
                    worker_init_fn: Optional[Callable[[int], None]] = None) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` yielding ``(crops, labels, indices)`` for ``num_batches`` full batches (epochs
    chained), with ``workers`` worker processes, as the peers' training scripts build theirs."""
    sampler = torch.utils.data.RandomSampler(dataset, num_samples=num_batches * batch_size,
                                             generator=torch.Generator().manual_seed(seed))
    # fork, as the peers' loaders get on Linux up to Python 3.13: spawn and forkserver (3.14's default) would import
    # the caller's main module in every worker, which a script without a main guard cannot survive
    context = "fork" if workers > 0 and "fork" in multiprocessing.get_all_start_methods() else None
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                       pin_memory=pin_memory, drop_last=True, multiprocessing_context=context,
                                       worker_init_fn=worker_init_fn, prefetch_factor=2 if workers > 0 else None)


def torchvision_loader(source: FileList, spec: MultiCropSpec, batch_size: int, workers: int, num_batches: int,
                       mean: Sequence[float], std: Sequence[float], dtype: torch.dtype, seed: int = 0,
                       pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """The torchvision path: PIL decode, :class:`MultiCropTransform`, :func:`baseline_loader`."""
    dataset = FileListDataset(source, MultiCropTransform(spec, mean, std, dtype))
    return baseline_loader(dataset, batch_size, workers, num_batches, seed, pin_memory)
