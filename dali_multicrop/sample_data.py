"""Built-in sample data: JPEGs shaped like ImageNet's, generated on first use into a cache folder.

Each image is a scene of overlapping flat-coloured regions shaded by a 1/f ("pink") luminance texture with
weaker, smoother colour variation: the spectrum of natural photographs, so it decodes and compresses like
them (about 110 KB at ImageNet's typical 500x375, baseline JPEG quality 95, 4:2:0), unlike flat noise or
flat colour. Sizes follow ImageNet's most common shapes. Generation is deterministic per image index.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .common import system
from .common.system import visible_cores
from .workers import WorkerPool

__all__ = ["sample_image", "tiny_image", "ensure_sample_data", "ensure_tiny_data", "SAMPLE_CLASSES",
           "TINY_HW"]

SAMPLE_CLASSES = 8
_VERSION = 1
_SHAPES = [((375, 500), 0.55), ((500, 375), 0.15), ((333, 500), 0.15), ((500, 500), 0.1), ((400, 500), 0.05)]


def _pink_field(rng: np.random.Generator, height: int, width: int, exponent: float) -> np.ndarray:
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0
    spectrum = f ** -exponent * np.exp(1j * rng.uniform(0, 2 * np.pi, f.shape))
    spectrum[0, 0] = 0
    out = np.fft.irfft2(spectrum, s=(height, width))
    return out / out.std()


def sample_image(index: int, quality: int = 95) -> bytes:
    """JPEG bytes of sample ``index`` (deterministic)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([_VERSION, index])
    shapes, weights = zip(*_SHAPES)
    height, width = shapes[rng.choice(len(shapes), p=weights)]
    base = np.empty((height, width, 3))
    base[:] = rng.uniform(40, 200, 3)
    for _ in range(rng.integers(2, 7)):
        region = Image.new("L", (width, height), 0)
        x0, y0 = int(rng.integers(-50, width)), int(rng.integers(-50, height))
        w, h = (int(v) for v in rng.integers(60, 300, 2))
        draw = ImageDraw.Draw(region)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x0 + w, y0 + h], fill=255)
        base[np.asarray(region) > 0] = rng.uniform(20, 230, 3)
    luminance = _pink_field(rng, height, width, rng.uniform(0.95, 1.15))
    chroma = np.stack([_pink_field(rng, height, width, 1.6) for _ in range(3)], axis=-1)
    pixels = base + luminance[..., None] * rng.uniform(18, 32) + chroma * rng.uniform(4, 10)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=quality)
    return out.getvalue()


TINY_HW = (24, 32)
"""(height, width) of the tiny images: pixel work vanishes, what is left is a graph's fixed cost per batch."""


def tiny_image(index: int) -> bytes:
    """JPEG bytes of tiny image ``index``: ``TINY_HW`` pixels of uniform noise (deterministic)."""
    from PIL import Image

    pixels = np.random.default_rng([_VERSION, 0x71, index]).integers(0, 256, (*TINY_HW, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def write_image(folder: str, index: int, tiny: bool) -> None:
    """Writes image ``index`` (tiny or sample) into its class folder under ``folder`` (a worker's task)."""
    path = Path(folder) / f"class_{index % SAMPLE_CLASSES:02d}" / f"img_{index:05d}.jpg"
    path.write_bytes(tiny_image(index) if tiny else sample_image(index))


def ensure_sample_data(count: int = 2048, cache_dir: Optional[Union[str, os.PathLike]] = None,
                       workers: Optional[int] = None, progress=None) -> Path:
    """The folder of ``count`` sample JPEGs in ``SAMPLE_CLASSES`` class folders, generated if missing.

    Safe to call from several processes at once: each generates into a temporary folder and the first
    finished one is renamed into place. ``progress(done, total)`` is called while generating.
    """
    return _ensure(f"sample-v{_VERSION}-{count}", count, False, cache_dir, workers, progress)


def ensure_tiny_data(count: int = 1024, cache_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """The folder of ``count`` tiny JPEGs (:func:`tiny_image`), generated if missing (a second or two)."""
    return _ensure(f"tiny-v{_VERSION}-{count}", count, True, cache_dir, 1, None)


def _ensure(name: str, count: int, tiny: bool, cache_dir: Optional[Union[str, os.PathLike]],
            workers: Optional[int], progress) -> Path:
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    root = Path(cache_dir) if cache_dir is not None else system.cache_dir()
    target = root / name
    if (target / ".complete").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        for k in range(min(count, SAMPLE_CLASSES)):
            (staging / f"class_{k:02d}").mkdir()
        workers = workers or min(8, visible_cores())
        if workers == 1:
            for i in range(count):
                write_image(str(staging), i, tiny)
        else:  # worker processes of our own: safe from any kind of user program (see dali_multicrop.workers)
            with WorkerPool("dali_multicrop.sample_data:write_image", workers, what="sample data") as pool:
                futures = [pool.submit(str(staging), i, tiny) for i in range(count)]
                for done, future in enumerate(futures, start=1):
                    future.result()
                    if progress is not None:
                        progress(done, count)
        (staging / ".complete").write_text(f"{count}\n")
        try:
            staging.rename(target)
        except OSError:
            if not (target / ".complete").exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
