"""A picture of a recipe: each source image with its crop windows, the crops, and their masks per level.

Layout (``tile`` pixels a cell): one block of ``1 + L`` rows per image, ``1 + n_crops`` columns.
Row 0: the source (letterboxed) with every crop's window drawn in that crop's colour (``*`` = flipped),
then the crops as the loader returns them. Row ``1 + l``: the masks of level ``l`` over each crop — hidden
patches dimmed, context patches clear with a blue edge, each target block filled in its own colour. What a
strategy adds is drawn too: ``global_with_local_context`` labels the crops whose tokens join global crop 0's
context; ``cross_crop_prediction`` shows, on every other crop ``j``, ``cross_context[(0, j)]`` (its context
without what shows crop 0's targets) and, on crop 0, the targets any other crop can see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .batch import MultiCropBatch
from .masking import MultiCropMasks
from .spec import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["render_preview", "preview_size"]

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def preview_size(num_images: int, num_crops: int, num_levels: int, tile: int) -> tuple[int, int]:
    """(width, height) in pixels of the picture :func:`render_preview` draws."""
    return (1 + num_crops) * tile, num_images * (1 + num_levels) * tile


def _crop_pixels(crop: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """One normalised CHW crop back to HWC uint8."""
    c = crop.detach().float().cpu()
    c = c * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return (c.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def _mask_overlay(pixels: np.ndarray, context: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``pixels`` HWC uint8 with bool ``context`` [N] and ``targets`` [T, N] over its g x g patch grid."""
    g = int(round(np.sqrt(context.size)))
    size = pixels.shape[0]
    patch = np.arange(size) * g // size  # which patch row (or column) each pixel row (or column) is in
    cell = patch[:, None] * g + patch[None, :]
    out = pixels.astype(np.float32)
    visible = context[cell]
    out[~visible] *= 0.3
    for t in range(targets.shape[0]):
        sel = targets[t][cell]
        colour = np.array(_PALETTE[t % len(_PALETTE)], dtype=np.float32)
        out[sel] = 0.45 * out[sel] + 0.55 * colour
    edge = np.zeros_like(visible)
    edge[:-1] |= visible[:-1] != visible[1:]
    edge[:, :-1] |= visible[:, :-1] != visible[:, 1:]
    out[edge] = (40, 120, 255)
    return out.clip(0, 255).astype(np.uint8)


def _strategy_view(masks: MultiCropMasks, i: int, level: int, k: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Context [N], targets [T, N] and a label for crop ``i``'s cell at ``level`` of image ``k``."""
    context = masks.context[i][level, k].cpu().numpy()
    targets = masks.targets[i][level, k].cpu().numpy()
    if masks.cross_context:
        if (0, i) in masks.cross_context:
            return masks.cross_context[(0, i)][level, k].cpu().numpy(), np.zeros_like(targets), "ctx for 0"
        if i == 0:  # the targets of crop 0 that some other crop shows
            seen = np.zeros_like(targets)
            for (a, _), cross in masks.cross_targets.items():
                if a == 0:
                    seen |= cross[level, k].cpu().numpy()
            return context, seen, "seen by others"
    if masks.extra_context and masks.extra_context[0] and i in masks.extra_context[0]:
        return context, targets, "joins 0's ctx"
    return context, targets, ""


def render_preview(batch: MultiCropBatch, masks: MultiCropMasks, files: Sequence[str], out: Path, tile: int = 128,
                   mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Path:
    """Draws ``batch`` (crops, boxes, flips) and ``masks`` as one PNG at ``out``; ``files[k]`` is the source
    of ``batch.indices[k]``'s image. Returns ``out``."""
    from PIL import Image, ImageDraw

    n_img, n_crops = batch.batch_size, batch.num_crops
    levels = masks.context[0].shape[0]
    canvas = Image.new("RGB", preview_size(n_img, n_crops, levels, tile), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    boxes = batch.boxes.cpu().numpy()
    flipped = batch.flipped.cpu().numpy()
    for k in range(n_img):
        y0 = k * (1 + levels) * tile
        with Image.open(files[int(batch.indices[k])]) as opened:
            source = opened.convert("RGB")
        scale = tile / max(source.size)
        w, h = max(1, round(source.width * scale)), max(1, round(source.height * scale))
        ox, oy = (tile - w) // 2, (tile - h) // 2
        canvas.paste(source.resize((w, h)), (ox, y0 + oy))
        for i in range(n_crops):
            x_a, y_a, x_b, y_b = boxes[k, i]
            colour = _PALETTE[i % len(_PALETTE)]
            draw.rectangle([ox + x_a * w, y0 + oy + y_a * h, ox + x_b * w - 1, y0 + oy + y_b * h - 1], outline=colour)
            draw.text((ox + x_a * w + 2, y0 + oy + y_a * h + 1), f"{i}{'*' if flipped[k, i] else ''}", fill=colour)
            pixels = _crop_pixels(batch.crops[i][k], mean, std)
            canvas.paste(Image.fromarray(pixels).resize((tile, tile), Image.Resampling.NEAREST), ((1 + i) * tile, y0))
            draw.rectangle([(1 + i) * tile, y0, (2 + i) * tile - 1, y0 + tile - 1], outline=colour)
            for level in range(levels):
                context, targets, note = _strategy_view(masks, i, level, k)
                overlay = _mask_overlay(pixels, context, targets)
                x, y = (1 + i) * tile, y0 + (1 + level) * tile
                canvas.paste(Image.fromarray(overlay).resize((tile, tile), Image.Resampling.NEAREST), (x, y))
                if note:
                    draw.text((x + 3, y + tile - 14), note, fill=(120, 255, 120))
        for level in range(levels):
            draw.text((6, y0 + (1 + level) * tile + 6), f"level {level}\ndim: hidden\nblue edge: context\n"
                                                         f"colours: targets\n{masks.strategy}", fill=(220, 220, 220))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, format="PNG")
    return out
