"""Feeds the graph: the loader's batches of sample indices become file paths, indices and labels.

The graph reads the files itself (``fn.io.file.read``, in DALI's threads), so the training loop's thread only
hands over a few bytes of path per sample.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .sources import FileList

__all__ = ["EpochFeed", "encode_path"]


def encode_path(path: str) -> np.ndarray:
    """A file path as the 1-D uint8 array (UTF-8) that ``fn.io.file.read`` takes."""
    return np.frombuffer(path.encode("utf-8"), dtype=np.uint8)


class EpochFeed:
    """DALI external-source callback serving one epoch's batches, in order: encoded paths, indices, labels.

    ``start(batches)`` begins an epoch; DALI then calls the feed with ``BatchInfo.iteration`` = 0, 1, ...
    and gets ``StopIteration`` after the last batch (or at once after :meth:`stop`).
    """

    def __init__(self, source: FileList) -> None:
        self._files = source.files
        self._labels = np.asarray(source.labels, dtype=np.int64)
        self._batches: Sequence[np.ndarray] = ()
        self._stopped = False

    def start(self, batches: Sequence[np.ndarray]) -> None:
        """Serves ``batches`` (non-empty int64 arrays of sample indices) from the next call on."""
        self._batches = list(batches)
        self._stopped = False

    def stop(self) -> None:
        """Ends the current epoch early: the next call raises ``StopIteration``."""
        self._stopped = True

    def batch(self, iteration: int) -> np.ndarray:
        """Sample indices of batch ``iteration`` of the current epoch."""
        return self._batches[iteration]

    def __len__(self) -> int:
        return len(self._batches)

    def __call__(self, info: Any) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        iteration = info.iteration
        if self._stopped or iteration >= len(self._batches):
            raise StopIteration
        indices = self._batches[iteration]
        paths = [encode_path(self._files[i]) for i in indices]
        return paths, indices.astype(np.int64), self._labels[indices]
