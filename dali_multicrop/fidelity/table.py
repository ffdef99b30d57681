"""How close the loader's crops are to the method's own transform: torchvision on PIL images, operation by operation.

A preset named after a method must reproduce that method's operations within torchvision's own noise (its tensor
path against PIL: about 0.1-0.6 code values per operation). Measured: **the resize** and **the colour operations**.

The resize (:func:`resize_fidelity`): each group's window resampled with its interpolation. The loader makes crops
of the images with every other operation switched off (no colour, blur or solarisation; flips kept); for each crop
the same window (from ``batch.boxes``: whole pixels) is cut from the same image and resized by torchvision on the
PIL image as ``RandomResizedCrop`` does (antialiased, the group's interpolation), mirrored where ``batch.flipped``
says. The figure is the mean absolute difference in code values (0-255) per crop, averaged over the crops; beside it
the same against the *other* interpolation (what choosing the wrong filter would cost) and torchvision's tensor path
against PIL on the same windows (its own noise).

The colour (:func:`colour_fidelity`): per group, one operation at a time (brightness, contrast, saturation, hue,
grayscale: each on every crop, over the group's whole range), then the recipe's whole ``ColorJitter`` (on every crop,
its order drawn per crop) and grayscale. The loader makes each crop twice, with the operation and without any colour
(the same windows and flips: a crop's draws do not depend on the other operations); torchvision's functions apply
the crop step's own parameters (:func:`~dali_multicrop.step.draws.draw_batch`: factors, hue shift, order, grayscale) to
the uncoloured crop as a PIL image, and the figure is again the mean absolute difference to the coloured crop, with
torchvision's tensor path against its PIL path at the same parameters beside it.

``dali-multicrop fidelity`` prints both tables; ``docs/fidelity.md`` has the figures.

The images: PNG-encoded (lossless), so the loader's decoder sees exactly the pixels the reference gets; by default
the photographs scikit-image bundles (natural scenes; the built-in sample data is synthetic).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from ..recipes.spec import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, NO_JITTER, MultiCropSpec

__all__ = ["COLOUR_GOALS", "RESIZE_GOAL", "FidelityRow", "colour_fidelity", "format_rows", "natural_photos",
           "photo_crops", "resize_fidelity", "torchvision_colour"]

RESIZE_GOAL = 0.5
"""The most a resize may differ from torchvision's on PIL, in code values (0-255) per crop, on average."""
COLOUR_GOALS = {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5, "hue": 0.75, "grayscale": 0.5, "jitter": 1.0}
"""The most each colour operation may differ from torchvision's on PIL (code values per crop, on average); ``jitter``
is the whole ``ColorJitter`` in its order drawn per crop, then grayscale."""
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "retina.jpg",
          "ihc.png", "motorcycle_left.png")
"""scikit-image's bundled photographs (RGB, 300-1411 px a side) that :func:`natural_photos` reads."""


@dataclass(frozen=True)
class FidelityRow:
    """One operation of one crop group against torchvision on PIL, in code values (0-255): ``mad`` the mean over
    crops of each crop's mean absolute difference, ``worst`` the largest crop's, ``other`` the same against the
    other interpolation's reference (the resize; NaN for colour), ``tensor`` torchvision's own tensor path against
    PIL on the same windows (or colour parameters). ``interpolation``: the resize's filter (empty for colour)."""

    operation: str
    group: str
    interpolation: str
    crops: int
    mad: float
    worst: float
    other: float
    tensor: float
    goal: float = RESIZE_GOAL

    @property
    def within_goal(self) -> bool:
        return self.mad <= self.goal


def natural_photos() -> list[np.ndarray]:
    """scikit-image's bundled photographs (:data:`PHOTOS`), RGB uint8 HWC; ``ValueError`` naming the install where
    scikit-image is missing."""
    try:
        import skimage
        from PIL import Image
    except ImportError:
        raise ValueError("the built-in photographs come with scikit-image: pip install scikit-image, or give your own "
                         "images") from None
    folder = Path(skimage.__file__).parent / "data"
    return [np.asarray(Image.open(folder / name).convert("RGB")) for name in PHOTOS if (folder / name).exists()]


def photo_crops(photos: Sequence[np.ndarray], sizes: Sequence[int] = (96, 224), seed: int = 0) -> list[np.ndarray]:
    """One square crop per photograph and size (pixels; each photograph larger than the sizes), at a position drawn
    uniformly with ``seed``: uint8 HWC, C-contiguous, photograph by photograph, sizes in the order given."""
    rng = np.random.default_rng(seed)
    out = []
    for photo in photos:
        for size in sizes:
            y, x = (int(rng.integers(0, d - size)) for d in photo.shape[:2])
            out.append(np.ascontiguousarray(photo[y:y + size, x:x + size]))
    return out


def _plain(spec: MultiCropSpec) -> MultiCropSpec:
    """``spec`` with every operation but the crop, its resize and the flip switched off."""
    groups = tuple(g.replace(color_jitter=NO_JITTER, grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0)
                   for g in spec.groups)
    return MultiCropSpec(groups, spec.num_global_groups)


def _group_names(spec: MultiCropSpec) -> list[str]:
    """Each group's name in the tables: ``COUNTxSIZE``, with ``#k`` (its place, from 1) where two groups share it."""
    plain = [f"{g.count}x{g.size}" for g in spec.groups]
    return [name + (f"#{k + 1}" if plain.count(name) > 1 else "") for k, name in enumerate(plain)]


def _window(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A crop's window ``(top, left, height, width)`` in whole pixels from its box (fractions of the image)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    left, top = round(x0 * width), round(y0 * height)
    return top, left, round(y1 * height) - top, round(x1 * width) - left


def _code_values(crop: Any) -> Any:
    """A crop the loader normalised (CHW, the default mean and std) back in code values, uint8 CHW: exactly the
    pixels before the normalisation (its float error is far below half a code value)."""
    import torch

    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    return ((crop.float() * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)


def _batches(specs: Sequence[MultiCropSpec], images: Sequence[np.ndarray], device: str, epochs: int, seed: int,
             caller: str) -> Iterator[tuple[int, int, list[Any]]]:
    """``(epoch, iteration, batches)``: the images (written as PNG: lossless, the loader decodes exactly them) through
    one loader per spec of ``specs``, all with ``seed``, in step, the batches on the CPU."""
    from PIL import Image

    from ..loader.loader import DaliMultiCropLoader

    if not images:
        raise ValueError(f"{caller} needs at least one image")
    with tempfile.TemporaryDirectory(prefix="dali-multicrop-fidelity-") as tmp:
        files = [Path(tmp) / f"{i:04d}.png" for i in range(len(images))]
        for image, file in zip(images, files):
            Image.fromarray(image).save(file)
        loaders = [DaliMultiCropLoader([(str(f), 0) for f in files], crops=spec, batch_size=min(8, len(files)),
                                       device=device, seed=seed, shard_id=0, num_shards=1) for spec in specs]
        try:
            for epoch in range(epochs):
                for loader in loaders:
                    loader.set_epoch(epoch)
                for iteration, batches in enumerate(zip(*loaders)):
                    yield epoch, iteration, [batch.to("cpu") for batch in batches]
        finally:
            for loader in loaders:
                loader.close()


def resize_fidelity(spec: MultiCropSpec, images: Sequence[np.ndarray], device: str = "cpu", epochs: int = 2,
                    seed: int = 0) -> list[FidelityRow]:
    """The resize of each group of ``spec`` against torchvision on PIL (see the module), over ``epochs`` passes of
    ``images`` (RGB uint8 HWC arrays) through a loader on ``device`` ("cpu" or "gpu"); one row per group."""
    import torch
    import torchvision.transforms.functional as TF
    from PIL import Image
    from torchvision.transforms import InterpolationMode

    plain = _plain(spec)
    group_of = [k for k, g in enumerate(plain.groups) for _ in range(g.count)]
    found: dict[int, list[tuple[float, float, float]]] = {k: [] for k in range(len(plain.groups))}
    for _, _, batch in _batches([plain], images, device, epochs, seed, "resize_fidelity"):
        batch = batch[0]
        for b, index in enumerate(batch.indices.tolist()):
            image = images[index]
            pil, tensor = Image.fromarray(image), torch.from_numpy(image.copy()).permute(2, 0, 1)
            for c, crop in enumerate(batch.crops):
                group = plain.groups[group_of[c]]
                top, left, h, w = _window(batch.boxes[b, c].tolist(), image.shape[1], image.shape[0])
                size = [group.size, group.size]

                def ref(mode: str, source=pil) -> torch.Tensor:
                    out = TF.resized_crop(source, top, left, h, w, size, InterpolationMode(mode), antialias=True)
                    out = TF.pil_to_tensor(out) if isinstance(out, Image.Image) else out
                    return (TF.hflip(out) if bool(batch.flipped[b, c]) else out).float()

                ours = _code_values(crop[b]).float()
                mine = ref(group.interpolation)
                other = ref(next(m for m in INTERPOLATIONS if m != group.interpolation))
                via_tensor = ref(group.interpolation, tensor).round().clamp(0, 255)
                found[group_of[c]].append((float((ours - mine).abs().mean()), float((ours - other).abs().mean()),
                                           float((via_tensor - mine).abs().mean())))
    rows = []
    for group, name, values in zip(plain.groups, _group_names(spec), (np.array(found[k]) for k in found)):
        rows.append(FidelityRow("resize", name, group.interpolation, len(values),
                                round(float(values[:, 0].mean()), 3), round(float(values[:, 0].max()), 3),
                                round(float(values[:, 1].mean()), 3), round(float(values[:, 2].mean()), 3)))
    return rows


COLOUR_OPERATIONS = ("brightness", "contrast", "saturation", "hue")
"""``ColorJitter``'s operations, in the ids' order (:data:`dali_multicrop.pixels.pil_colour.BRIGHTNESS` ...)."""


def _colour_variants(spec: MultiCropSpec) -> dict[str, tuple[MultiCropSpec, list[bool]]]:
    """Per colour measurement (see the module): the spec that runs it on every crop, and which groups it concerns
    (where the recipe's strength or probability is 0 the operation is not the recipe's)."""
    from ..recipes.spec import ColorJitter

    plain = _plain(spec)
    out = {}

    def variant(name: str, change: Any, used: list[bool]) -> None:
        if any(used):
            groups = tuple(change(p, g) if u else p for p, g, u in zip(plain.groups, spec.groups, used))
            out[name] = (MultiCropSpec(groups, spec.num_global_groups), used)

    for op in COLOUR_OPERATIONS:
        variant(op, lambda p, g, op=op: p.replace(color_jitter=ColorJitter(1.0, **{k: getattr(g.color_jitter, k) if
                                                                                k == op else 0.0
                                                                                for k in COLOUR_OPERATIONS})),
                [g.color_jitter.active and getattr(g.color_jitter, op) > 0 for g in spec.groups])
    variant("grayscale", lambda p, g: p.replace(grayscale_prob=1.0), [g.grayscale_prob > 0 for g in spec.groups])
    variant("jitter", lambda p, g: p.replace(color_jitter=dataclasses.replace(g.color_jitter, probability=1.0),
                                             grayscale_prob=g.grayscale_prob),
            [g.color_jitter.active for g in spec.groups])
    return out


def torchvision_colour(image: Any, row: np.ndarray) -> Any:
    """torchvision's functions applied to ``image`` (a PIL image or a uint8 CHW tensor) with a crop's colour
    ``row`` (:mod:`dali_multicrop.pixels.pil_colour`): its operations in its order, then grayscale."""
    import torchvision.transforms.functional as TF

    from ..pixels.pil_colour import HUE, ROW_GRAY, ROW_ORDER, ROW_SHIFT

    for op in row[ROW_ORDER:ROW_ORDER + 4].astype(int):
        if op == HUE and row[ROW_SHIFT] >= 0:
            shift = int(row[ROW_SHIFT]) - (256 if row[ROW_SHIFT] >= 128 else 0)
            # a factor torchvision turns into this shift: int(factor * 255) rounds toward zero
            image = TF.adjust_hue(image, (shift + 0.5 * np.sign(shift)) / 255.0)
        elif op != HUE and row[op] != 1:
            adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)[op]
            image = adjust(image, float(row[op]))
    return TF.rgb_to_grayscale(image, 3) if row[ROW_GRAY] else image


def colour_fidelity(spec: MultiCropSpec, images: Sequence[np.ndarray], device: str = "cpu", epochs: int = 1,
                    seed: int = 0) -> list[FidelityRow]:
    """The colour operations of each group of ``spec`` against torchvision on PIL (see the module), over ``epochs``
    passes of ``images`` (RGB uint8 HWC arrays) through loaders on ``device``; one row per operation and group that
    the recipe uses (``ColorJitter``'s four, grayscale, then the whole ``jitter``)."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    from ..step.draws import batch_keys, draw_batch, epoch_key

    variants = _colour_variants(spec)
    names = list(variants)
    specs = [_plain(spec)] + [variants[name][0] for name in names]
    groups = spec.groups
    group_of = [k for k, g in enumerate(groups) for _ in range(g.count)]
    found: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for epoch, iteration, batches in _batches(specs, images, device, epochs, seed, "colour_fidelity"):
        plain, coloured = batches[0], batches[1:]
        keys = batch_keys(epoch_key(seed, 0, epoch), iteration, len(plain.indices))
        uncoloured = [_code_values(crops) for crops in plain.crops]  # once a batch, for every variant
        for name, batch in zip(names, coloured):
            draws = draw_batch(variants[name][0], keys)
            if not np.array_equal(draws.flips, batch.flipped.numpy()):
                raise RuntimeError("colour_fidelity: the crop step's draws are not the loader's")
            for c, crop in enumerate(batch.crops):
                if not variants[name][1][group_of[c]]:
                    continue
                coloured_values = _code_values(crop).float()
                for b in range(crop.shape[0]):
                    before, ours, row = uncoloured[c][b], coloured_values[b], draws.colour[b, c]
                    pil = TF.pil_to_tensor(torchvision_colour(Image.fromarray(before.permute(1, 2, 0).numpy()), row))
                    tensor = torchvision_colour(before, row)
                    found.setdefault((name, group_of[c]), []).append(
                        (float((ours - pil.float()).abs().mean()), float((tensor.float() - pil.float()).abs().mean())))
    rows = []
    group_names = _group_names(spec)
    for name in names:
        for k in range(len(groups)):
            if (name, k) in found:
                values = np.array(found[(name, k)])
                rows.append(FidelityRow(name, group_names[k], "", len(values),
                                        round(float(values[:, 0].mean()), 3), round(float(values[:, 0].max()), 3),
                                        float("nan"), round(float(values[:, 1].mean()), 3), COLOUR_GOALS[name]))
    return rows


def format_rows(rows: Sequence[FidelityRow], title: Optional[str] = None) -> list[str]:
    """The rows as a plain-text table (one line each, a header first)."""
    head = (f"{'operation':<10} {'group':<8} {'interpolation':<13} {'crops':>5} {'mean |diff|':>11} {'worst crop':>10} "
            f"{'other filter':>12} {'torchvision tensor':>18} {'goal':>5}")
    lines = ([title] if title else []) + [head]
    for r in rows:
        other = "-" if np.isnan(r.other) else f"{r.other:.3f}"
        lines.append(f"{r.operation:<10} {r.group:<8} {r.interpolation or '-':<13} {r.crops:>5} {r.mad:>11.3f} "
                     f"{r.worst:>10.3f} {other:>12} {r.tensor:>18.3f} {r.goal:>5.2f}"
                     + ("" if r.within_goal else "  <- above the goal"))
    return lines
