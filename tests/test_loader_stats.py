"""``loader.stats``: the loader's side of the training loop, counted always (issue #30, item 3)."""

from __future__ import annotations

import time

from dali_multicrop import DaliMultiCropLoader
from dali_multicrop.sample_data import ensure_tiny_data
from dali_multicrop.loader.stats import LoaderStats


def test_stats_tell_the_loops_step_from_its_wait_for_data():
    loader = DaliMultiCropLoader(ensure_tiny_data(40), crops="2x32,4x16", batch_size=8, device="cpu", seed=1)
    empty = loader.stats
    assert isinstance(empty, LoaderStats) and empty.total_batches == 0 and empty.wait_share == 0.0
    for batch in loader:  # epoch 0: a slow training step (50 ms): the loader keeps up, the loop barely waits
        time.sleep(0.05)
    slow = loader.stats
    assert (slow.epoch, slow.epoch_batches, slow.epoch_images) == (0, 5, 40)
    assert slow.epoch_step_s >= 5 * 0.05 and slow.first_batch_s > 0
    assert slow.wait_share < 0.5 and slow.images_per_s < 32 / (4 * 0.05)
    with loader:
        for batch in loader:  # epoch 1: no step at all: the loop only waits
            pass
    fast = loader.stats
    assert (fast.epoch, fast.epoch_batches, fast.total_batches, fast.total_images) == (1, 5, 10, 80)
    assert fast.epoch_step_s < slow.epoch_step_s and fast.wait_share > slow.wait_share
    assert fast.total_wait_s >= fast.epoch_wait_s + fast.first_batch_s + slow.epoch_wait_s
    text = repr(fast)
    assert text.startswith("LoaderStats(epoch 1: 5 batches, 40 images,") and "waiting for data" in text
    assert "since start: 10 batches, 80 images" in text
