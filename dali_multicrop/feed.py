"""Feeds the graph: the loader's batches of sample indices become file paths, indices, labels and every random
parameter of the batch's crops.

The graph reads the files itself (``fn.io.file.read``, in DALI's threads), so the training loop's thread only
hands over a few bytes of path per sample (one gather from :attr:`FileList.path_bytes <dali_multicrop.FileList>`),
plus the batch's draws (:mod:`dali_multicrop.draws`: a few vectorised numpy calls per batch, whatever the number of
crops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .draws import BatchDraws, batch_generator, blurs, draw_batch, solarizes
from .badsamples.policy import BadSamples
from .epochs import EpochPlan
from .sources import AnySource, ArraySource, DatasetSource, FileList, TarShards
from .spec import MultiCropSpec
from .windows import WindowInput

__all__ = ["EpochFeed", "SideOutputs", "feed_outputs", "head_of"]


@dataclass(frozen=True)
class SideOutputs:
    """What a batch hands the training loop beside its crops and that the graph never uses, kept on the host
    instead of going through DALI (each input and output DALI converts costs about 50 µs and 0.25 µs a sample,
    measured): ``indices`` and ``labels`` (int64 ``[B]``; None for a reader head, whose samples carry them) and
    ``flips`` (bool ``[B, n]``; the graph's window step gets each crop's flip in its packed input)."""

    indices: Optional[np.ndarray]
    labels: Optional[np.ndarray]
    flips: np.ndarray


def head_of(source: AnySource) -> str:
    """What a feed starts the graph from for ``source``: ``paths`` (files DALI reads), ``images`` (decoded pixels),
    ``encoded`` (bytes DALI decodes) or ``reader`` (nothing: a DALI reader reads the samples, and the feed only
    carries the draws)."""
    if isinstance(source, DatasetSource):
        return source.kind
    return "images" if isinstance(source, ArraySource) else "reader" if isinstance(source, TarShards) else "paths"


def feed_outputs(spec: Optional[MultiCropSpec], head: str = "paths") -> list[str]:
    """Names of the feed's outputs, in order: what the graph's external source yields per batch. ``head`` (see
    :func:`head_of`): ``paths``, ``images`` or ``encoded``; a reader head has none. Without a spec (the decode-only
    graphs, measurements), the head and the samples' indices; with one, the head and the draws the graph uses (the
    window step's packed input, the colour blocks, blur sigmas and solarisation offsets where the spec has them):
    indices, labels and flips stay on the host (:meth:`EpochFeed.side`)."""
    names = [] if head == "reader" else [head]
    if spec is None:
        return names + ["indices"]
    return names + ["window", "colour"] + ["blur"] * blurs(spec) + ["solarize"] * solarizes(spec)


class EpochFeed:
    """DALI external-source callback serving one epoch's batches, in order (see :func:`feed_outputs`).

    ``start(plan, first)`` begins an epoch (or its rest, from batch ``first``); DALI then calls the feed with
    ``BatchInfo.iteration`` = 0, 1, ... and gets ``StopIteration`` after the last batch that holds samples (or at
    once after :meth:`stop`). With a ``spec``, each
    batch also carries its crops' draws, keyed on ``(seed, shard, epoch, batch)``, and keeps its indices, labels
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
        self._windows = WindowInput(spec) if spec is not None else None
        self._seed = seed
        self._shard = shard
        self._epoch = 0
        self._first = 0
        self._sizes: list[int] = []
        self._indices: list[np.ndarray] = []
        self._pad_to = 0
        self._stopped = False
        self.bad = bad if bad is not None else BadSamples(source)
        self.failure: Optional[Exception] = None

    def start(self, plan: EpochPlan, first: int = 0) -> None:
        """Serves the batches of ``plan`` that hold samples, from batch ``first`` of its epoch on (a resumed epoch,
        or the rest of one after a restart), from the next call on: DALI's iteration ``k`` is batch ``first + k``,
        and its draws are keyed on that number. A reader's plan gives only each batch's size (the reader picks the
        samples): the draws of a short batch are made for its size (as from a file source), then padded to the
        reader's ``batch_size`` by repeating the last sample's, as the reader pads its samples."""
        self._pad_to = plan.batch_size if plan.reader is not None else 0
        self._pending = {}
        self._side = {}
        self._sizes = [size for size in plan.sizes[first:] if size]  # empty batches only ever end an epoch
        self._indices = [b for b in plan.indices[first:] if len(b)] if plan.indices is not None else []
        self._epoch = plan.epoch
        self._first = first
        self._stopped = False

    def stop(self) -> None:
        """Ends the current epoch early: the next call raises ``StopIteration``."""
        self._stopped = True

    def in_flight(self, iteration: int) -> list[np.ndarray]:
        """The batches DALI may hold once it has asked for batch ``iteration``: that one and ``ahead`` more."""
        return list(self._indices[iteration:iteration + 1 + self._ahead])

    def draws(self, iteration: int) -> BatchDraws:
        """The draws of batch ``iteration`` of the current epoch (the same on every call)."""
        if self._spec is None:
            raise ValueError("this feed serves no crops (decode-only)")
        rng = batch_generator(self._seed, self._shard, self._epoch, self._first + iteration)
        return draw_batch(self._spec, self._sizes[iteration], rng)

    def side(self, iteration: int) -> SideOutputs:
        """The side outputs of batch ``iteration`` of the current start, once DALI has asked for it (taken: a
        second call raises ``KeyError``)."""
        return self._side.pop(iteration)

    def _draw_outputs(self, iteration: int, indices: Optional[np.ndarray] = None,
                      labels: Optional[np.ndarray] = None) -> list[np.ndarray]:
        """The feed's draw outputs of batch ``iteration``: the window step's packed input (flips and stream keys
        in it), colour blocks, blur sigmas and solarisation offsets (the last two where the spec has them); its
        side outputs (with ``indices`` and ``labels``) are kept for :meth:`side`."""
        draws = self.draws(iteration)
        assert self._windows is not None  # draws() raised for a feed without a spec
        self._side[iteration] = SideOutputs(indices, labels, draws.flips)
        window = self._windows.pack(draws.flips, draws.window_keys)
        return [a for a in (window, draws.colour, draws.blur_sigma, draws.solarize) if a is not None]

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
            draws = self._draw_outputs(iteration)
            short = self._pad_to - self._sizes[iteration]
            return tuple(np.concatenate([a, np.repeat(a[-1:], short, axis=0)]) if short > 0 else a for a in draws)
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
        return (head, *self._draw_outputs(iteration, shown.astype(np.int64), labels))

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
