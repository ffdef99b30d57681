"""The one owner of a loader's bad samples: which are known bad, what to do about one (raise or skip), the
check ahead of DALI (``validate``) and the search for the culprit after DALI failed.

The feed asks it (:meth:`BadSamples.check` before a batch reaches DALI, :meth:`BadSamples.substitute` for what to
read); the runner asks it after a failed batch (:meth:`BadSamples.scan`, then :meth:`BadSamples.record`). Nothing
calls back into either. A loader keeps one for its whole life, so what it learnt survives a new graph (a curriculum
changing the crops) and later epochs.

Which sources can have bad samples: image folders and file lists (a file missing, unreadable, not an image,
truncated, corrupt or of a format DALI does not read) and torch Datasets (an item that raises, or whose image is
not an image: bytes that do not decode, a wrong array). Arrays in memory are pixels already and cannot be bad.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Sequence

import numpy as np

from ..sources.dataset import DatasetSource
from ..sources.files import FileList
from ..sources.s3 import is_s3
from .diagnose import ImageChecker

__all__ = ["BadImageWarning", "BadSamples", "ON_ERROR", "check_on_error"]

ON_ERROR = ("raise", "skip")
"""What a bad sample does: "raise" stops the loop with the error naming it; "skip" replaces it in its batch."""


def check_on_error(value: object) -> str:
    """``value`` if it is one of :data:`ON_ERROR`, else ``ValueError`` naming the argument."""
    if value not in ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'skip', got {value!r}")
    return value  # type: ignore[return-value]


class BadImageWarning(UserWarning):
    """A bad image was skipped (``on_error="skip"``); once per sample."""


class BadSamples:
    """Known-bad samples of ``source`` and the policy for a new one (``on_error``, see :data:`ON_ERROR`).

    ``validate``: decode each local file once, alone, in ``workers`` worker processes before DALI reads it (see
    :mod:`dali_multicrop.badsamples.validation`); files only (``s3://`` objects are left to DALI)."""

    def __init__(self, source: object, on_error: str = "raise", validate: bool = False, workers: int = 1) -> None:
        self.on_error = check_on_error(on_error)
        self._files: Sequence[str] = source.files if isinstance(source, FileList) else ()
        self._dataset = source if isinstance(source, DatasetSource) else None
        self._count = len(source)  # type: ignore[arg-type]
        self._bad: set[int] = set()
        self.skipped: dict[str, str] = {}
        """Samples skipped so far: name (a file's path, ``Dataset[i]`` for a dataset item) -> what is wrong."""
        self.validator = None
        """The :class:`~dali_multicrop.badsamples.validation.FileValidator` checking files ahead (None without
        ``validate``)."""
        if validate and self._files:
            from .validation import FileValidator

            self.validator = FileValidator(self._files, workers)
            self._checkable = np.array([not is_s3(f) for f in self._files], dtype=bool)

    @property
    def skipping(self) -> bool:
        return self.on_error == "skip"

    def name(self, index: int) -> str:
        """How errors and :attr:`skipped` name sample ``index``."""
        if self._files:
            return self._files[index]
        if self._dataset is not None:
            return self._dataset.item_name(index)
        return f"sample {index}"

    def _local(self, indices: np.ndarray) -> np.ndarray:
        """The local files among ``indices`` not known bad (what the validator checks)."""
        indices = np.asarray(indices, dtype=np.int64)
        keep = self._checkable[indices]
        if self._bad:
            keep &= ~np.isin(indices, np.fromiter(self._bad, dtype=np.int64, count=len(self._bad)))
        return indices[keep]

    def look_ahead(self, batches: Iterable[np.ndarray]) -> None:
        """Starts the checks of the files of ``batches`` (the ones DALI will read next)."""
        if self.validator is not None:
            for indices in batches:
                self.validator.submit(self._local(indices))

    def check(self, indices: np.ndarray) -> None:
        """Before DALI reads ``indices``: waits for their checks and records what they found (:meth:`record`:
        raises in raise mode, so then nothing of the batch is read)."""
        if self.validator is not None:
            self.record(self.validator.wait(self._local(indices)).items())

    def record(self, found: Iterable[tuple[int, Exception]]) -> None:
        """Bad samples, each with the error naming it: raise mode raises the first; skip mode marks them, warns
        once per sample (:class:`BadImageWarning`) and lists them in :attr:`skipped`."""
        for index, problem in found:
            if not self.skipping:
                raise problem
            index = int(index)
            if index in self._bad:
                continue
            self._bad.add(index)
            name = self.name(index)
            if name not in self.skipped:
                self.skipped[name] = str(problem)
                warnings.warn(f"skipping {problem} (on_error='skip': its slot in the batch holds another image of "
                              f"the batch, with index -1)", BadImageWarning, stacklevel=2)

    def substitute(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(samples to read, indices to report)`` for a batch: a known-bad sample is read as the batch's first good
        one (another good sample where the whole batch is bad) and reported as -1."""
        if not self._bad:
            return indices, indices
        bad = np.fromiter((int(i) in self._bad for i in indices), dtype=bool, count=len(indices))
        if not bad.any():
            return indices, indices
        good = indices[~bad]
        if len(good):
            stand_in = int(good[0])
        else:
            stand_in = next((i for i in range(self._count) if i not in self._bad), -1)
            if stand_in < 0:
                raise ValueError("every image of the dataset is unreadable; nothing is left to train on")
        return np.where(bad, stand_in, indices), np.where(bad, -1, indices)

    def scan(self, batches: Iterable[np.ndarray]) -> list[tuple[int, Exception]]:
        """After DALI failed: the bad samples among ``batches`` (the ones it had in flight), each decoded alone in
        this process (one image at a time is safe; it is DALI's batch decoder that can crash). Local files and a
        dataset's encoded items; ``s3://`` objects and decoded pixels are left to DALI's own message."""
        candidates = dict.fromkeys(int(i) for indices in batches for i in indices if int(i) not in self._bad)
        found: list[tuple[int, Exception]] = []
        checker = ImageChecker()
        for index in candidates:
            if self._files:
                if is_s3(self._files[index]):
                    continue
                problem = checker.file(self._files[index])
            elif self._dataset is not None and self._dataset.kind == "encoded":
                try:
                    data = self._dataset.encoded(index)
                except Exception as exc:  # the dataset fails on a second read: that is what is wrong with it
                    problem = exc
                else:
                    problem = checker.data(data, self.name(index))
            else:
                return found
            if problem is not None:
                found.append((index, problem))
        return found

    def close(self) -> None:
        """Stops the validator's workers (what they proved stays known)."""
        if self.validator is not None:
            self.validator.close()

