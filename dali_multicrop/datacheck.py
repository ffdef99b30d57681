"""``dali-multicrop check-data``: scans a dataset for files that would stop training, and for awkward ones.

Two passes. The first reads each file's head and tail on a thread pool (format by magic bytes, JPEG/PNG cut
short, PIL's header for size and colour mode). The second decodes every file with DALI's CPU decoder, one
file at a time, in a process per core (see :func:`_decode_pass` for why), naming each file that fails
(:func:`~dali_multicrop.imagecheck.diagnose`).

Categories: ``unreadable`` (missing, unreadable, empty) and ``undecodable`` (not an image, unsupported format,
truncated, corrupt) would fail training; ``tiny`` (shorter side below ``min_size``), ``grayscale`` and
``cmyk`` decode fine (to RGB) and are reported for a look.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence


from .imagecheck import ImageReadError, decoder_pipeline, diagnose

__all__ = ["DataReport", "check_files", "FAILING", "NOTED"]

FAILING = ("unreadable", "undecodable")
"""Categories that would stop training."""
NOTED = ("tiny", "grayscale", "cmyk")
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
    problem = diagnose(path, decoder=_NO_DECODE)
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


class _NoDecode:
    """Stands in for a decoder in the first pass: every check of :func:`diagnose` but the decoding."""

    def feed_input(self, name: str, data: Any) -> None:
        pass

    def run(self) -> None:
        pass


_NO_DECODE = _NoDecode()


_WORKER_DECODER: list[Any] = []


def _decode_chunk(paths: list[str]) -> dict[str, str]:
    """In a worker process: each file decoded alone by DALI's CPU decoder; the failures with why."""
    if not _WORKER_DECODER:
        _WORKER_DECODER.append(decoder_pipeline())
    failed = {}
    for path in paths:
        problem = diagnose(path, _WORKER_DECODER[0])
        if problem is not None:
            failed[path] = str(problem)
            _WORKER_DECODER[0] = decoder_pipeline()  # a pipeline that failed is not reused
    return failed


def _decode_pass(paths: Sequence[str], threads: int, batch: int, tick: Callable[[int], None]) -> dict[str, str]:
    """Decodes ``paths`` with DALI's CPU decoder in ``threads`` worker processes, one file at a time; the
    undecodable ones with why.

    One file at a time and in processes, not in DALI batches: DALI 2.4's CPU decoder can crash the whole process
    (a segmentation fault) when a corrupt JPEG is decoded within a large batch (seen with batches of 64 on 2
    threads and of 256 on 1; one image at a time it never did in 900 tries). A worker that crashes all the same
    takes only its files with it: they are checked again one per process, and a file that crashes its process
    alone is reported as such."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    failed: dict[str, str] = {}
    # no fork of a process that may hold DALI's threads: workers fork from a clean server that imported this once
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])

    def run(chunks: list[list[str]], workers: int) -> list[list[str]]:
        """Runs the chunks; returns those a crash left unchecked."""
        left = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [(chunk, pool.submit(_decode_chunk, chunk)) for chunk in chunks]
            for chunk, future in futures:
                try:
                    failed.update(future.result())
                    tick(len(chunk))
                except BrokenProcessPool:
                    left.append(chunk)
        return left

    chunks = [list(paths[i:i + batch]) for i in range(0, len(paths), batch)]
    left = run(chunks, max(1, threads))
    for path in (p for chunk in left for p in chunk):  # after a crash: each file in a process of its own
        if run([[path]], 1):
            failed[path] = (f"cannot decode image '{path}': it crashes DALI's decoder (the process died); a "
                            f"corrupt file: remove or re-encode it")
            tick(1)
    return failed


def check_files(paths: Sequence[str], min_size: int = 96, threads: int = 1, batch: int = 64,
                tick: Callable[[int], None] = lambda n: None) -> DataReport:
    """Scans ``paths`` (see the module); ``tick(n)`` after every ``n`` files of each pass (a progress bar
    counts ``2 * len(paths)``)."""
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
    for path, reason in _decode_pass(to_decode, threads, batch, tick).items():
        report.found["undecodable"][path] = reason
        for noted in NOTED:
            report.found[noted].pop(path, None)
    report.seconds = time.perf_counter() - start
    return report

