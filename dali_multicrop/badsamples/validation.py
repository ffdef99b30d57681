"""Decoding files once, one at a time, in worker processes: what check-data does, and what the loader does ahead
of a file's first use with ``validate=True``.

Why processes and one file at a time: DALI 2.4's CPU decoder can crash the whole process (a segmentation fault)
when a corrupt JPEG is decoded within a large batch (seen with batches of 64 on 2 threads and 256 on 1; one image
at a time it never did in 900 tries). No Python handler catches that, so files are proven decodable where a crash
costs only a worker. The workers are :mod:`dali_multicrop.workers` processes: programs of their own that never
import the user's main module, so this works the same from a script without a main guard, ``python -c``, stdin, a
notebook or torchrun. A worker that dies for any reason condemns nothing by itself: the file it held is decoded
again alone in a fresh worker, and only a file that crashes that one too is reported (:data:`CRASHED`).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import Future
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from .diagnose import ImageChecker, ImageDecodeError, ImageReadError
from ..workers import WorkerCrash, WorkerPool, WorkerStartError

__all__ = ["CRASHED", "DECODER_WARNINGS", "FileValidator", "Problem", "SuspiciousImage", "SuspiciousImageWarning",
           "ValidatorUnavailable", "decode_in_workers"]

CRASHED = ("it crashes DALI's decoder (the worker decoding it alone, in a fresh process, {how}); a corrupt file: "
           "remove or re-encode it")

Problem = Union[ImageReadError, ImageDecodeError]
"""What is wrong with a file, naming it."""


DECODER_WARNINGS = ("corrupt jpeg data", "premature end of jpeg", "invalid sos", "bogus", "warning")
"""What a decoder's warning on stderr starts with or holds (libjpeg-turbo's corrupt-data warnings, libpng's
``warning``), lower case: a file that decodes only with one decodes to what the decoder made of damaged data."""


class SuspiciousImage:
    """A file that decodes, but only with the decoder's corrupt-data warnings (``warning``: their text): its pixels
    may be partly noise. Not an error: check-data lists it as ``suspicious``, the loader's validator names it once."""

    def __init__(self, path: str, warning: str) -> None:
        self.path, self.warning = path, warning

    def __str__(self) -> str:
        return f"'{self.path}' decodes only with the decoder's warning: {self.warning}"

    def __repr__(self) -> str:
        return f"SuspiciousImage({self.path!r}, {self.warning!r})"


class SuspiciousImageWarning(UserWarning):
    """A file the loader's validator decoded only with the decoder's corrupt-data warnings (named once)."""


class ValidatorUnavailable(RuntimeError):
    """The image check cannot run at all (its worker processes do not start); the message says what was seen and
    how to do without it."""


# ---- in the worker process ----------------------------------------------------------------------------------

_checker = ImageChecker()


def prepare() -> None:
    """Builds the worker's decoder before it says it is ready: a worker that cannot decode never starts."""
    _checker.prepare()


def check_file(path: str) -> Optional[list]:
    """In a worker: ``path`` decoded alone by DALI's CPU decoder; None, or what is wrong (see :func:`_as_json`),
    or the decoder's corrupt-data warnings where it decodes only with them (what it printed on stderr meanwhile)."""
    with _StderrCapture() as printed:
        problem = _checker.file(path)
    if problem is not None:
        return _as_json(problem)
    warning = decoder_warning(printed.text)
    return None if warning is None else ["suspicious", path, warning]


def decoder_warning(text: str) -> Optional[str]:
    """The decoder's warning lines in ``text`` (what it printed on stderr), joined, or None."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = [line for line in lines if any(mark in line.lower() for mark in DECODER_WARNINGS)]
    return "; ".join(dict.fromkeys(found))[:300] if found else None


class _StderrCapture:
    """What the process writes to its file descriptor 2 (a native decoder's messages included) inside the block;
    the descriptor restored after it."""

    def __enter__(self) -> "_StderrCapture":
        import sys
        import tempfile

        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc: Any) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()


def _as_json(problem: Problem) -> list:
    if isinstance(problem, ImageReadError):
        return ["read", str(problem), problem.path]
    return ["decode", problem.path, problem.reason, problem.kind]


def _from_json(value: list) -> Union[Problem, SuspiciousImage]:
    if value[0] == "read":
        return ImageReadError(value[1], value[2])
    if value[0] == "suspicious":
        return SuspiciousImage(value[1], value[2])
    return ImageDecodeError(value[1], value[2], value[3])


# ---- in the user's process ----------------------------------------------------------------------------------

def _pool(workers: int) -> WorkerPool:
    here = "dali_multicrop.badsamples.validation"
    return WorkerPool(f"{here}:check_file", workers, prepare=f"{here}:prepare", what="image validation")


def _outcome(path: str, future: "Future[Any]", what: str) -> Union[None, Problem, SuspiciousImage]:
    """The check's verdict on ``path``; :class:`ValidatorUnavailable` (``what`` cannot run) when the workers
    cannot start."""
    try:
        found = future.result()
    except WorkerCrash as crash:
        return ImageDecodeError(path, CRASHED.format(how=crash.how), "crashed")
    except WorkerStartError as exc:
        raise ValidatorUnavailable(f"{what}: {exc}") from None
    return None if found is None else _from_json(found)


def decode_in_workers(paths: Sequence[str], workers: int,
                      tick: Callable[[int], None] = lambda n: None) -> dict[str, Union[Problem, SuspiciousImage]]:
    """Decodes ``paths`` in ``workers`` processes, one file at a time; the undecodable ones with why, and the ones
    that decode only with the decoder's warnings (:class:`SuspiciousImage`). ``tick(1)`` after each file;
    :class:`ValidatorUnavailable` if no worker can start."""
    failed: dict[str, Union[Problem, SuspiciousImage]] = {}
    with _pool(workers) as pool:
        futures = [(path, pool.submit(path)) for path in paths]
        for path, future in futures:
            problem = _outcome(path, future, "cannot decode the images in worker processes")
            if problem is not None:
                failed[path] = problem
            tick(1)
    return failed


_UNCHECKED = ("validate: cannot check the images before DALI reads them (validate=False turns the check off; DALI's "
              "batch decoder then reads the files unchecked)")


class FileValidator:
    """Proves files decodable before the graph reads them: :meth:`submit` starts the checks of files ahead, and
    :meth:`wait` gives the bad ones among some (index -> problem). Each file is decoded once per validator; later
    epochs cost nothing. ``files[i]`` is the path of sample ``i``."""

    def __init__(self, files: Sequence[str], workers: int) -> None:
        self._files = files
        self._workers = max(1, workers)
        self._pool: Optional[WorkerPool] = None
        self._pending: dict[int, Future] = {}
        self._verdicts: dict[int, Optional[Problem]] = {}

    @property
    def checked(self) -> int:
        """Files decoded so far."""
        return len(self._verdicts)

    @property
    def workers_started(self) -> int:
        """Worker processes started so far (fresh ones after a death included)."""
        return self._pool.started if self._pool is not None else 0

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes running now."""
        return self._pool.pids() if self._pool is not None else []

    def submit(self, indices: np.ndarray) -> None:
        """Starts checking the files of ``indices`` not checked or under way yet."""
        for i in (int(i) for i in indices):
            if i in self._verdicts or i in self._pending:
                continue
            if self._pool is None:
                self._pool = _pool(self._workers)
            self._pending[i] = self._pool.submit(self._files[i])

    def wait(self, indices: np.ndarray) -> dict[int, Problem]:
        """The bad files among ``indices`` (index -> what is wrong), waiting for their checks."""
        self.submit(indices)
        for i in (int(i) for i in indices):
            future = self._pending.pop(i, None)
            if future is not None:
                verdict = _outcome(self._files[i], future, _UNCHECKED)
                if isinstance(verdict, SuspiciousImage):  # it decodes: named once, trained on
                    warnings.warn(f"{verdict} (it is trained on; dali-multicrop check-data lists such files, "
                                  f"docs/troubleshooting.md says how to leave them out)", SuspiciousImageWarning,
                                  stacklevel=2)
                    verdict = None
                self._verdicts[i] = verdict
        return {int(i): p for i in indices if (p := self._verdicts[int(i)]) is not None}

    def close(self) -> None:
        """Stops the workers (checks under way are dropped and redone if asked for again)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._pending.clear()
