"""A corpus of bad and awkward image files, generated (nothing downloaded), for tests/test_bad_data.py."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from conftest import coordinate_image


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def _rgb(height: int = 48, width: int = 64) -> Image.Image:
    return Image.fromarray(coordinate_image(height, width))


def _exif_rotated(orientation: int) -> bytes:
    """A JPEG stored 64 wide, 48 high, whose EXIF says to show it turned (6: 90 degrees clockwise, 8: 90
    counter-clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_rgb(), "JPEG", quality=95, exif=exif.tobytes())


def _scrambled(data: bytes) -> bytes:
    """A JPEG's markers at both ends, noise between: it looks whole but does not decode."""
    return data[:100] + np.random.default_rng(1).integers(0, 256, 400).astype(np.uint8).tobytes() + data[-2:]


def _half(data: bytes) -> bytes:
    return data[:len(data) // 2]


def _sixteen_bit() -> bytes:
    values = (np.mgrid[0:48, 0:64][1] * 1000).astype(np.uint16)
    return _encode(Image.fromarray(values), "PNG")


GOOD: dict[str, Callable[[], bytes]] = {
    "baseline.jpg": lambda: _encode(_rgb(), "JPEG", quality=95),
    "progressive.jpg": lambda: _encode(_rgb(), "JPEG", quality=95, progressive=True),
    "grayscale.jpg": lambda: _encode(_rgb().convert("L"), "JPEG", quality=95),
    "cmyk.jpg": lambda: _encode(_rgb().convert("CMYK"), "JPEG", quality=95),
    "alpha.png": lambda: _encode(_rgb().convert("RGBA"), "PNG"),
    "palette.png": lambda: _encode(_rgb().convert("P"), "PNG"),
    "sixteen_bit.png": _sixteen_bit,
    "lossless.webp": lambda: _encode(_rgb(), "WEBP", lossless=True),
    "plain.tiff": lambda: _encode(_rgb(), "TIFF"),
    "plain.bmp": lambda: _encode(_rgb(), "BMP"),
    "tiny_8x8.png": lambda: _encode(_rgb(8, 8), "PNG"),
    "exif6.jpg": lambda: _exif_rotated(6),
    "exif8.jpg": lambda: _exif_rotated(8),
}
"""Files DALI decodes: name -> bytes."""

BAD: dict[str, tuple[Optional[Callable[[], bytes]], str, str]] = {
    "truncated.jpg": (lambda: _half(_encode(_rgb(), "JPEG", quality=95)), "truncated", "is a truncated JPEG"),
    "truncated.png": (lambda: _half(_encode(_rgb(), "PNG")), "truncated", "is a truncated PNG"),
    "empty.jpg": (lambda: b"", "unreadable", r"is empty \(0 bytes\)"),
    "noise.jpg": (lambda: np.random.default_rng(0).integers(0, 256, 4000).astype(np.uint8).tobytes(), "not_image",
                  "is not an image: its first bytes"),
    "page.jpg": (lambda: b"<!DOCTYPE html>\n<html><body>Not Found</body></html>\n", "not_image",
                 r"is not an image: it holds HTML"),
    "animated.gif": (lambda: _encode(_rgb(), "GIF"), "unsupported", "is a GIF file, a format DALI's decoder does not"),
    "removed.jpg": (None, "unreadable", "it does not exist"),
    "unreadable.jpg": (None, "unreadable", "Is a directory"),
    "corrupt.jpg": (lambda: _scrambled(_encode(_rgb(), "JPEG", quality=95)), "corrupt",
                    r"is a JPEG file DALI cannot decode \(corrupt\?\)"),
}
"""Files that fail: name -> (bytes, or None for a file removed or made unreadable after listing; kind; words of
the message)."""


def write_corpus(folder: Path, names: Optional[list[str]] = None) -> dict[str, Path]:
    """Writes the corpus (or ``names`` of it) into ``folder``; ``removed.jpg`` is written, then removed by
    :func:`remove_late` once the folder has been listed."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names or list(GOOD) + list(BAD):
        make = GOOD[name] if name in GOOD else BAD[name][0] or (lambda: _encode(_rgb(), "JPEG"))
        path = folder / name
        path.write_bytes(make())
        paths[name] = path
    return paths


def remove_late(paths: dict[str, Path]) -> None:
    """Removes the file that is to vanish after the dataset was listed, and makes the one to become unreadable
    a folder (tests run as root, whom no file permission stops)."""
    if "removed.jpg" in paths and paths["removed.jpg"].exists():
        os.remove(paths["removed.jpg"])
    if "unreadable.jpg" in paths and paths["unreadable.jpg"].is_file():
        os.remove(paths["unreadable.jpg"])
        os.mkdir(paths["unreadable.jpg"])


def reference_rgb(path: Path) -> np.ndarray:
    """What the file shows, as PIL sees it: EXIF orientation applied, RGB; 16-bit gray scaled to 8 bits by
    rounding v / 257 (PIL's own ``convert("RGB")`` clips 16-bit values at 255 instead)."""
    from PIL import ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I"):
            values = np.asarray(image).astype(np.float64)
            gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
            return np.repeat(gray[:, :, None], 3, axis=2)
        return np.asarray(image.convert("RGB"))
