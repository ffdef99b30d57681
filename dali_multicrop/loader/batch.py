"""What the loader yields: one :class:`MultiCropBatch` per step (torch only, no DALI needed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch

__all__ = ["MultiCropBatch"]


@dataclass
class MultiCropBatch:
    """A batch of ``B`` images seen through ``n`` crops each, every tensor on the loader's device.

    - ``crops``: ``n`` tensors, globals first, crop ``i`` of shape ``[B, 3, S_i, S_i]`` (RGB, CHW),
      float32 or float16, normalised as ``(pixel/255 - mean) / std``.
    - ``boxes``: float32 ``[B, n, 4]``, ``(x0, y0, x1, y1)`` of each crop's window in the source image, as
      fractions of its width and height (``0 <= x0 < x1 <= 1``). A flipped crop shows the same window mirrored.
    - ``flipped``: bool ``[B, n]``, True where crop ``i`` was mirrored left-right.
    - ``labels``: int64 ``[B]``, class ids. ``indices``: int64 ``[B]``, positions in the source's listing.
    """

    crops: list[torch.Tensor]
    boxes: torch.Tensor
    flipped: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_crops(self) -> int:
        return len(self.crops)

    @property
    def device(self) -> torch.device:
        return self.labels.device

    @property
    def crop_sizes(self) -> tuple[int, ...]:
        """Side length of every crop, in pixels, in crop order."""
        return tuple(int(c.shape[-1]) for c in self.crops)

    def to(self, device: Union[str, torch.device], non_blocking: bool = False) -> "MultiCropBatch":
        """A copy with every tensor on ``device``."""
        return MultiCropBatch(
            crops=[c.to(device, non_blocking=non_blocking) for c in self.crops],
            boxes=self.boxes.to(device, non_blocking=non_blocking),
            flipped=self.flipped.to(device, non_blocking=non_blocking),
            labels=self.labels.to(device, non_blocking=non_blocking),
            indices=self.indices.to(device, non_blocking=non_blocking),
        )
