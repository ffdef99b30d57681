"""Runs the DALI graph epoch by epoch and turns its outputs into :class:`MultiCropBatch`.

A self-contained part: it is given the source, the spec, the frozen :class:`GraphSettings` and the key of the
draws, and reads nothing back from the loader; every error of a run is turned into the user's terms here.
"""

from __future__ import annotations

from typing import Any, Iterator, NoReturn, Optional

import torch

from ..common.system import release_freed_memory
from ..badsamples.policy import BadImageWarning, BadSamples
from .batch import MultiCropBatch
from ..common.choices import torch_dtype
from ..sources.epochs import EpochPlan, ShardPlan
from ..graph.feed import EpochFeed
from ..graph.builder import GraphSettings, build_pipeline
from ..sources import AnySource, TarShards
from ..recipes.spec import MultiCropSpec
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
    A plan with a reader (tar shards: DALI's reader picks the samples) gets a pipeline per epoch, built with that
    epoch's reader settings; DALI's iterator, told the reader's name, cuts the reader's padding off each batch, and a
    resumed epoch replays its first batches (computed, not yielded).
    """

    def __init__(self, source: AnySource, spec: MultiCropSpec, settings: GraphSettings, plan: ShardPlan,
                 bad: Optional[BadSamples] = None) -> None:
        """``plan``'s seed and shard key the draws (with epoch and batch); ``settings`` build the graph; ``bad``: the
        loader's bad samples (what is known, and what a new one does); default: none known, raise."""
        self.bad = bad if bad is not None else BadSamples(source)
        self._pulled = 0  # the feed's batch last asked of DALI
        self._offset = 0  # batch j of the loop is the feed's batch j - offset
        self._tar = source if isinstance(source, TarShards) else None
        self.spec = spec
        """The crops this runner's graph makes."""
        self._settings = settings
        self._feed = EpochFeed(source, spec, seed=plan.seed, shard=plan.shard_id, ahead=settings.prefetch + 1,
                               bad=self.bad)
        self._device = settings.torch_device
        self._iterator: Optional[Any] = None
        self._open = False  # True while an epoch has batches DALI has not delivered
        self._epochs_started = 0  # tells a loop that a newer loop over the same runner took the pipeline

    def _start(self, plan: EpochPlan, first: int) -> None:
        """Feeds ``plan`` from batch ``first`` on, into the pipeline (built here if there is none)."""
        from nvidia.dali.plugin.base_iterator import LastBatchPolicy
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        if plan.reader is not None:  # the reader's epoch is fixed when the pipeline is built: a new one per epoch
            self._drop()
        if self._iterator is not None and self._open:  # a loop left early: finish what DALI had in flight
            self._feed.stop()
            try:
                _exhaust(self._iterator)
            except Exception as exc:
                self._drop()
                self._raise_feed_failure()
                if not self.bad.skipping:  # a bad file there is still a bad file: named, then it is over
                    _raise_named(self._explain(self._pulled + 1, exc), exc)
        self._feed.start(plan, first)
        if self._iterator is None:
            graph = build_pipeline(self._feed, self.spec, self._settings, reader=plan.reader)
            # with a reader, DALI's iterator counts the epoch and cuts the padding of the rank's last batches
            # (partial ones; with drop_last it stops before the first it cannot fill)
            policy = LastBatchPolicy.DROP if plan.drop_last else LastBatchPolicy.PARTIAL
            self._iterator = DALIGenericIterator(graph.pipeline, list(graph.names), reader_name=graph.reader_name,
                                                 last_batch_policy=policy, auto_reset=False,
                                                 prepare_first_batch=False)
        else:
            self._iterator.reset()
        self._open = True

    def run_epoch(self, plan: EpochPlan, first: int = 0) -> Iterator[MultiCropBatch]:
        """Yields one batch per batch of ``plan`` from ``first`` on (a resumed epoch starts there); empty ones
        (only ever at the end) become empty batches."""
        # a reader reads from the epoch's start: its batches before ``first`` are computed again and discarded
        replay = plan.filled(0, first) if plan.reader is not None else 0
        full = plan.filled(first) > 0
        self._offset = -replay
        if full:  # the loop below reads self._iterator, never a local: close() frees the pipeline at once
            self._start(plan, 0 if plan.reader is not None else first)
            for k in range(replay):
                next(self._iterator)
                self._feed.side(k)
        self._epochs_started += 1
        mine = self._epochs_started
        for j, size in enumerate(plan.sizes[first:]):
            if mine != self._epochs_started:
                raise RuntimeError("a newer loop over this loader started (or the loader was closed) while this "
                                   "one was still running; one loader serves one loop at a time")
            if not size:
                yield self.empty_batch()
                continue
            outputs = self._pull(j, plan, first)
            batch = self._to_batch(outputs)
            del outputs
            yield batch
        if full and mine == self._epochs_started:
            _exhaust(self._iterator)  # observes the end of the epoch, so the next one can reset
            self._open = False

    def _pull(self, j: int, plan: EpochPlan, first: int) -> dict[str, torch.Tensor]:
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
                    _raise_named(found[0][1] if found else exc, exc)
                self.bad.record(found)
                self._offset = j
                self._start(plan, first + j)

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

    def _to_batch(self, outputs: dict[str, torch.Tensor]) -> MultiCropBatch:
        """The crops are on the loader's device already; the boxes (the second half of the crop step's rows)
        and the side outputs the feed kept on the host for this batch are moved there in one copy
        (:func:`~dali_multicrop.loader.transfer.to_device`). A tar reader's batch gets its indices and labels from the
        samples' bytes (and its flips cut to the batch: the reader's padding is gone from DALI's outputs)."""
        n = self.spec.num_crops
        side = self._feed.side(self._pulled)
        windows = outputs["windows"]
        size = windows.shape[0]
        if self._tar is not None:
            indices, labels = self._tar.sample_ids(outputs["info"].numpy(),
                                                   outputs["label_text"].numpy() if "label_text" in outputs else None)
        else:
            indices, labels = side.indices, side.labels
        boxes = windows[:, 2 * n:].reshape(size, n, 4)
        boxes, flipped, labels, indices = to_device(
            [boxes, torch.from_numpy(side.flips[:size]), torch.from_numpy(labels), torch.from_numpy(indices)],
            self._device)
        return MultiCropBatch(crops=[outputs[f"crop_{i}"] for i in range(n)], boxes=boxes, flipped=flipped,
                              labels=labels, indices=indices)

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


def _raise_named(error: Exception, dali_error: Exception) -> NoReturn:
    """Raises ``error``: where it names the bad file (not DALI's own), alone, without DALI's long traceback before
    it (DALI's message's first line kept as a note, the whole on ``error.dali_error``)."""
    if error is dali_error:
        raise error
    error.dali_error = dali_error  # type: ignore[attr-defined]
    first = next((line.strip() for line in str(dali_error).splitlines() if line.strip()), type(dali_error).__name__)
    error.add_note(f"(DALI's own error, on .dali_error: {first[:200]})")
    raise error from None

