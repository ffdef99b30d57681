"""``dali-multicrop check-data``: scans a dataset for files that would stop training, and for awkward ones.

Two passes. The first reads each file's head and tail on a thread pool (format by magic bytes, JPEG/PNG cut
short, PIL's header for size and colour mode). The second decodes every file with DALI's CPU decoder, one
file at a time, in a worker process per core (see :mod:`dali_multicrop.badsamples.validation` for why), naming
each file that fails (:func:`~dali_multicrop.badsamples.diagnose.diagnose`).

Categories: ``unreadable`` (missing, unreadable, empty) and ``undecodable`` (not an image, unsupported format,
truncated, corrupt) would fail training; ``suspicious`` (decodes, but only with the decoder's corrupt-data warnings,
e.g. libjpeg's "Corrupt JPEG data: 1872 extraneous bytes before marker 0xd9": its pixels may be partly noise, the
warning text kept), ``tiny`` (shorter side below ``min_size``), ``grayscale`` and ``cmyk`` decode (to RGB) and are
reported for a look.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .diagnose import ImageReadError, diagnose
from .validation import SuspiciousImage, decode_in_workers

__all__ = ["DataReport", "check_files", "FAILING", "NOTED"]

FAILING = ("unreadable", "undecodable")
"""Categories that would stop training."""
NOTED = ("suspicious", "tiny", "grayscale", "cmyk")
"""Categories that decode (to RGB) but deserve a look."""

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass
class DataReport:
    """What a scan found: ``files`` scanned, per category the files and why, and the time it took."""

    files: int
    seconds: float
    found: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in FAILING + NOTED})

    @property
    def fails_training(self) -> bool:
        return any(self.found[k] for k in FAILING)

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else float("inf")

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.found.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "seconds": round(self.seconds, 3), "files_per_s": round(self.files_per_s, 1),
                "fails_training": self.fails_training, "counts": self.counts(), "found": self.found}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")


def _head(path: str, min_size: int) -> tuple[Optional[str], str, list[tuple[str, str]]]:
    """First pass on one file: ``(failing category or None, reason, [(noted category, reason)])``."""
    problem = diagnose(path, decode=False)
    if problem is not None:
        return ("unreadable" if isinstance(problem, ImageReadError) else "undecodable"), str(problem), []
    notes: list[tuple[str, str]] = []
    try:
        from PIL import Image

        with Image.open(path) as image:
            mode, (width, height) = image.mode, image.size
    except Exception:  # PIL does not know every format DALI reads; the decode pass decides
        return None, "", notes
    if mode == "CMYK":
        notes.append(("cmyk", "CMYK JPEG: decoders may convert its colours differently"))
    elif mode in _GRAY_MODES:
        notes.append(("grayscale", f"one channel ({mode}): decoded to gray RGB"))
    if min(width, height) < min_size:
        notes.append(("tiny", f"{width}x{height} px, shorter side below {min_size}"))
    return None, "", notes


def check_files(paths: Sequence[str], min_size: int = 96, threads: int = 1,
                tick: Callable[[int], None] = lambda n: None) -> DataReport:
    """Scans ``paths`` (see the module) with ``threads`` threads and worker processes; ``tick(n)`` after every
    ``n`` files of each pass (a progress bar counts ``2 * len(paths)``). Works from any kind of program (the
    workers never import its main module); :class:`~dali_multicrop.badsamples.validation.ValidatorUnavailable` if they
    cannot start."""
    start = time.perf_counter()
    report = DataReport(files=len(paths), seconds=0.0)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        heads = []
        for path, head in zip(paths, pool.map(lambda p: _head(p, min_size), paths)):
            heads.append(head)
            tick(1)
    to_decode = []
    for path, (category, reason, notes) in zip(paths, heads):
        if category is not None:
            report.found[category][path] = reason
            continue
        to_decode.append(path)
        for noted, why in notes:
            report.found[noted][path] = why
    tick(len(paths) - len(to_decode))
    for path, problem in decode_in_workers(to_decode, threads, tick).items():
        if isinstance(problem, SuspiciousImage):
            report.found["suspicious"][path] = problem.warning
            continue
        report.found["undecodable"][path] = str(problem)
        for noted in NOTED:
            report.found[noted].pop(path, None)
    report.seconds = time.perf_counter() - start
    return report

