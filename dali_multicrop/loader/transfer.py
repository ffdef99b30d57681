"""Small host tensors to the loader's device in one copy.

A batch's small per-sample tensors (the boxes from the graph's windows, which leave it on the host for both
devices, and the flips, indices and labels the feed kept on the host: a few hundred bytes a sample). On the GPU
path the runner packs them into one pinned staging buffer, copies it with ``non_blocking=True`` (no host sync;
torch keeps the pinned block until the copy has run) and hands out views of the device copy with each tensor's
dtype and shape: one host-to-device transfer per batch instead of one mixed DALI copy operator per output.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["ALIGN", "stage", "to_device", "unstage"]

ALIGN = 8
"""Every tensor starts at a multiple of this many bytes of the staging buffer, so that its view keeps the
alignment of any dtype up to 8 bytes wide."""


def stage(tensors: Sequence[torch.Tensor], pin: bool = True) -> tuple[torch.Tensor, list[int]]:
    """The bytes of ``tensors`` (on the host, any dtypes up to 8 bytes wide, any shapes) in one uint8 buffer
    (pinned where ``pin``), each from a multiple of :data:`ALIGN`; and each one's byte offset."""
    offsets, end = [], 0
    for t in tensors:
        offsets.append(end)
        end += -(-t.numel() * t.element_size() // ALIGN) * ALIGN
    staged = torch.empty(end, dtype=torch.uint8, pin_memory=pin)
    for t, start in zip(tensors, offsets):
        flat = t.reshape(-1).view(torch.uint8)  # a bool, int64 or float32 tensor's bytes
        staged[start:start + flat.numel()].copy_(flat)
    return staged, offsets


def unstage(buffer: torch.Tensor, like: Sequence[torch.Tensor], offsets: Sequence[int]) -> list[torch.Tensor]:
    """The tensors :func:`stage` packed, as views of ``buffer`` (wherever it is now) with the dtypes and shapes
    of ``like``."""
    return [buffer[start:start + t.numel() * t.element_size()].view(t.dtype).view(t.shape)
            for t, start in zip(like, offsets)]


def to_device(tensors: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """``tensors`` (on the host) on ``device`` through one pinned staging buffer and one ``non_blocking`` copy
    (:func:`stage`); on the CPU they are returned as they are. The results are views of one device buffer."""
    if device.type == "cpu":
        return list(tensors)
    staged, offsets = stage(tensors, pin=True)
    return unstage(staged.to(device, non_blocking=True), tensors, offsets)
