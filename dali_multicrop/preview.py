"""A picture of a recipe: each source image with its crop windows, the crops, and their masks per level.

Layout (``tile`` pixels a cell): one block of ``1 + L`` rows per image, ``1 + n_crops`` columns.
Row 0: the source (letterboxed) with every crop's window drawn in that crop's colour (``*`` = flipped),
then the crops as the loader returns them. Row ``1 + l``: the masks of level ``l`` over each crop — hidden
patches dimmed, context patches clear with a white edge, each target block filled in its own colour (never blue
or white); crop cells are labelled with their number, G(lobal) or L(ocal) and size. What a
strategy adds is drawn too: ``global_with_local_context`` labels the crops whose tokens join global crop 0's
context; ``cross_crop_prediction`` shows, on every other crop ``j``, ``cross_context[(0, j)]`` (its context
without what shows crop 0's targets) and, on crop 0, the targets any other crop can see.

iBOT / DINOv2 patch masks (:class:`~dali_multicrop.PatchMaskGenerator`, ``--strategy ibot``) take one row: on each
global crop its masked patches (the ones the student sees as the mask token) dimmed and filled in one colour, with
the masked count against its target; the local crops, which these masks leave whole, are shown as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch

from .loader.batch import MultiCropBatch
from .masking import MultiCropMasks
from .masking.patches import PatchMasks
from .recipes.spec import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["render_preview", "preview_size"]

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]
"""Crop colours (windows and cell frames)."""
_TARGETS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (240, 50, 230), (245, 130, 48), (210, 245, 60),
            (250, 190, 212), (170, 110, 40)]
"""Target-block fills: no blue or white, which would read as the context's edge."""
_EDGE = (255, 255, 255)
"""The context's edge: white."""


_SOURCE_TILES = 2
"""Width of the source column, in tiles: the source image with its numbered windows, as tall as its block."""


def _font_size(tile: int) -> int:
    return max(11, tile // 9)


def _legend_height(tile: int) -> int:
    return 3 * (_font_size(tile) + 5) + 10


def preview_size(num_images: int, num_crops: int, num_levels: int, tile: int) -> tuple[int, int]:
    """(width, height) in pixels of the picture :func:`render_preview` draws: a source column ``2 * tile`` wide and a
    column per crop; per image one row of crops and one per level; a legend strip at the bottom."""
    return (_SOURCE_TILES + num_crops) * tile, num_images * (1 + num_levels) * tile + _legend_height(tile)


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
    for t in range(targets.shape[0]):  # each block filled in its own colour, outlined in black
        sel = targets[t][cell]
        colour = np.array(_TARGETS[t % len(_TARGETS)], dtype=np.float32)
        out[sel] = 0.2 * out[sel] + 0.8 * colour
        out[_edge_of(sel)] = 0.0
    out[_edge_of(visible)] = _EDGE
    return out.clip(0, 255).astype(np.uint8)


def _edge_of(region: np.ndarray) -> np.ndarray:
    """The pixels on the border between ``region`` (bool HxW) and the rest."""
    edge = np.zeros_like(region)
    edge[:-1] |= region[:-1] != region[1:]
    edge[:, :-1] |= region[:, :-1] != region[:, 1:]
    return edge


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


def _patch_view(masks: PatchMasks, i: int, k: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Context [N] (what is not masked), targets [1, N] (the masked patches) and a label for global crop ``i`` of
    image ``k``; a local crop (no mask) is all context."""
    n_patches = masks.masks.shape[-1]
    if i >= masks.masks.shape[0]:
        return np.ones(n_patches, dtype=bool), np.zeros((1, n_patches), dtype=bool), "no mask"
    masked = masks.masks[i, k].cpu().numpy()
    target = int(masks.targets[i, k])
    note = f"{int(masked.sum())}/{target} masked" if target else "not masked"
    return ~masked, masked[None], note


def _view(masks: Union[MultiCropMasks, PatchMasks], i: int, level: int, k: int) -> tuple[np.ndarray, np.ndarray, str]:
    if isinstance(masks, PatchMasks):
        return _patch_view(masks, i, k)
    return _strategy_view(masks, i, level, k)


def _label(draw: "Any", xy: tuple[float, float], text: str, colour: tuple[int, int, int], font: "Any" = None) -> None:
    """``text`` on a dark box, so it reads over any picture."""
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=(0, 0, 0))
    draw.text(xy, text, fill=colour, font=font)


def _window_label_at(box: Sequence[float], i: int, ox: int, oy: int, w: int, h: int,
                     size: int) -> tuple[float, float]:
    """Where crop ``i``'s number goes on its window: the corners in turn (then stepped inwards), so that
    windows sharing a corner do not print over each other; ``size`` the font's."""
    x_a, y_a, x_b, y_b = box
    corner, step = i % 4, (size + 4) * (i // 4)
    x = ox + (x_a * w + 2 + step if corner in (0, 2) else x_b * w - size - 4 - step)
    y = oy + (y_a * h + 1 if corner in (0, 1) else y_b * h - size - 3)
    return x, y


_LEGEND = ("source: each crop's window in the crop's colour, its number on it (* = mirrored); crops: number, "
           "G(lobal) / L(ocal), size",
           "masks: dimmed = hidden patches; clear, white edge = context; filled, black edge = a target block (one "
           "colour each)",
           "a crop with nothing masked at a level shows only in the crop row")
_PATCH_LEGEND = ("source: each crop's window in the crop's colour, its number on it (* = mirrored); crops: number, "
                 "G(lobal) / L(ocal), size",
                 "patch masks (iBOT / DINOv2): dimmed and filled = masked patches (the student's mask token), with "
                 "the count against the target",
                 "the local crops are never masked: they show only in the crop row")


def render_preview(batch: MultiCropBatch, masks: Union[MultiCropMasks, PatchMasks], files: Sequence[str], out: Path,
                   tile: int = 128, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                   num_global: int = 1) -> Path:
    """Draws ``batch`` (crops, boxes, flips) and ``masks`` (JEPA masks, or iBOT / DINOv2 patch masks) as one PNG at
    ``out`` (layout: :func:`preview_size`); ``files[k]`` is the source of ``batch.indices[k]``'s image; the first
    ``num_global`` crops are labelled global (G), the rest local (L), with their size. Returns ``out``."""
    from PIL import Image, ImageDraw, ImageFont

    n_img, n_crops = batch.batch_size, batch.num_crops
    patches = isinstance(masks, PatchMasks)
    levels = 1 if patches else masks.context[0].shape[0]
    font = ImageFont.load_default(size=_font_size(tile))
    canvas = Image.new("RGB", preview_size(n_img, n_crops, levels, tile), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    boxes = batch.boxes.cpu().numpy()
    flipped = batch.flipped.cpu().numpy()
    left = _SOURCE_TILES * tile
    for k in range(n_img):
        y0 = k * (1 + levels) * tile
        with Image.open(files[int(batch.indices[k])]) as opened:
            source = opened.convert("RGB")
        room_w, room_h = left - 8, (1 + levels) * tile - 8
        scale = min(room_w / source.width, room_h / source.height)
        w, h = max(1, round(source.width * scale)), max(1, round(source.height * scale))
        ox, oy = (left - w) // 2, y0 + 4
        canvas.paste(source.resize((w, h)), (ox, oy))
        for i in range(n_crops):
            colour = _PALETTE[i % len(_PALETTE)]
            x_a, y_a, x_b, y_b = boxes[k, i]
            draw.rectangle([ox + x_a * w, oy + y_a * h, ox + x_b * w - 1, oy + y_b * h - 1], outline=colour, width=2)
            _label(draw, _window_label_at(boxes[k, i], i, ox, oy, w, h, font.size),
                   f"{i}{'*' if flipped[k, i] else ''}", colour, font)
            pixels = np.asarray(Image.fromarray(_crop_pixels(batch.crops[i][k], mean, std)).resize(
                (tile, tile), Image.Resampling.NEAREST))
            x = left + i * tile
            canvas.paste(Image.fromarray(pixels), (x, y0))
            draw.rectangle([x, y0, x + tile - 1, y0 + tile - 1], outline=colour)
            kind = "G" if i < num_global else "L"
            _label(draw, (x + 3, y0 + 3), f"{i} {kind} {batch.crops[i].shape[-1]}px", colour, font)
            for level in range(levels):
                context, targets, note = _view(masks, i, level, k)
                y = y0 + (1 + level) * tile
                if note == "no mask" or (not note and context.all() and not targets.any()):
                    if level == 0:
                        draw.text((x + 4, y + 4), "no mask", fill=(150, 150, 150), font=font)
                    continue
                canvas.paste(Image.fromarray(_mask_overlay(pixels, context, targets)), (x, y))
                if note:
                    _label(draw, (x + 3, y + tile - font.size - 5), note, (120, 255, 120), font)
        for level in range(levels):  # on the first crop's cell of the row, where nothing else is written
            if not patches:
                _label(draw, (left + 3, y0 + (1 + level) * tile + 3), f"level {level}", (220, 220, 220), font)
    y = n_img * (1 + levels) * tile + 6
    title = "" if patches else f"strategy {masks.strategy}. "
    for line_no, line in enumerate(_PATCH_LEGEND if patches else _LEGEND):
        draw.text((6, y + line_no * (font.size + 5)), (title if line_no == 0 else "") + line, fill=(220, 220, 220),
                  font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, format="PNG")
    return out
