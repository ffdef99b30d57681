"""The loader's side of the training loop, always on: how long the loop waited inside ``next()`` for a batch against
how long it spent between batches (its step), and the images per second that made, for the current epoch and since
the loader was made (issue #30: "is the loader my bottleneck?")."""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["LoaderStats", "StatsClock"]


@dataclass(frozen=True)
class LoaderStats:
    """A snapshot of :attr:`DaliMultiCropLoader.stats <dali_multicrop.DaliMultiCropLoader.stats>`, in seconds.

    ``epoch``: the epoch the figures marked ``epoch_`` are for (the current or last loop's). ``first_batch_s``: the
    wait for that epoch's first batch (the graph's start, its first decode; ``first_batch_images`` in it), kept
    apart from ``epoch_wait_s``, the
    wait for the others; ``epoch_step_s``: the time between batches (the training step); ``epoch_batches`` and
    ``epoch_images`` handed over. The ``total_`` figures add up every epoch since the loader was made (first batches
    included in ``total_wait_s``).
    """

    epoch: int
    epoch_batches: int
    epoch_images: int
    first_batch_s: float
    first_batch_images: int
    epoch_wait_s: float
    epoch_step_s: float
    total_batches: int
    total_images: int
    total_wait_s: float
    total_step_s: float

    @property
    def wait_share(self) -> float:
        """The share (0-1) of this epoch's time after its first batch that the loop waited for data: near 0, the
        loader keeps up; near 1, the training step waits for it."""
        spent = self.epoch_wait_s + self.epoch_step_s
        return self.epoch_wait_s / spent if spent > 0 else 0.0

    @property
    def images_per_s(self) -> float:
        """This epoch's images per second after its first batch (wait and step together)."""
        spent = self.epoch_wait_s + self.epoch_step_s
        return (self.epoch_images - self.first_batch_images) / spent if spent > 0 else 0.0

    @property
    def total_wait_share(self) -> float:
        """The share of all the time since the first batch was asked for that the loop waited for data."""
        spent = self.total_wait_s + self.total_step_s
        return self.total_wait_s / spent if spent > 0 else 0.0

    def __str__(self) -> str:
        return (f"epoch {self.epoch}: {self.epoch_batches:,} batches, {self.epoch_images:,} images, "
                f"{self.images_per_s:,.1f} img/s, waiting for data {100 * self.wait_share:.1f}% of "
                f"{self.epoch_wait_s + self.epoch_step_s:,.1f} s (first batch {self.first_batch_s:.2f} s); since "
                f"start: {self.total_batches:,} batches, {self.total_images:,} images, waiting "
                f"{100 * self.total_wait_share:.1f}%")

    def __repr__(self) -> str:
        return f"LoaderStats({self})"


class StatsClock:
    """What :class:`LoaderStats` is made of, counted by the loader's loop: :meth:`start` at an epoch's start, then
    :meth:`ready` when a batch is handed over and :meth:`resumed` when the loop asks for the next one."""

    def __init__(self) -> None:
        self._epoch = 0
        self._batches = self._images = self._first_images = 0
        self._first = self._wait = self._step = 0.0
        self._total_batches = self._total_images = 0
        self._total_wait = self._total_step = 0.0
        self._mark = time.perf_counter()

    def start(self, epoch: int) -> None:
        """A loop over ``epoch`` asked for its first batch."""
        self._epoch, self._batches, self._images, self._first_images = epoch, 0, 0, 0
        self._first = self._wait = self._step = 0.0
        self._mark = time.perf_counter()

    def ready(self, images: int) -> None:
        """A batch of ``images`` is handed over: the time since the loop asked was waited."""
        now = time.perf_counter()
        waited, self._mark = now - self._mark, now
        if self._batches == 0:
            self._first, self._first_images = waited, images
        else:
            self._wait += waited
        self._total_wait += waited
        self._batches += 1
        self._images += images
        self._total_batches += 1
        self._total_images += images

    def resumed(self) -> None:
        """The loop asks for the next batch: the time since the last one was handed over was its step."""
        now = time.perf_counter()
        stepped, self._mark = now - self._mark, now
        self._step += stepped
        self._total_step += stepped

    def snapshot(self) -> LoaderStats:
        return LoaderStats(self._epoch, self._batches, self._images, round(self._first, 6), self._first_images,
                           round(self._wait, 6),
                           round(self._step, 6), self._total_batches, self._total_images, round(self._total_wait, 6),
                           round(self._total_step, 6))
