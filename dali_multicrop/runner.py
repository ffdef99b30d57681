"""Runs the DALI graph epoch by epoch for a loader and turns its outputs into :class:`MultiCropBatch`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional

import numpy as np
import torch

from .batch import MultiCropBatch
from .feed import EpochFeed
from .graph import DecoderSettings, GraphSettings, build_pipeline, output_names
from .imagecheck import first_undecodable

if TYPE_CHECKING:
    from .loader import DaliMultiCropLoader

__all__ = ["GraphRunner"]

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
    """

    def __init__(self, loader: "DaliMultiCropLoader") -> None:
        self._loader = loader
        self._feed = EpochFeed(loader.source, loader.spec, seed=loader.seed, shard=loader.shard_id)
        self._names = output_names(loader.spec)
        self._iterator: Optional[Any] = None
        self._open = False  # True while an epoch has batches DALI has not delivered
        self._epochs_started = 0  # tells a loop that a newer loop over the same loader took the pipeline

    def _settings(self) -> GraphSettings:
        ld = self._loader
        return GraphSettings(device=ld.device, batch_size=ld.batch_size, num_threads=ld.num_threads,
                             seed=ld.graph_seed(), device_id=ld.device_id, dtype=ld.dtype,
                             mean=ld.mean, std=ld.std, prefetch=ld.prefetch,
                             decoder=DecoderSettings(hw_decoder_load=ld.hw_decoder_load))

    def _start(self, batches: list[np.ndarray], epoch: int, first: int) -> Any:
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        if self._iterator is not None and self._open:
            self._feed.stop()
            _exhaust(self._iterator)
        self._feed.start(batches, epoch, first)
        if self._iterator is None:
            pipe = build_pipeline(self._feed, self._loader.spec, self._settings())
            self._iterator = DALIGenericIterator(pipe, self._names, auto_reset=False, prepare_first_batch=False)
        else:
            self._iterator.reset()
        self._open = True
        return self._iterator

    def run_epoch(self, batches: list[np.ndarray], epoch: int, first: int = 0) -> Iterator[MultiCropBatch]:
        """Yields one batch per entry of ``batches[first:]`` of ``epoch`` (a resumed epoch starts at ``first``);
        empty entries (only ever at the end) become empty batches."""
        batches = batches[first:]
        full = [b for b in batches if len(b)]
        iterator = self._start(full, epoch, first) if full else None
        self._epochs_started += 1
        mine = self._epochs_started
        for j, indices in enumerate(batches):
            if mine != self._epochs_started:
                raise RuntimeError("a newer loop over this loader started while this one was still running; "
                                   "one loader serves one loop at a time")
            if iterator is None or not len(indices):
                yield self._loader.empty_batch()
                continue
            try:
                outputs = next(iterator)[0]
            except StopIteration:
                self._drop()
                raise RuntimeError(f"the DALI pipeline ended the epoch after {j} of {len(full)} batches") from None
            except Exception as exc:
                self._drop()
                raise self._explain(j, exc) from exc
            yield self._to_batch(outputs)
        if iterator is not None:
            _exhaust(iterator)  # observes the end of the epoch, so the next one can reset
            self._open = False

    def _drop(self) -> None:
        self._iterator = None
        self._open = False

    def _explain(self, iteration: int, exc: Exception) -> Exception:
        """Names the file behind a failed run: checks the batches that were in flight, one file at a time."""
        files = self._loader.source.files
        in_flight = range(iteration, min(iteration + self._loader.prefetch + 1, len(self._feed)))
        candidates = [files[i] for j in in_flight for i in self._feed.batch(j)]
        found = first_undecodable(candidates)
        return found if found is not None else exc

    def _to_batch(self, outputs: dict[str, torch.Tensor]) -> MultiCropBatch:
        """Everything is already on the loader's device (the graph outputs its side tensors there); the boxes
        are the second half of the window step's rows (a view)."""
        n = self._loader.spec.num_crops
        windows = outputs["windows"]
        return MultiCropBatch(
            crops=[outputs[f"crop_{i}"] for i in range(n)],
            boxes=windows[:, 2 * n:].reshape(windows.shape[0], n, 4),
            flipped=outputs["flipped"],
            labels=outputs["labels"],
            indices=outputs["indices"])
