"""Finds which image broke a pipeline run (DALI's decoder error does not name the file), and the errors
that name it."""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from ._dali import dali_modules

__all__ = ["ImageDecodeError", "ImageReadError", "first_undecodable", "read_encoded"]


class ImageReadError(RuntimeError):
    """An image file could not be read (missing, unreadable or empty); the message names the file."""


def read_encoded(path: str) -> np.ndarray:
    """The file's bytes as a 1-D uint8 array; :class:`ImageReadError` naming the file if it can't be read."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"cannot read image '{path}': {exc.strerror or exc}") from exc
    if data.size == 0:
        raise ImageReadError(f"image file '{path}' is empty (0 bytes)")
    return data


class ImageDecodeError(RuntimeError):
    """An image could not be decoded; ``path`` names the file and ``reason`` says what DALI reported."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot decode image '{path}': {reason}")
        self.path = path
        self.reason = reason


def _decoder_pipeline():
    dali, fn, types = dali_modules()
    pipe = dali.Pipeline(batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1)
    with pipe:
        encoded = fn.external_source(name="encoded", dtype=types.UINT8)
        pipe.set_outputs(fn.decoders.image(encoded, device="cpu", output_type=types.RGB))
    pipe.build()
    return pipe


def _short(exc: BaseException) -> str:
    """What DALI says went wrong: the line after its "encountered:", else its first line of substance."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for before, after in zip(lines, lines[1:]):
        if before == "encountered:":
            return after[:300]
    boiler = ("Critical error", "Current pipeline object", "Error in CPU operator", "which was used", "File ")
    for line in lines:
        if not line.startswith(boiler):
            return line[:300]
    return type(exc).__name__


def first_undecodable(paths: Iterable[str]) -> Optional[Exception]:
    """Reads and decodes each file alone with DALI's CPU decoder; for the first that fails, the error to
    raise (:class:`ImageReadError` or :class:`ImageDecodeError`, naming the file), else None."""
    pipe = None
    for path in paths:
        try:
            data = read_encoded(path)
        except ImageReadError as exc:
            return exc
        if pipe is None:
            pipe = _decoder_pipeline()
        try:
            pipe.feed_input("encoded", [data])
            pipe.run()
        except Exception as exc:  # DALI raises RuntimeError subclasses without a stable type
            return ImageDecodeError(path, _short(exc))
    return None
