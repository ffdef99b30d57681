"""Feeds the graph: the loader's batches of sample indices become file paths and one stream key per sample, from
which the graph draws every random parameter of the sample's crops.

The graph reads the files itself (``fn.io.file.read``, in DALI's threads), so the training loop's thread only
hands over a few bytes per sample, as one array: each row a sample's path (one gather from
:attr:`FileList.path_bytes <dali_multicrop.FileList>`), NUL-terminated, then its 64-bit key
(:func:`~dali_multicrop.step.draws.batch_keys`: one compiled call per batch, whatever the number of crops; the graph's
crop step reads the key from the row's last 8 bytes and draws the rest, see :mod:`dali_multicrop.step`). One input,
not two: DALI takes each input of a batch at about 60 µs and 0.15-0.2 µs a sample (``bench/dali_floor.py``).
The indices, labels and flips the training loop gets stay on the host (:meth:`EpochFeed.side`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..step.draws import KEY_BYTES, BatchDraws, batch_keys, draw_batch, epoch_key, key_rows
from ..badsamples.policy import BadSamples
from ..sources.epochs import EpochPlan
from ..sources import AnySource, ArraySource, DatasetSource, FileList, TarShards
from ..recipes.spec import MultiCropSpec
from ..step import crop_constants, crop_flips

__all__ = ["EpochFeed", "SideOutputs", "feed_outputs", "head_of", "keyed_paths"]


def keyed_paths(paths: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """uint8 ``[B, L + 1 + KEY_BYTES]``: each row of ``paths`` (uint8 ``[B, L]``, NUL-padded,
    :func:`~dali_multicrop.sources.files.encode_paths`), a NUL (so that even the longest path ends there, and
    ``fn.io.file.read`` opens the path alone), then the sample's key (:func:`~dali_multicrop.step.draws.key_rows` of
    ``keys``, ``[B]``)."""
    width = paths.shape[1]
    rows = np.zeros((paths.shape[0], width + 1 + KEY_BYTES), dtype=np.uint8)
    rows[:, :width] = paths
    rows[:, width + 1:] = key_rows(keys)
    return rows


@dataclass(frozen=True)
class SideOutputs:
    """What a batch hands the training loop beside its crops and that the graph never uses, kept on the host
    instead of going through DALI (each input and output DALI converts costs about 50 µs and 0.25 µs a sample,
    measured): ``indices`` and ``labels`` (int64 ``[B]``; None for a reader head, whose samples carry them) and
    ``flips`` (bool ``[B, n]``; the graph's crop step draws the same from the keys)."""

    indices: Optional[np.ndarray]
    labels: Optional[np.ndarray]
    flips: np.ndarray


def head_of(source: AnySource) -> str:
    """What a feed starts the graph from for ``source``: ``paths`` (files DALI reads), ``images`` (decoded pixels),
    ``encoded`` (bytes DALI decodes) or ``reader`` (nothing: a DALI reader reads the samples, and the feed only
    carries the stream keys)."""
    if isinstance(source, DatasetSource):
        return source.kind
    return "images" if isinstance(source, ArraySource) else "reader" if isinstance(source, TarShards) else "paths"


def feed_outputs(spec: Optional[MultiCropSpec], head: str = "paths") -> list[str]:
    """Names of the feed's outputs, in order: what the graph's external source yields per batch. ``head`` (see
    :func:`head_of`): ``paths``, ``images`` or ``encoded``; a reader head has none. Without a spec (the decode-only
    graphs, measurements), the head and the samples' indices. With one, the samples' stream keys too (the crop step
    draws everything from them; indices, labels and flips stay on the host, :meth:`EpochFeed.side`): for a paths
    head, in the same rows as the paths (``keyed_paths``, :func:`keyed_paths`); else the head, if any, then ``keys``
    (uint8 ``[B, KEY_BYTES]``, :func:`~dali_multicrop.step.draws.key_rows`)."""
    if spec is not None and head == "paths":
        return ["keyed_paths"]
    names = [] if head == "reader" else [head]
    return names + (["indices"] if spec is None else ["keys"])


class EpochFeed:
    """DALI external-source callback serving one epoch's batches, in order (see :func:`feed_outputs`).

    ``start(plan, first)`` begins an epoch (or its rest, from batch ``first``); DALI then calls the feed with
    ``BatchInfo.iteration`` = 0, 1, ... and gets ``StopIteration`` after the last batch that holds samples (or at
    once after :meth:`stop`). With a ``spec``, each
    batch also carries its samples' stream keys, keyed on ``(seed, shard, epoch, batch)``, and keeps its indices, labels
    and flips on the host for the runner (:meth:`side`); without a spec (the decode-only graph), paths and indices
    only. ``bad`` (a :class:`~dali_multicrop.badsamples.policy.BadSamples`) is
    asked before each batch goes to DALI: its checks of the batch, and what to read in place of a bad sample.
    """

    def __init__(self, source: AnySource, spec: Optional[MultiCropSpec] = None, seed: int = 0, shard: int = 0,
                 ahead: int = 3, bad: Optional[BadSamples] = None) -> None:
        """``ahead``: the batches DALI may have in flight past the one it asks for (``prefetch + 1``): a dataset
        source's items are fetched, and files checked (``bad.look_ahead``), that far ahead. ``seed`` and ``shard``
        key the draws, with the epoch and the batch number."""
        self.head = head_of(source)
        self._dataset = source if isinstance(source, DatasetSource) else None
        self._ahead = ahead
        self._pending: dict[int, Any] = {}
        self._side: dict[int, SideOutputs] = {}
        self._images = source if isinstance(source, ArraySource) else None
        self._paths = source.path_bytes if isinstance(source, FileList) else None
        self._labels = np.asarray(getattr(source, "labels", ()), dtype=np.int64)
        self.names = feed_outputs(spec, self.head)
        """The outputs of every call, in order (see :func:`feed_outputs`)."""
        self._spec = spec
        self._constants = crop_constants(spec) if spec is not None else None
        self._seed = seed
        self._shard = shard
        self._epoch = 0
        self._epoch_key: Optional[np.uint64] = None
        self._first = 0
        self._sizes: list[int] = []
        self._indices: list[np.ndarray] = []
        self._pad_to = 0
        self._stopped = False
        self.bad = bad if bad is not None else BadSamples(source)
        self.failure: Optional[Exception] = None

    @property
    def spec(self) -> Optional[MultiCropSpec]:
        """The crops this feed draws keys and flips for (None: a decode-only feed)."""
        return self._spec

    @property
    def constants(self) -> Optional[np.ndarray]:
        """float64 ``[n, FIELDS]``: :func:`~dali_multicrop.step.crop_constants` of :attr:`spec`, made once for the feed
        and the graph it feeds (None without a spec)."""
        return self._constants

    def start(self, plan: EpochPlan, first: int = 0) -> None:
        """Serves the batches of ``plan`` that hold samples, from batch ``first`` of its epoch on (a resumed epoch,
        or the rest of one after a restart), from the next call on: DALI's iteration ``k`` is batch ``first + k``,
        and its draws are keyed on that number. A reader's plan gives only each batch's size (the reader picks the
        samples): the keys of a short batch are drawn for its size (as from a file source), then padded to the
        reader's ``batch_size`` by repeating the last sample's, as the reader pads its samples."""
        self._pad_to = plan.batch_size if plan.reader is not None else 0
        self._pending = {}
        self._side = {}
        self._sizes = [size for size in plan.sizes[first:] if size]  # empty batches only ever end an epoch
        self._indices = [b for b in plan.indices[first:] if len(b)] if plan.indices is not None else []
        if self._dataset is not None and self._indices:
            self._dataset.plan(np.concatenate(self._indices))
        self._epoch = plan.epoch
        self._epoch_key = None  # computed at the first batch (a decode-only feed never needs it)
        self._first = first
        self._stopped = False

    def stop(self) -> None:
        """Ends the current epoch early: the next call raises ``StopIteration``."""
        self._stopped = True

    def in_flight(self, iteration: int) -> list[np.ndarray]:
        """The batches DALI may hold once it has asked for batch ``iteration``: that one and ``ahead`` more."""
        return list(self._indices[iteration:iteration + 1 + self._ahead])

    def keys(self, iteration: int) -> np.ndarray:
        """The stream keys (uint64 ``[B]``) of batch ``iteration`` of the current start, unpadded (the same on every
        call): keyed on seed, shard, epoch and the batch's number in its epoch."""
        if self._spec is None:
            raise ValueError("this feed serves no crops (decode-only)")
        if self._epoch_key is None:
            self._epoch_key = epoch_key(self._seed, self._shard, self._epoch)
        return batch_keys(self._epoch_key, self._first + iteration, self._sizes[iteration])

    def draws(self, iteration: int) -> BatchDraws:
        """The draws of batch ``iteration`` of the current start, as the graph's step makes them."""
        assert self._spec is not None
        return draw_batch(self._spec, self.keys(iteration))

    def side(self, iteration: int) -> SideOutputs:
        """The side outputs of batch ``iteration`` of the current start, once DALI has asked for it (taken: a
        second call raises ``KeyError``)."""
        return self._side.pop(iteration)

    def _keys(self, iteration: int, indices: Optional[np.ndarray] = None,
              labels: Optional[np.ndarray] = None) -> np.ndarray:
        """The stream keys of batch ``iteration`` (uint64 ``[B]``), its side outputs (with ``indices``, ``labels``
        and the flips the crop step will draw from the keys) kept for :meth:`side`."""
        keys = self.keys(iteration)
        assert self._constants is not None  # keys() raised for a feed without a spec
        self._side[iteration] = SideOutputs(indices, labels, crop_flips(self._constants, keys))
        return keys

    def __len__(self) -> int:
        return len(self._sizes)

    def __call__(self, info: Any) -> tuple[Any, ...]:
        if self._stopped or info.iteration >= len(self._sizes):
            raise StopIteration
        try:
            return self._serve(info.iteration)
        except Exception as exc:
            self.failure = exc
            raise

    def take_failure(self) -> Optional[Exception]:
        """The error the feed itself raised into DALI since the last call (then DALI's own error only carries it:
        a bad sample named in raise mode, a validator that cannot run, a dataset item that hangs), else None."""
        failure, self.failure = self.failure, None
        return failure

    def _serve(self, iteration: int) -> tuple[Any, ...]:
        if self.head == "reader":
            keys = self._keys(iteration)
            short = self._pad_to - self._sizes[iteration]
            return (key_rows(np.concatenate([keys, np.repeat(keys[-1:], short)]) if short > 0 else keys),)
        indices = self._indices[iteration]
        if self._dataset is not None:
            head, labels, shown = self._fetched(iteration)
        else:
            self.bad.look_ahead(self.in_flight(iteration))
            self.bad.check(indices)  # raise mode: a bad file's error, and nothing of this batch is read
            read, shown = self.bad.substitute(indices)
            labels = self._labels[read]
            head = self._images.take(read) if self._images is not None else self._paths[read]
        if self._spec is None:
            return head, shown.astype(np.int64)
        keys = self._keys(iteration, shown.astype(np.int64), labels)
        return (keyed_paths(head, keys),) if self.head == "paths" else (head, key_rows(keys))

    def _fetched(self, iteration: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """A dataset source's ``(images, labels, indices)`` of batch ``iteration``; the next ``ahead`` batches start
        fetching now (known-bad items are not fetched again). Items that fail are recorded (raise mode: raised) and
        replaced by another of the batch."""
        assert self._dataset is not None
        for j, indices in enumerate(self.in_flight(iteration), start=iteration):
            if j not in self._pending:
                self._pending[j] = self._dataset.submit(np.unique(self.bad.substitute(indices)[0]))
        fetched = dict(self._dataset.collect(self._pending.pop(iteration)))
        while True:
            self.bad.record((i, item) for i, item in fetched.items() if isinstance(item, Exception))
            read, shown = self.bad.substitute(self._indices[iteration])
            missing = [int(i) for i in np.unique(read) if int(i) not in fetched]
            if not missing:  # else a stand-in from outside the batch (its every item was bad)
                break
            fetched.update(self._dataset.collect(self._dataset.submit(np.array(missing))))
        items = [fetched[int(i)] for i in read]
        return [x for x, _ in items], np.array([y for _, y in items], dtype=np.int64), shown
