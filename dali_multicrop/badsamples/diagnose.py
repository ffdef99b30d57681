"""Finds which image broke a pipeline run (DALI's decoder error does not name the file), and the errors
that name it."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ..common.dali import dali_modules

__all__ = ["ImageChecker", "ImageDecodeError", "ImageReadError", "SUPPORTED_FORMATS", "decoder_pipeline", "diagnose",
           "diagnose_data", "diagnose_named", "read_encoded", "sniff_format", "whole_jpegs"]


class ImageReadError(RuntimeError):
    """An image file could not be read (missing, unreadable or empty); the message and ``path`` name the file."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple:  # crosses process boundaries whole (check-data's and validate's workers)
        return type(self), (str(self), self.path)


def read_encoded(path: str) -> np.ndarray:
    """The file's bytes as a 1-D uint8 array; :class:`ImageReadError` naming the file if it can't be read."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise ImageReadError(f"cannot read image '{path}': it does not exist (removed after the dataset was "
                             f"listed?)", path) from exc
    except OSError as exc:
        raise ImageReadError(f"cannot read image '{path}': {exc.strerror or exc}", path) from exc
    if data.size == 0:
        raise ImageReadError(f"image file '{path}' is empty (0 bytes)", path)
    return data


class ImageDecodeError(RuntimeError):
    """An image could not be decoded; ``path`` names the file, ``reason`` says in words what is wrong with it
    (truncated, not an image, an unsupported format, ...) and ``kind`` sorts it (see :func:`diagnose`)."""

    def __init__(self, path: str, reason: str, kind: str = "corrupt") -> None:
        super().__init__(f"cannot decode image '{path}': {reason}")
        self.path = path
        self.reason = reason
        self.kind = kind

    def __reduce__(self) -> tuple:
        return type(self), (self.path, self.reason, self.kind)


# (magic bytes at offset 0, format name) for the formats DALI's decoder reads, then for some it does not
_DECODABLE = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
              (b"MM\x00*", "TIFF"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xffO\xffQ", "JPEG 2000"))
_UNSUPPORTED = ((b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"8BPS", "Photoshop (PSD)"), (b"%PDF", "PDF"),
                (b"\x00\x00\x01\x00", "ICO"))


def sniff_format(head: bytes) -> Optional[str]:
    """The image format the first bytes announce (``"JPEG"``, ``"PNG"``, ``"GIF"``, ...), else None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if len(head) >= 2 and head[:1] == b"P" and head[1:2] in b"123456":
        return "PNM"
    for magic, name in _DECODABLE + _UNSUPPORTED:
        if head.startswith(magic):
            return name
    if head[4:12] in (b"ftypavif", b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "AVIF/HEIF"
    return None


SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "JPEG 2000", "WebP", "PNM")
"""Formats DALI's image decoder reads."""


def _not_an_image(data: np.ndarray) -> str:
    head = data[:64].tobytes()
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml", b"<svg")):
        what = "an SVG drawing" if b"<svg" in text else "HTML (a web page saved under an image's name?)"
        return f"is not an image: it holds {what}, starting {head[:24]!r}"
    return f"is not an image: its first bytes {head[:16]!r} match no image format"


def diagnose(path: str, decoder: Optional[Any] = None,
             decode: bool = True) -> Optional[ImageReadError | ImageDecodeError]:
    """What stops DALI's CPU decoder from decoding ``path``, in words, or None when it decodes.

    The kinds (``ImageDecodeError.kind``): ``not_image``, ``unsupported`` (a known format DALI does not read,
    e.g. GIF), ``truncated`` (a JPEG or PNG cut short), ``corrupt`` (anything else DALI refuses);
    :class:`ImageReadError` for a file that is missing, unreadable or empty. ``decoder``: a pipeline from
    :func:`decoder_pipeline` to reuse. ``decode=False``: every check but the decoding itself."""
    try:
        data = read_encoded(path)
    except ImageReadError as exc:
        return exc
    return diagnose_data(data, path, decoder, decode)


def diagnose_named(data: np.ndarray, name_of: Callable[[], str]) -> Optional[ImageDecodeError]:
    """:func:`diagnose_data` of encoded bytes without decoding (``decode=False``), named by ``name_of()`` only where
    they are bad: on the fetch path a name costs more than the check."""
    if diagnose_data(data, "", decode=False) is None:
        return None
    return diagnose_data(data, name_of(), decode=False)


def whole_jpegs(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which of the images ``data[starts[i]:ends[i]]`` (one uint8 buffer, int64 bounds) are at a glance whole JPEGs,
    as one array operation: they begin with JPEG's start marker and end with its end-of-image marker. Each of those
    passes :func:`diagnose_data` without decoding (``decode=False``); the others need it (a PNG, a JPEG with bytes
    after its end marker, a bad one)."""
    ok = ends - starts >= 5
    s, e = starts[ok], ends[ok]
    ok[ok] = ((data[s] == 0xFF) & (data[s + 1] == 0xD8) & (data[s + 2] == 0xFF)
              & (data[e - 2] == 0xFF) & (data[e - 1] == 0xD9))
    return ok


def diagnose_data(data: np.ndarray, path: str, decoder: Optional[Any] = None,
                  decode: bool = True) -> Optional[ImageDecodeError]:
    """:func:`diagnose` for encoded bytes in memory (a 1-D uint8 array; ``path`` names them in the error)."""
    if data.size == 0:
        return ImageDecodeError(path, "is empty (0 bytes)", "not_image")
    fmt = sniff_format(data[:16].tobytes())
    if fmt is None:
        return ImageDecodeError(path, _not_an_image(data), "not_image")
    if fmt not in SUPPORTED_FORMATS:
        return ImageDecodeError(path, f"is a {fmt} file, a format DALI's decoder does not read (it reads "
                                      f"{', '.join(SUPPORTED_FORMATS)}); convert it, e.g. to PNG", "unsupported")
    # a file cut short: decoders differ (DALI fails on a cut JPEG but fills a cut PNG's missing rows silently)
    tail = data[-4096:].tobytes()
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        return ImageDecodeError(path, f"is a truncated JPEG: its {data.size} bytes end without the JPEG "
                                      f"end-of-image marker", "truncated")
    if fmt == "PNG" and b"IEND" not in tail:
        return ImageDecodeError(path, f"is a truncated PNG: its {data.size} bytes end before the PNG's end chunk "
                                      f"(DALI decodes it with its missing rows filled in)", "truncated")
    if not decode:
        return None
    pipe = decoder if decoder is not None else decoder_pipeline()
    try:
        pipe.feed_input("encoded", [data])
        pipe.run()
    except Exception as exc:  # DALI raises RuntimeError subclasses without a stable type
        return ImageDecodeError(path, f"is a {fmt} file DALI cannot decode (corrupt?): {_short(exc)}", "corrupt")
    return None


def decoder_pipeline() -> Any:
    """A one-image CPU decoding pipeline (its input is named ``encoded``), as the graph decodes."""
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


class ImageChecker:
    """Checks images one at a time (:func:`diagnose`) with one decoding pipeline, reused from image to image and
    built anew after a failure (a pipeline that failed is not reused). One image at a time is safe where DALI's
    batch decoder can crash on a corrupt JPEG."""

    def __init__(self) -> None:
        self._pipe: Optional[Any] = None

    def prepare(self) -> None:
        """Builds the pipeline now (a checker that cannot decode fails here, not at its first image)."""
        if self._pipe is None:
            self._pipe = decoder_pipeline()

    def file(self, path: str) -> Optional[ImageReadError | ImageDecodeError]:
        """What stops DALI from decoding the file ``path``, or None."""
        self.prepare()
        return self._kept(diagnose(path, self._pipe))

    def data(self, data: np.ndarray, name: str) -> Optional[ImageDecodeError]:
        """What stops DALI from decoding the encoded bytes ``data`` (named ``name`` in the error), or None."""
        self.prepare()
        return self._kept(diagnose_data(data, name, self._pipe))

    def _kept(self, problem: Any) -> Any:
        if problem is not None:
            self._pipe = None
        return problem
