"""The shard plan on its own: orders, batch counts and the exactly-once property over many shapes."""

from __future__ import annotations

import numpy as np
import pytest

from dali_multicrop.common.seeds import derive_seed
from dali_multicrop.sources.epochs import ShardPlan


@pytest.mark.parametrize("n", [1, 2, 7, 11, 64, 101])
@pytest.mark.parametrize("shards", [1, 2, 3, 8])
@pytest.mark.parametrize("batch", [1, 3, 16])
def test_exactly_once_and_equal_lengths(n, shards, batch):
    plans = [ShardPlan(n, batch, k, shards, seed=4) for k in range(shards)]
    assert len({len(p) for p in plans}) == 1
    assert len(plans[0]) == -(-n // (shards * batch))
    for epoch in (0, 1):
        batches = [p.batches(epoch) for p in plans]
        seen = np.concatenate([b for rank in batches for b in rank])
        assert np.array_equal(np.sort(seen), np.arange(n))
        for rank in batches:
            assert all(len(b) == batch for b in rank[:-1])
        last = [len(rank[-1]) for rank in batches]
        assert max(last) - min(last) <= 1


@pytest.mark.parametrize("n, shards, batch", [(11, 2, 2), (100, 3, 8), (64, 8, 8)])
def test_drop_last_gives_full_batches_and_skips_at_most_one_step(n, shards, batch):
    plans = [ShardPlan(n, batch, k, shards, drop_last=True) for k in range(shards)]
    seen = np.concatenate([b for p in plans for b in p.batches(0)])
    assert len(seen) == len(set(seen.tolist())) == len(plans[0]) * shards * batch
    assert n - len(seen) < shards * batch
    assert all(len(b) == batch for p in plans for b in p.batches(0))


@pytest.mark.parametrize("n, shards, batch", [(1, 3, 2), (10, 3, 2), (101, 8, 3), (64, 2, 16), (7, 1, 3)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_a_source_read_in_blocks_gives_each_rank_one_stretch_of_its_order(n, shards, batch, drop_last):
    """With the source's own order (blocks of rows), rank k takes the k-th contiguous stretch of it, as many samples
    in each batch as the interleaved rule gives: the same batch counts and sizes, every sample once."""
    def order_of(seed, epoch):
        return np.random.default_rng(seed * 100 + epoch).permutation(n)

    if drop_last and n < shards * batch:  # no full batch: refused as with interleaved ranks
        with pytest.raises(ValueError, match="leaves no full batch"):
            ShardPlan(n, batch, 0, shards, drop_last=True, order_of=order_of)
        return
    for epoch in (0, 1):
        order = order_of(5, epoch)
        blocks = [ShardPlan(n, batch, k, shards, drop_last=drop_last, seed=5, order_of=order_of).batches(epoch)
                  for k in range(shards)]
        interleaved = [ShardPlan(n, batch, k, shards, drop_last=drop_last, seed=5).batches(epoch)
                       for k in range(shards)]
        assert [[len(b) for b in rank] for rank in blocks] == [[len(b) for b in rank] for rank in interleaved]
        taken = np.concatenate([b for rank in blocks for b in rank] + [np.zeros(0, np.int64)])
        assert np.array_equal(taken, order[:len(taken)])  # rank 0's stretch, then rank 1's, ... in the order
        assert len(taken) == (len(blocks[0]) * shards * batch if drop_last else n)


def test_orders_are_keyed_on_seed_and_epoch():
    plan = ShardPlan(50, 4, seed=1)
    assert np.array_equal(plan.order(3), ShardPlan(50, 4, seed=1).order(3))
    assert not np.array_equal(plan.order(3), plan.order(4))
    assert not np.array_equal(plan.order(3), ShardPlan(50, 4, seed=2).order(3))
    assert np.array_equal(ShardPlan(5, 2, shuffle=False).order(9), np.arange(5))


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, 0) == derive_seed(0, 0)
    assert len({derive_seed(s, r) for s in range(20) for r in range(20)}) == 400
    assert all(0 <= derive_seed(s, 7) < 2**31 for s in range(50))
