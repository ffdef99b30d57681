"""Runs the DALI graph epoch by epoch and turns its outputs into :class:`MultiCropBatch`.

A self-contained part: it is given the source, the spec, the frozen :class:`GraphSettings` and the key of the
draws, and reads nothing back from the loader; every error of a run is turned into the user's terms here.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np
import torch

from ._system import release_freed_memory
from .badsamples.policy import BadImageWarning, BadSamples
from .batch import MultiCropBatch
from .choices import torch_dtype
from .feed import AnySource, EpochFeed
from .graph import GraphSettings, build_pipeline, output_names
from .sources.tar import TarShards
from .spec import MultiCropSpec
from .transfer import to_device

__all__ = ["BadImageWarning", "GraphRunner"]

def _exhaust(iterator: Any) -> None:
    """Takes what is left of DALI's epoch. Not ``for _ in iterator``: ``iter()`` on a DALI iterator that has
    delivered batches resets it, which would start (and compute) a whole extra epoch."""
    while True:
        try:
            next(iterator)
        except StopIteration:
            return


class GraphRunner:
    """Owns one pipeline and its DALI iterator; serves one epoch at a time.

    The pipeline is built on first use and reused across epochs. A loop the user left early is
    finished here before the next epoch starts: the feed stops, and only the batches DALI had already
    prefetched are computed and discarded. A pipeline that failed is dropped and rebuilt next epoch.
    Tar shards (DALI's reader picks the samples) get a pipeline per epoch, built with that epoch's shard
    order and shuffle seed; a resumed epoch replays its first batches (computed, not yielded).
    """

    def __init__(self, source: AnySource, spec: MultiCropSpec,
                 settings: GraphSettings, seed: int, shard: int, num_shards: int = 1, shuffle: bool = True,
                 bad: Optional[BadSamples] = None) -> None:
        """``seed`` and ``shard`` key the draws (with epoch and batch); ``settings`` build the graph;
        ``num_shards`` and ``shuffle`` set a tar reader's epochs (see :class:`~dali_multicrop.TarShards`);
        ``bad``: the loader's bad samples (what is known, and what a new one does); default: none known, raise."""
        self.bad = bad if bad is not None else BadSamples(source)
        self._pulled = 0  # the feed's batch last asked of DALI
        self._offset = 0
        self._source = source
        self._tar = source if isinstance(source, TarShards) else None
        self._seed, self._shard, self._num_shards, self._shuffle = seed, shard, num_shards, shuffle
        self.spec = spec
        """The crops this runner's graph makes."""
        self._settings = settings
        self._feed = EpochFeed(source, spec, seed=seed, shard=shard, ahead=settings.prefetch + 1, bad=self.bad)
        self._names = output_names(spec)  # a tar reader's graph: set per epoch
        self._device = settings.torch_device
        self._iterator: Optional[Any] = None
        self._open = False  # True while an epoch has batches DALI has not delivered
        self._epochs_started = 0  # tells a loop that a newer loop over the same runner took the pipeline

    def _start(self, batches: list[np.ndarray], epoch: int, first: int) -> None:
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        if self._tar is not None:  # the reader's epoch is fixed when the pipeline is built: a new one per epoch
            self._drop()
        if self._iterator is not None and self._open:  # a loop left early: finish what DALI had in flight
            self._feed.stop()
            try:
                _exhaust(self._iterator)
            except Exception as exc:
                self._drop()
                self._raise_feed_failure()
                if not self.bad.skipping:  # a bad file there is still a bad file: named, then it is over
                    raise self._explain(self._pulled + 1, exc) from exc
        self._feed.start(batches, epoch, first, pad_to=self._settings.batch_size if self._tar is not None else 0)
        if self._iterator is None:
            reader = None
            if self._tar is not None:
                reader = self._tar.epoch(epoch, self._shard, self._num_shards, self._shuffle, self._seed)
                self._names = output_names(self.spec, reader)
            pipe = build_pipeline(self._feed, self.spec, self._settings, reader=reader)
            self._iterator = DALIGenericIterator(pipe, self._names, auto_reset=False, prepare_first_batch=False)
        else:
            self._iterator.reset()
        self._open = True

    def run_epoch(self, batches: list[np.ndarray], epoch: int, first: int = 0) -> Iterator[MultiCropBatch]:
        """Yields one batch per entry of ``batches[first:]`` of ``epoch`` (a resumed epoch starts at ``first``);
        empty entries (only ever at the end) become empty batches."""
        replay = 0
        if self._tar is not None:  # the reader reads whole batches from the epoch's start; short ones are cut
            replay = sum(1 for b in batches[:first] if len(b))
            full = [b for b in batches if len(b)]
            first_key = 0
        else:
            full = [b for b in batches[first:] if len(b)]
            first_key = first
        batches = batches[first:]
        self._offset = -replay  # batch j of this loop is the feed's batch j - offset
        if full:  # the loop below reads self._iterator, never a local: close() frees the pipeline at once
            self._start(full, epoch, first_key)
            for _ in range(replay):
                next(self._iterator)
        self._epochs_started += 1
        mine = self._epochs_started
        for j, indices in enumerate(batches):
            if mine != self._epochs_started:
                raise RuntimeError("a newer loop over this loader started (or the loader was closed) while this "
                                   "one was still running; one loader serves one loop at a time")
            if not full or not len(indices):
                yield self.empty_batch()
                continue
            outputs = self._pull(j, batches, epoch, first)
            batch = self._to_batch(outputs, len(indices))
            del outputs
            yield batch
        if full and mine == self._epochs_started:
            _exhaust(self._iterator)  # observes the end of the epoch, so the next one can reset
            self._open = False

    def _pull(self, j: int, batches: list[np.ndarray], epoch: int, first: int) -> dict[str, torch.Tensor]:
        """The outputs of batch ``j`` of the loop. A failed batch raises the error naming the file; with
        ``on_error="skip"`` the bad files found in the batches in flight are recorded and replaced, and the
        graph restarts at batch ``j`` (the same draws: they are keyed on the batch number)."""
        while True:
            self._pulled = j - self._offset
            try:
                return next(self._iterator)[0]
            except StopIteration:
                self._drop()
                raise RuntimeError(f"the DALI pipeline ended the epoch after {j} batches") from None
            except Exception as exc:
                self._drop()
                self._raise_feed_failure()
                found = self.bad.scan(self._feed.in_flight(j - self._offset))
                if not found or not self.bad.skipping:
                    raise (found[0][1] if found else exc) from exc
                self.bad.record(found)
                self._offset = j
                self._start([b for b in batches[j:] if len(b)], epoch, first + j)

    def close(self) -> None:
        """Ends any epoch in progress and frees the pipeline (its threads and memory) now; a later epoch builds a
        new one. The bad samples stay known (they are the loader's)."""
        self._feed.stop()
        self._epochs_started += 1  # a loop still holding this runner raises instead of reading on
        self._drop()

    def _drop(self) -> None:
        had = self._iterator is not None
        self._iterator = None  # the last reference: the pipeline shuts down here
        self._open = False
        if had:
            release_freed_memory()

    def _raise_feed_failure(self) -> None:
        """Re-raises the error the feed itself raised into DALI (a bad file named in raise mode, a validator that
        cannot run, a hung dataset item): it is not a bad image to look for."""
        failure = self._feed.take_failure()
        if failure is not None:
            raise failure from None

    def _explain(self, iteration: int, exc: Exception) -> Exception:
        """The error naming the file behind a failed run, found among the batches in flight from ``iteration``
        (see :meth:`BadSamples.scan`), else DALI's own."""
        found = self.bad.scan(self._feed.in_flight(iteration))
        return found[0][1] if found else exc

    def _to_batch(self, outputs: dict[str, torch.Tensor], count: int) -> MultiCropBatch:
        """The crops are on the loader's device already; the side outputs (on the host) are moved there in one
        copy (:func:`~dali_multicrop.transfer.to_device`); the boxes are the second half of the window step's
        rows. A tar reader's batch keeps its first ``count`` samples (the rest is the reader's padding)
        and gets indices and labels from the samples' bytes."""
        n = self.spec.num_crops
        if self._tar is not None:
            outputs = {k: v[:count] for k, v in outputs.items()}
            outputs["indices"], outputs["labels"] = self._tar_ids(outputs)
        windows = outputs["windows"]
        boxes = windows[:, 2 * n:].reshape(windows.shape[0], n, 4)
        boxes, flipped, labels, indices = to_device(
            [boxes, outputs["flipped"], outputs["labels"], outputs["indices"]], self._device)
        return MultiCropBatch(crops=[outputs[f"crop_{i}"] for i in range(n)], boxes=boxes, flipped=flipped,
                              labels=labels, indices=indices)

    def _tar_ids(self, outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample indices (from each sample's source info) and labels (its ``cls`` text) of a tar batch, on the
        host."""
        assert self._tar is not None
        infos = [row.tobytes().rstrip(b"\0") for row in outputs["info"].numpy()]
        indices = np.array([self._tar.index_of(info) for info in infos], dtype=np.int64)
        labels = np.zeros(len(infos), dtype=np.int64)
        for k, row in enumerate(outputs["label_text"].numpy() if "label_text" in outputs else ()):
            text = row.tobytes().rstrip(b"\0").strip()
            if not text.isdigit():
                raise ValueError(f"the label ('cls' member) of tar sample {infos[k].decode(errors='replace')} is "
                                 f"{text[:40]!r}, not a class number >= 0")
            labels[k] = int(text)
        return torch.from_numpy(indices), torch.from_numpy(labels)

    def empty_batch(self) -> MultiCropBatch:
        """A batch of zero images with the right shapes and dtypes (a rank's share of a short last step)."""
        dtype = torch_dtype(self._settings.dtype)
        dev, n = self._device, self.spec.num_crops
        return MultiCropBatch(
            crops=[torch.empty((0, 3, s, s), dtype=dtype, device=dev) for s in self.spec.sizes],
            boxes=torch.empty((0, n, 4), dtype=torch.float32, device=dev),
            flipped=torch.empty((0, n), dtype=torch.bool, device=dev),
            labels=torch.empty((0,), dtype=torch.int64, device=dev),
            indices=torch.empty((0,), dtype=torch.int64, device=dev))
