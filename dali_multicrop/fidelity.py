"""How close the loader's crops are to the method's own transform: torchvision on PIL images, operation by operation.

A preset named after a method must reproduce that method's operations within torchvision's own noise (its tensor
path against PIL: about 0.1-0.6 code values per operation). Measured so far: **the resize**, each group's window
resampled with its interpolation. The loader makes crops of the images with every other operation switched off
(no colour, blur or solarisation; flips kept); for each crop the same window (from ``batch.boxes``: whole pixels)
is cut from the same image and resized by torchvision on the PIL image as ``RandomResizedCrop`` does (antialiased,
the group's interpolation), mirrored where ``batch.flipped`` says. The figure is the mean absolute difference in
code values (0-255) per crop, averaged over the crops; beside it the same against the *other* interpolation (what
choosing the wrong filter would cost) and torchvision's tensor path against PIL on the same windows (its own noise).
``dali-multicrop fidelity`` prints the table; ``docs/fidelity.md`` has the figures.

The images: PNG-encoded (lossless), so the loader's decoder sees exactly the pixels the reference gets; by default
the photographs scikit-image bundles (natural scenes; the built-in sample data is synthetic).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .spec import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, NO_JITTER, MultiCropSpec

__all__ = ["RESIZE_GOAL", "FidelityRow", "format_rows", "natural_photos", "photo_crops", "resize_fidelity"]

RESIZE_GOAL = 0.5
"""The most a resize may differ from torchvision's on PIL, in code values (0-255) per crop, on average."""
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "retina.jpg",
          "ihc.png", "motorcycle_left.png")
"""scikit-image's bundled photographs (RGB, 300-1411 px a side) that :func:`natural_photos` reads."""


@dataclass(frozen=True)
class FidelityRow:
    """One operation of one crop group against torchvision on PIL, in code values (0-255): ``mad`` the mean over
    crops of each crop's mean absolute difference, ``worst`` the largest crop's, ``other`` the same against the
    other interpolation's reference, ``tensor`` torchvision's own tensor path against PIL on the same windows."""

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


def _window(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A crop's window ``(top, left, height, width)`` in whole pixels from its box (fractions of the image)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    left, top = round(x0 * width), round(y0 * height)
    return top, left, round(y1 * height) - top, round(x1 * width) - left


def resize_fidelity(spec: MultiCropSpec, images: Sequence[np.ndarray], device: str = "cpu", epochs: int = 2,
                    seed: int = 0) -> list[FidelityRow]:
    """The resize of each group of ``spec`` against torchvision on PIL (see the module), over ``epochs`` passes of
    ``images`` (RGB uint8 HWC arrays) through a loader on ``device`` ("cpu" or "gpu"); one row per group."""
    import torch
    import torchvision.transforms.functional as TF
    from PIL import Image
    from torchvision.transforms import InterpolationMode

    from .loader import DaliMultiCropLoader

    if not images:
        raise ValueError("resize_fidelity needs at least one image")
    plain = _plain(spec)
    group_of = [k for k, g in enumerate(plain.groups) for _ in range(g.count)]
    found: dict[int, list[tuple[float, float, float]]] = {k: [] for k in range(len(plain.groups))}
    with tempfile.TemporaryDirectory(prefix="dali-multicrop-fidelity-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        files = [folder / f"{i:04d}.png" for i in range(len(images))]
        for image, file in zip(images, files):  # lossless: the loader decodes exactly ``images``
            Image.fromarray(image).save(file)
        mean, std = (torch.tensor(v).view(3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))  # the loader's default
        loader = DaliMultiCropLoader([(str(f), 0) for f in files], crops=plain, batch_size=min(8, len(files)),
                                     device=device, seed=seed, shard_id=0, num_shards=1)
        with loader:
            for epoch in range(epochs):
                loader.set_epoch(epoch)
                for batch in loader:
                    batch = batch.to("cpu")
                    for b, index in enumerate(batch.indices.tolist()):
                        image = images[index]
                        pil, tensor = Image.fromarray(image), torch.from_numpy(image.copy()).permute(2, 0, 1)
                        for c, crop in enumerate(batch.crops):
                            group = plain.groups[group_of[c]]
                            ours = (crop[b].float() * std + mean) * 255.0
                            top, left, h, w = _window(batch.boxes[b, c].tolist(), image.shape[1], image.shape[0])
                            size = [group.size, group.size]

                            def ref(mode: str, source=pil) -> torch.Tensor:
                                out = TF.resized_crop(source, top, left, h, w, size, InterpolationMode(mode),
                                                      antialias=True)
                                out = TF.pil_to_tensor(out) if isinstance(out, Image.Image) else out
                                return (TF.hflip(out) if bool(batch.flipped[b, c]) else out).float()

                            mine = ref(group.interpolation)
                            other = ref(next(m for m in INTERPOLATIONS if m != group.interpolation))
                            via_tensor = ref(group.interpolation, tensor).round().clamp(0, 255)
                            found[group_of[c]].append((float((ours - mine).abs().mean()),
                                                       float((ours - other).abs().mean()),
                                                       float((via_tensor - mine).abs().mean())))
    rows = []
    for k, group in enumerate(plain.groups):
        values = np.array(found[k])
        rows.append(FidelityRow("resize", f"{group.count}x{group.size}", group.interpolation, len(values),
                                round(float(values[:, 0].mean()), 3), round(float(values[:, 0].max()), 3),
                                round(float(values[:, 1].mean()), 3), round(float(values[:, 2].mean()), 3)))
    return rows


def format_rows(rows: Sequence[FidelityRow], title: Optional[str] = None) -> list[str]:
    """The rows as a plain-text table (one line each, a header first)."""
    head = (f"{'operation':<10} {'group':<8} {'interpolation':<13} {'crops':>5} {'mean |diff|':>11} {'worst crop':>10} "
            f"{'other filter':>12} {'torchvision tensor':>18} {'goal':>5}")
    lines = ([title] if title else []) + [head]
    for r in rows:
        lines.append(f"{r.operation:<10} {r.group:<8} {r.interpolation:<13} {r.crops:>5} {r.mad:>11.3f} "
                     f"{r.worst:>10.3f} {r.other:>12.3f} {r.tensor:>18.3f} {r.goal:>5.2f}"
                     + ("" if r.within_goal else "  <- above the goal"))
    return lines
