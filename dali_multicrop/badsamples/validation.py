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

from concurrent.futures import Future
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from .diagnose import ImageChecker, ImageDecodeError, ImageReadError
from ..workers import WorkerCrash, WorkerPool, WorkerStartError

__all__ = ["CRASHED", "FileValidator", "Problem", "ValidatorUnavailable", "decode_in_workers"]

CRASHED = ("it crashes DALI's decoder (the worker decoding it alone, in a fresh process, {how}); a corrupt file: "
           "remove or re-encode it")

Problem = Union[ImageReadError, ImageDecodeError]
"""What is wrong with a file, naming it."""


class ValidatorUnavailable(RuntimeError):
    """The image check cannot run at all (its worker processes do not start); the message says what was seen and
    how to do without it."""


# ---- in the worker process ----------------------------------------------------------------------------------

_checker = ImageChecker()


def prepare() -> None:
    """Builds the worker's decoder before it says it is ready: a worker that cannot decode never starts."""
    _checker.prepare()


def check_file(path: str) -> Optional[list]:
    """In a worker: ``path`` decoded alone by DALI's CPU decoder; None, or what is wrong (see :func:`_as_json`)."""
    problem = _checker.file(path)
    return None if problem is None else _as_json(problem)


def _as_json(problem: Problem) -> list:
    if isinstance(problem, ImageReadError):
        return ["read", str(problem), problem.path]
    return ["decode", problem.path, problem.reason, problem.kind]


def _from_json(value: list) -> Problem:
    if value[0] == "read":
        return ImageReadError(value[1], value[2])
    return ImageDecodeError(value[1], value[2], value[3])


# ---- in the user's process ----------------------------------------------------------------------------------

def _pool(workers: int) -> WorkerPool:
    here = "dali_multicrop.badsamples.validation"
    return WorkerPool(f"{here}:check_file", workers, prepare=f"{here}:prepare", what="image validation")


def _outcome(path: str, future: "Future[Any]", what: str) -> Optional[Problem]:
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
                      tick: Callable[[int], None] = lambda n: None) -> dict[str, Problem]:
    """Decodes ``paths`` in ``workers`` processes, one file at a time; the undecodable ones with why.
    ``tick(1)`` after each file; :class:`ValidatorUnavailable` if no worker can start."""
    failed: dict[str, Problem] = {}
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
                self._verdicts[i] = _outcome(self._files[i], future, _UNCHECKED)
        return {int(i): p for i in indices if (p := self._verdicts[int(i)]) is not None}

    def close(self) -> None:
        """Stops the workers (checks under way are dropped and redone if asked for again)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._pending.clear()
