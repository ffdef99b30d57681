"""Mask kernels: plain functions of tensors, vectorised over every leading dimension.

Frames and units: a crop of ``size`` pixels and ``patch_size`` is a ``g x g`` patch grid, ``g = size // patch``;
patch ``n`` sits at row ``n // g``, column ``n % g``. Masks are bool ``[..., g*g]`` with True = selected.
Block ``scale`` is a fraction of the grid's patches; block ``aspect`` is width / height, drawn
log-uniformly (as torchvision's RandomResizedCrop); scale and aspect are drawn independently.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch

from ..common.checks import check_int

__all__ = ["block_dims", "max_block_dims", "sample_blocks", "masks_to_indices", "patch_centres", "visible_in_box",
           "locate_in_crop"]


def block_dims(scale: torch.Tensor, aspect: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block height and width in patches for area fraction ``scale`` and aspect (w/h), at least 1, at most
    ``grid`` (callers validate ranges so that the upper clamp never bites; see ``max_block_dims``)."""
    area = scale * grid * grid
    h = torch.sqrt(area / aspect).round().clamp_(1, grid).long()
    w = torch.sqrt(area * aspect).round().clamp_(1, grid).long()
    return h, w


def max_block_dims(scale: tuple[float, float], aspect: tuple[float, float], grid: int) -> tuple[int, int]:
    """The largest height and width, in patches, that blocks drawn from these ranges can have (unclamped)."""
    area = scale[1] * grid * grid
    return round(math.sqrt(area / aspect[0])), round(math.sqrt(area * aspect[1]))


RangeLike = Union[tuple[float, float], torch.Tensor]


def _bounds(value: RangeLike, device: Optional[torch.device]) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.as_tensor(value, dtype=torch.float32, device=device)
    return t[..., 0], t[..., 1]


def sample_blocks(shape: tuple[int, ...], grid: int, scale: RangeLike, aspect: RangeLike,
                  generator: Optional[torch.Generator] = None, device: Optional[torch.device] = None) -> torch.Tensor:
    """One rectangular block per entry of ``shape``: bool ``[*shape, grid*grid]``.

    ``scale`` and ``aspect`` are ``(min, max)`` pairs, or float tensors ``[..., 2]`` broadcastable to
    ``[*shape, 2]`` (one range per block, e.g. per level). Scale ~ U(scale), aspect ~ logU(aspect),
    independently per block. The top-left corner is uniform over every position where the block fits, the
    last row and column included (I-JEPA's bound leaves them out, ijepa#40).
    """
    u = torch.rand((4, *shape), generator=generator, device=device)
    s_lo, s_hi = _bounds(scale, device)
    a_lo, a_hi = _bounds(aspect, device)
    s = s_lo + (s_hi - s_lo) * u[0]
    a = torch.exp(torch.log(a_lo) + (torch.log(a_hi) - torch.log(a_lo)) * u[1])
    h, w = block_dims(s, a, grid)
    top = (u[2] * (grid - h + 1)).long().clamp_(max=grid - h)
    left = (u[3] * (grid - w + 1)).long().clamp_(max=grid - w)
    ar = torch.arange(grid, device=device)
    rows = (ar >= top[..., None]) & (ar < (top + h)[..., None])
    cols = (ar >= left[..., None]) & (ar < (left + w)[..., None])
    return (rows[..., :, None] & cols[..., None, :]).reshape(*shape, grid * grid)


def masks_to_indices(mask: torch.Tensor, mode: str = "random_subset", generator: Optional[torch.Generator] = None,
                     num: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Equal-length patch indices from bool masks ``[..., N]``, as I-JEPA's ``apply_masks`` expects.

    ``mode="random_subset"``: every row keeps ``k`` of its selected patches, chosen uniformly at random
    (I-JEPA keeps the first ``k``, which drops the bottom-right of larger masks, ijepa#60), sorted ascending.
    ``mode="pad"``: every selected patch, ascending, up to ``k``. Both return int64 ``[..., k]`` indices and
    bool ``[..., k]`` validity: where a row has fewer than ``k`` selected patches, its last entries are False
    (index 0 there).

    ``generator``: where the random choices come from; None means torch's global generator, which nothing
    keys: prefer ``masks.indices(mask)`` on a :class:`MultiCropMasks` (its batch's keyed stream, so a
    resumed run picks the same patches) or pass ``masks.generator``.

    ``num``: ``k``. Default None: the rows' smallest count (``random_subset``, so every index is valid) or
    largest (``pad``), which reads the counts back to the host: on CUDA, one wait for the GPU. Pass ``num``
    (e.g. ``min_keep`` or ``N``) for a call that never waits.
    """
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
    if mode not in ("random_subset", "pad"):
        raise ValueError(f"mode must be 'random_subset' or 'pad', got {mode!r}")
    n = mask.shape[-1]
    counts = mask.sum(dim=-1)
    if num is None:
        k = (int(counts.min()) if mode == "random_subset" else int(counts.max())) if counts.numel() else 0
    elif check_int("num", num, 0) > n:
        raise ValueError(f"num must be an integer in [0, {n}] (the mask's last dimension), got {num!r}")
    else:
        k = int(num)
    position = torch.arange(n, device=mask.device)
    if mode == "random_subset":
        noise = torch.rand(mask.shape, generator=generator, device=mask.device)
        key = torch.where(mask, noise, noise - 2.0)  # selected patches first, in random order
        chosen = key.topk(k, dim=-1).indices
        valid = mask.gather(-1, chosen)
        chosen = (chosen + n * ~valid).sort(dim=-1).values % n  # ascending, any unselected ones last
    else:
        chosen = torch.where(mask, position, position + n).topk(k, dim=-1, largest=False).indices
    valid = mask.gather(-1, chosen)
    return torch.where(valid, chosen, torch.zeros_like(chosen)), valid


def patch_centres(grid: int, boxes: torch.Tensor, flipped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each patch centre of a crop lies in its source image: ``(x, y)``, each ``[B, grid*grid]``, as
    fractions of the source's width and height. ``boxes``: ``[B, 4]`` (x0, y0, x1, y1); ``flipped``: ``[B]``.
    A flipped crop shows its window mirrored, so its patch column ``c`` comes from column ``g-1-c``."""
    centre = (torch.arange(grid, device=boxes.device, dtype=torch.float32) + 0.5) / grid
    u = centre.repeat(grid)                    # column position of patch n, left to right
    v = centre.repeat_interleave(grid)         # row position of patch n, top to bottom
    u = torch.where(flipped[:, None], 1.0 - u, u)
    x0, y0, x1, y1 = boxes.float().unbind(-1)
    x = x0[:, None] + u * (x1 - x0)[:, None]
    y = y0[:, None] + v[None, :] * (y1 - y0)[:, None]
    return x, y


def visible_in_box(x: torch.Tensor, y: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """bool ``[B, N]``: which points ``(x, y)`` (``[B, N]``) lie inside ``boxes`` ``[B, 4]`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (t[:, None] for t in boxes.float().unbind(-1))
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def locate_in_crop(x: torch.Tensor, y: torch.Tensor, boxes: torch.Tensor, flipped: torch.Tensor,
                   grid: int) -> torch.Tensor:
    """Which patch of another crop each point falls in: int64 ``[B, N]``, ``-1`` where it lies outside.

    ``(x, y)``: ``[B, N]`` points as fractions of the source image; ``boxes`` ``[B, 4]`` and ``flipped``
    ``[B]`` describe the other crop, whose patch grid is ``grid x grid`` (patch ``n`` at row ``n // grid``).
    """
    x0, y0, x1, y1 = (t[:, None] for t in boxes.float().unbind(-1))
    u = (x - x0) / (x1 - x0)
    v = (y - y0) / (y1 - y0)
    u = torch.where(flipped[:, None], 1.0 - u, u)
    inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    col = (u * grid).floor().clamp(0, grid - 1).long()
    row = (v * grid).floor().clamp(0, grid - 1).long()
    return torch.where(inside, row * grid + col, torch.full_like(col, -1))
