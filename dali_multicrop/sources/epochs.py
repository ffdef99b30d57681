"""Epoch order: which samples each rank (a torchrun rank; a "shard" in DALI's words, not a tar file) reads in each
epoch, in which batches. :class:`EpochPlan` is one rank's epoch as the loader runs it (a tar source makes its own,
``TarShards.epoch_plan``, since DALI's reader picks the samples); below, the rule for the sources whose samples the
loader picks.

Every epoch, all ranks compute the same order of the whole dataset (a permutation keyed on
``(seed, epoch)``), then rank ``k`` of ``S`` takes positions ``k, k + S, k + 2S, ...`` of it. Batch ``j`` of
every rank thus comes from the same stretch ``[j*S*B, (j+1)*S*B)`` of the order, so:

==============  ==========================================  ===============================================
``drop_last``   batches per epoch, every rank               what happens to the tail of the order
==============  ==========================================  ===============================================
``False``       ``ceil(N / (S*B))``                         every sample exactly once; the last batch holds
                                                            ``floor(R/S)`` or ``ceil(R/S)`` samples, with
                                                            ``R = N - (len-1)*S*B`` (it is empty on a rank
                                                            when ``R < S``)
``True``        ``floor(N / (S*B))``                        the last ``N mod (S*B)`` samples of the order
                                                            are skipped this epoch; all batches are full
==============  ==========================================  ===============================================

Example: N=10, S=3, B=2, ``drop_last=False``: 2 batches on every rank; rank 0 gets 2 + 2 samples,
ranks 1 and 2 get 2 + 1 (10 in all, each once). Equal batch counts keep DDP's collectives in step.

A source read in blocks (Parquet row groups, Arrow record batches) gives its own order (``order_of``: blocks
shuffled, then rows within windows of blocks); rank ``k`` then takes the ``k``-th contiguous stretch of it, as many
samples as the interleaved rule would give it (so the same batch sizes and the same table), and reads only the blocks
of its stretch: about ``1/S`` of the dataset's bytes per epoch rather than all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..common.checks import check_int
from ..common.seeds import derive_seed

__all__ = ["EpochPlan", "ResumePoint", "ShardPlan", "distributed_defaults"]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def distributed_defaults() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as torchrun sets them (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``);
    ``(0, 1, 0)`` outside torchrun."""
    return _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)


@dataclass(frozen=True)
class EpochPlan:
    """One rank's batches of one epoch, as its source reads them: what the feed, the graph and the runner are given.

    ``sizes[j]``: samples in batch ``j`` (the same count of batches on every rank; short or empty ones only at the
    end). ``indices[j]``: the sample indices of batch ``j`` where the loader picks the samples (files, arrays,
    datasets), ``None`` where a DALI reader picks them; ``reader`` is then that reader's settings for the epoch (a
    :class:`~dali_multicrop.sources.tar.TarEpoch`), which reads whole batches of ``batch_size`` (padded at the end
    of the rank's range) and, with ``drop_last``, stops before the first batch it cannot fill.
    """

    epoch: int
    sizes: tuple[int, ...]
    indices: Optional[tuple[np.ndarray, ...]] = None
    reader: Any = None
    batch_size: int = 0
    drop_last: bool = False

    @classmethod
    def of(cls, batches: Sequence[np.ndarray], epoch: int = 0, batch_size: Optional[int] = None) -> "EpochPlan":
        """The plan that reads ``batches`` (arrays of sample indices) in order; ``batch_size`` default the
        longest."""
        batches = tuple(np.asarray(b, dtype=np.int64) for b in batches)
        longest = max((len(b) for b in batches), default=0)
        return cls(epoch=epoch, sizes=tuple(len(b) for b in batches), indices=batches,
                   batch_size=longest if batch_size is None else batch_size)

    def __len__(self) -> int:
        return len(self.sizes)

    def filled(self, start: int = 0, stop: Optional[int] = None) -> int:
        """How many of batches ``start .. stop - 1`` hold samples."""
        return sum(1 for size in self.sizes[start:stop] if size)


@dataclass(frozen=True)
class ShardPlan:
    """Which samples rank ``shard_id`` of ``num_shards`` reads in each epoch, in batches of ``batch_size``."""

    num_samples: int
    batch_size: int
    shard_id: int = 0
    num_shards: int = 1
    shuffle: bool = True
    drop_last: bool = False
    seed: int = 0
    order_of: Optional[Callable[[int, int], np.ndarray]] = None
    """The source's own shuffled order of an epoch, ``order_of(seed, epoch)`` (a permutation of the samples, the
    same on every rank), where it reads in blocks (Parquet row groups): ranks then take contiguous stretches of it
    (see the module); None: a uniform permutation, ranks interleaved."""

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"the dataset has no samples (num_samples={self.num_samples})")
        check_int("batch_size", self.batch_size, 1)
        check_int("num_shards", self.num_shards, 1)
        if check_int("shard_id", self.shard_id, 0) >= self.num_shards:
            raise ValueError(f"shard_id must be in [0, num_shards={self.num_shards}), got {self.shard_id!r}")
        if self.drop_last and len(self) == 0:
            raise ValueError(f"drop_last=True with {self.num_samples} samples, {self.num_shards} shard(s) and "
                             f"batch_size={self.batch_size} leaves no full batch: lower batch_size or set "
                             f"drop_last=False")

    def __len__(self) -> int:
        """Batches per epoch; the same on every rank."""
        per_step = self.batch_size * self.num_shards
        if self.drop_last:
            return self.num_samples // per_step
        return -(-self.num_samples // per_step)

    def order(self, epoch: int) -> np.ndarray:
        """The whole dataset's order in ``epoch`` (identical on every rank), int64."""
        if not self.shuffle:
            return np.arange(self.num_samples, dtype=np.int64)
        if self.order_of is not None:
            return self.order_of(self.seed, epoch)
        rng = np.random.default_rng(derive_seed(self.seed, epoch, 0x5EED))
        return rng.permutation(self.num_samples).astype(np.int64)

    def batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of sample indices in ``epoch``: ``len(self)`` arrays, the last maybe shorter
        (or empty, see the module's table)."""
        mine = self._mine(self.order(epoch))
        b = self.batch_size
        return [mine[j * b:(j + 1) * b] for j in range(len(self))]

    def _mine(self, order: np.ndarray) -> np.ndarray:
        """This rank's samples of the epoch's ``order``, in order: positions ``k, k + S, ...``; for a source read in
        blocks the same count taken as one contiguous stretch (rank 0's first, then rank 1's, ...)."""
        if self.order_of is None:
            return order[self.shard_id::self.num_shards]
        shards = self.num_shards
        used = len(self) * self.batch_size * shards if self.drop_last else self.num_samples
        counts = [len(range(k, used, shards)) for k in range(self.shard_id + 1)]
        start = sum(counts[:-1])
        return order[start:start + counts[-1]]

    def epoch_plan(self, epoch: int) -> EpochPlan:
        """:meth:`batches` of ``epoch`` as the plan the loader runs (a source whose samples the loader picks)."""
        return EpochPlan.of(self.batches(epoch), epoch, self.batch_size)


class ResumePoint:
    """Where a loaded state resumes its epoch, held until used: the first ``set_epoch`` of that epoch keeps the
    position (so the usual loop, ``set_epoch(e)`` at the top of each epoch, resumes exactly), any other epoch starts
    at 0, and either, or the loop starting, uses it up. The loader's batch and the mask generators' step share it."""

    def __init__(self) -> None:
        self._held: Optional[tuple[int, int]] = None

    def hold(self, epoch: int, position: int) -> None:
        """A state of ``epoch`` at ``position`` was loaded."""
        self._held = (epoch, position)

    def drop(self) -> None:
        """The position was used (a loop or a call started from it)."""
        self._held = None

    def take(self, epoch: int) -> int:
        """Where ``set_epoch(epoch)`` starts: the held position for its own epoch, else 0; used up either way."""
        held, self._held = self._held, None
        return held[1] if held is not None and held[0] == epoch else 0

