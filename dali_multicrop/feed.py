"""Feeds the graph: the loader's batches of sample indices become file paths, indices, labels and every random
parameter of the batch's crops.

The graph reads the files itself (``fn.io.file.read``, in DALI's threads), so the training loop's thread only
hands over a few bytes of path per sample, plus the batch's draws (:mod:`dali_multicrop.draws`: a few
vectorised numpy calls per batch, whatever the number of crops).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from .draws import BatchDraws, batch_generator, blurs, draw_batch, solarizes
from .sources import ArraySource, FileList
from .spec import MultiCropSpec
from .windows import pack_window_input

__all__ = ["EpochFeed", "encode_path", "feed_outputs"]


def encode_path(path: str) -> np.ndarray:
    """A file path as the 1-D uint8 array (UTF-8) that ``fn.io.file.read`` takes."""
    return np.frombuffer(path.encode("utf-8"), dtype=np.uint8)


def feed_outputs(spec: Optional[MultiCropSpec], pixels: bool = False) -> list[str]:
    """Names of the feed's outputs, in order: what the graph's external source yields per batch (``images``
    instead of ``paths`` for a source of decoded pixels)."""
    names = ["images" if pixels else "paths", "indices", "labels"]
    if spec is None:
        return names[:2]
    return names + ["window", "flips", "colour"] + ["blur"] * blurs(spec) + ["solarize"] * solarizes(spec)


def _draw_outputs(draws: BatchDraws) -> list[np.ndarray]:
    window = pack_window_input(draws.window, draws.flips)
    return [a for a in (window, draws.flips, draws.colour, draws.blur_sigma, draws.solarize) if a is not None]


class EpochFeed:
    """DALI external-source callback serving one epoch's batches, in order (see :func:`feed_outputs`).

    ``start(batches, epoch, first)`` begins an epoch (or its rest, from batch ``first``); DALI then calls the feed
    with ``BatchInfo.iteration`` = 0, 1, ...
    and gets ``StopIteration`` after the last batch (or at once after :meth:`stop`). With a ``spec``, each
    batch also carries its crops' draws, keyed on ``(seed, shard, epoch, batch)``; without a spec (the
    decode-only graph), paths and indices only.
    """

    def __init__(self, source: Union[FileList, ArraySource], spec: Optional[MultiCropSpec] = None, seed: int = 0,
                 shard: int = 0) -> None:
        self._images = source.images if isinstance(source, ArraySource) else None
        self._files = source.files if isinstance(source, FileList) else ()
        self._labels = np.asarray(source.labels, dtype=np.int64)
        self.names = feed_outputs(spec, pixels=self._images is not None)
        """The outputs of every call, in order (see :func:`feed_outputs`)."""
        self._spec = spec
        self._seed = seed
        self._shard = shard
        self._epoch = 0
        self._first = 0
        self._batches: Sequence[np.ndarray] = ()
        self._stopped = False

    def start(self, batches: Sequence[np.ndarray], epoch: int = 0, first: int = 0) -> None:
        """Serves ``batches`` (non-empty int64 arrays of sample indices) of ``epoch`` from the next call on;
        ``batches[0]`` is batch ``first`` of the epoch (a resumed epoch): draws are keyed on that number."""
        self._batches = list(batches)
        self._epoch = epoch
        self._first = first
        self._stopped = False

    def stop(self) -> None:
        """Ends the current epoch early: the next call raises ``StopIteration``."""
        self._stopped = True

    def batch(self, iteration: int) -> np.ndarray:
        """Sample indices of batch ``iteration`` of the current epoch."""
        return self._batches[iteration]

    def draws(self, iteration: int) -> BatchDraws:
        """The draws of batch ``iteration`` of the current epoch (the same on every call)."""
        if self._spec is None:
            raise ValueError("this feed serves no crops (decode-only)")
        rng = batch_generator(self._seed, self._shard, self._epoch, self._first + iteration)
        return draw_batch(self._spec, len(self._batches[iteration]), rng)

    def __len__(self) -> int:
        return len(self._batches)

    def __call__(self, info: Any) -> tuple[Any, ...]:
        iteration = info.iteration
        if self._stopped or iteration >= len(self._batches):
            raise StopIteration
        indices = self._batches[iteration]
        head: Any = self._images[indices] if self._images is not None else [encode_path(self._files[i])
                                                                            for i in indices]
        if self._spec is None:
            return head, indices.astype(np.int64)
        return (head, indices.astype(np.int64), self._labels[indices], *_draw_outputs(self.draws(iteration)))
