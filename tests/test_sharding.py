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
