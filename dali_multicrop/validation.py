"""Decoding files once, one at a time, in worker processes: what check-data does, and what the loader does ahead
of a file's first use with ``validate=True``.

Why processes and one file at a time: DALI 2.4's CPU decoder can crash the whole process (a segmentation fault)
when a corrupt JPEG is decoded within a large batch (seen with batches of 64 on 2 threads and 256 on 1; one image
at a time it never did in 900 tries). No Python handler catches that, so files are proven decodable where a crash
costs only a worker; a worker that crashes all the same takes only its files with it: they are checked again one
per process, and a file that crashes its process alone is reported as such.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .imagecheck import ImageDecodeError, ImageReadError, undecodable

__all__ = ["decode_in_workers", "FileValidator", "CRASHED", "Problem"]

CRASHED = "it crashes DALI's decoder (the process died); a corrupt file: remove or re-encode it"

Problem = Union[ImageReadError, ImageDecodeError]
"""What is wrong with a file, naming it."""


def _decode_chunk(paths: list[str]) -> dict[str, Problem]:
    """In a worker process: each file decoded alone by DALI's CPU decoder; the failures, by path."""
    return {problem.path: problem for problem in undecodable(paths)}


def _pool(workers: int) -> ProcessPoolExecutor:
    # no fork of a process that may hold DALI's threads: workers fork from a clean server that imported this once
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _alone(path: str) -> dict[str, Problem]:
    """One file in a process of its own (after a crash): its failure, or nothing."""
    with _pool(1) as pool:
        try:
            return pool.submit(_decode_chunk, [path]).result()
        except BrokenProcessPool:
            return {path: ImageDecodeError(path, CRASHED, "crashed")}


def decode_in_workers(paths: Sequence[str], workers: int, chunk: int = 64,
                      tick: Callable[[int], None] = lambda n: None) -> dict[str, Problem]:
    """Decodes ``paths`` in ``workers`` processes, one file at a time; the undecodable ones with why."""
    failed: dict[str, Problem] = {}
    left: list[list[str]] = []
    with _pool(max(1, workers)) as pool:
        futures = [(part, pool.submit(_decode_chunk, part))
                   for part in (list(paths[i:i + chunk]) for i in range(0, len(paths), chunk))]
        for part, future in futures:
            try:
                failed.update(future.result())
                tick(len(part))
            except BrokenProcessPool:
                left.append(part)
    for path in (p for part in left for p in part):
        failed.update(_alone(path))
        tick(1)
    return failed


class FileValidator:
    """Proves the files of a :class:`~dali_multicrop.FileList` decodable before the graph reads them: batches
    are submitted ahead (:meth:`submit`), and :meth:`wait` gives the bad ones of a batch (index -> problem). Each
    file is decoded once per validator; later epochs cost nothing."""

    def __init__(self, files: Sequence[str], workers: int) -> None:
        self._files = files
        self._workers = max(1, workers)
        self._pool: Optional[ProcessPoolExecutor] = None
        self._pending: dict[int, Future] = {}
        self._bad: dict[int, Problem] = {}
        self._done: set[int] = set()

    def submit(self, indices: np.ndarray) -> None:
        """Starts decoding the files of ``indices`` not checked or under way yet."""
        todo = [int(i) for i in indices if int(i) not in self._done and int(i) not in self._pending]
        if not todo:
            return
        if self._pool is None:
            self._pool = _pool(self._workers)
        future = self._pool.submit(_decode_chunk, [self._files[i] for i in todo])
        for i in todo:
            self._pending[i] = future

    def wait(self, indices: np.ndarray) -> dict[int, Problem]:
        """The bad files among ``indices`` (index -> what is wrong), waiting for their checks."""
        self.submit(indices)
        position = {self._files[int(i)]: int(i) for i in indices}
        for i in (int(i) for i in indices):
            future = self._pending.pop(i, None)
            if future is None:
                continue
            try:
                found = future.result()
            except BrokenProcessPool:  # a worker died: this file alone, in a fresh process
                self._pool = None
                found = _alone(self._files[i])
            self._done.add(i)
            for path, problem in found.items():
                if path in position:
                    self._bad[position[path]] = problem
        return {int(i): self._bad[int(i)] for i in indices if int(i) in self._bad}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
