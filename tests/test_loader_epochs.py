"""Epochs, shards and seeds: every sample once per epoch, reproducible crops, distinct rank streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import DEVICES, coordinate_image, write_folder
from dali_multicrop import DaliMultiCropLoader

CROPS = "1x32,2x16"


@pytest.fixture(scope="module")
def uneven_folder(tmp_path_factory):
    """11 images in 2 classes (6 + 5): uneven for 2 and 3 shards and for batches of 2."""
    img = coordinate_image(64, 80)
    return write_folder(tmp_path_factory.mktemp("uneven"), {"a": [img] * 6, "b": [img] * 5})


def make(folder, device="cpu", **kw):
    kw.setdefault("batch_size", 2)
    kw.setdefault("num_threads", 2)
    return DaliMultiCropLoader(folder, crops=CROPS, device=device, **kw)


def epoch_indices(loader) -> list[list[int]]:
    return [b.indices.cpu().tolist() for b in loader]


@pytest.mark.parametrize("device", DEVICES)
def test_one_epoch_sees_every_index_once(uneven_folder, device):
    loader = make(uneven_folder, device=device)
    assert len(loader) == 6
    for _ in range(2):
        batches = epoch_indices(loader)
        assert len(batches) == len(loader)
        assert [len(b) for b in batches] == [2, 2, 2, 2, 2, 1]
        assert sorted(sum(batches, [])) == list(range(11))


def test_labels_follow_sorted_classes(uneven_folder):
    for batch in make(uneven_folder, batch_size=4):
        assert torch.equal(batch.labels, (batch.indices >= 6).long())


@pytest.mark.parametrize("num_shards", [2, 3])
def test_shards_partition_each_epoch(uneven_folder, num_shards):
    loaders = [make(uneven_folder, shard_id=k, num_shards=num_shards, seed=5) for k in range(num_shards)]
    lengths = {len(ld) for ld in loaders}
    assert len(lengths) == 1, "every rank must step the same number of times"
    for epoch in range(3):
        per_rank = [sum(epoch_indices(ld), []) for ld in loaders]
        everything = sorted(sum(per_rank, []))
        assert everything == list(range(11)), f"epoch {epoch}: {per_rank}"
        sizes = [len(r) for r in per_rank]
        assert max(sizes) - min(sizes) <= 1
    orders = [epoch_indices(make(uneven_folder, shard_id=0, num_shards=num_shards, seed=5)) for _ in range(2)]
    assert orders[0] == orders[1], "the same seed must give the same order"


def test_short_last_step_gives_empty_batch_on_some_ranks(uneven_folder):
    # 11 samples, 3 ranks, batch 4: one step of 12 slots; rank 2 gets 3 samples, ranks 0 and 1 get 4
    loaders = [make(uneven_folder, shard_id=k, num_shards=3, batch_size=4) for k in range(3)]
    assert [len(ld) for ld in loaders] == [1, 1, 1]
    assert sorted(sum((sum(epoch_indices(ld), []) for ld in loaders), [])) == list(range(11))
    # 11 samples, 4 ranks, batch 1: 3 steps; in the last, 3 samples for 4 ranks
    loaders = [make(uneven_folder, shard_id=k, num_shards=4, batch_size=1) for k in range(4)]
    assert [len(ld) for ld in loaders] == [3] * 4
    sizes = [[len(b) for b in epoch_indices(ld)] for ld in loaders]
    assert sizes == [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 0]]
    empty = list(loaders[3])[-1]
    assert empty.batch_size == 0 and [tuple(c.shape) for c in empty.crops] == [(0, 3, 32, 32), (0, 3, 16, 16),
                                                                               (0, 3, 16, 16)]


def test_drop_last_keeps_full_batches(uneven_folder):
    loaders = [make(uneven_folder, shard_id=k, num_shards=2, batch_size=2, drop_last=True) for k in range(2)]
    assert [len(ld) for ld in loaders] == [2, 2]
    seen = [sum(epoch_indices(ld), []) for ld in loaders]
    assert all(len(s) == 4 for s in seen)
    assert len(set(seen[0]) | set(seen[1])) == 8


def test_shuffle_changes_order_per_epoch_and_set_epoch_repeats_it(uneven_folder):
    loader = make(uneven_folder)
    first, second = epoch_indices(loader), epoch_indices(loader)
    assert first != second
    loader.set_epoch(0)
    assert epoch_indices(loader) == first
    assert epoch_indices(loader) == second  # the loop after set_epoch(0) is epoch 1
    assert epoch_indices(make(uneven_folder, shuffle=False)) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10]]


def test_leaving_a_loop_early_then_next_epoch_is_whole(uneven_folder):
    loader = make(uneven_folder)
    for _ in loader:
        break
    assert sorted(sum(epoch_indices(loader), [])) == list(range(11))
    loader.set_epoch(1)
    reference = make(uneven_folder)
    reference.set_epoch(1)
    assert epoch_indices(loader) == epoch_indices(reference)


def _all_outputs(loader, epochs=2):
    out = []
    for _ in range(epochs):
        for b in loader:
            out.append((torch.cat([c.flatten() for c in b.crops]), b.boxes.clone(), b.flipped.clone(),
                        b.indices.clone()))
    return out


def test_same_seed_same_crops_on_cpu(uneven_folder):
    a = _all_outputs(make(uneven_folder, seed=7))
    b = _all_outputs(make(uneven_folder, seed=7, num_threads=1))
    assert len(a) == len(b) == 12
    for x, y in zip(a, b):
        for t, u in zip(x, y):
            assert torch.equal(t, u)
    c = _all_outputs(make(uneven_folder, seed=8))
    assert not all(torch.equal(x[1], y[1]) for x, y in zip(a, c))


def test_a_resumed_epoch_repeats_its_crops(uneven_folder):
    """Draws are keyed on (seed, shard, epoch, batch): a loader that starts at epoch 2 (a run resumed from a
    checkpoint) makes the very crops that a loader running epochs 0, 1, 2 made in its third epoch."""
    running = make(uneven_folder, seed=5)
    for _ in range(2):
        for _ in running:
            pass
    resumed = make(uneven_folder, seed=5)
    resumed.set_epoch(2)
    third = [(torch.cat([c.flatten() for c in b.crops]), b.boxes.clone()) for b in running]
    again = [(torch.cat([c.flatten() for c in b.crops]), b.boxes.clone()) for b in resumed]
    assert len(third) == len(again) == 6
    for (x, bx), (y, by) in zip(third, again):
        assert torch.equal(x, y) and torch.equal(bx, by)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_and_gpu_make_the_same_crops(uneven_folder):
    """The same draws on both devices: identical windows and flips, crops equal up to resampling rounding
    (PNG sources decode identically on both)."""
    cpu = _all_outputs(make(uneven_folder, seed=9, device="cpu"))
    gpu = _all_outputs(make(uneven_folder, seed=9, device="gpu"))
    for (crops_c, boxes_c, flips_c, idx_c), (crops_g, boxes_g, flips_g, idx_g) in zip(cpu, gpu):
        assert torch.equal(idx_c, idx_g.cpu()) and torch.equal(flips_c, flips_g.cpu())
        torch.testing.assert_close(boxes_g.cpu(), boxes_c, atol=1e-6, rtol=0)
        diff = (crops_g.cpu() - crops_c).abs()  # normalised units: one code value is ~0.017
        assert diff.mean() < 0.01 and diff.max() < 0.1, (diff.mean(), diff.max())


def test_ranks_draw_different_crops(tmp_path):
    # every image identical: two ranks given the same images must still draw different windows
    folder = write_folder(tmp_path, {"a": [coordinate_image(64, 80)] * 8})
    boxes = [torch.cat([b.boxes for b in make(folder, shard_id=k, num_shards=2, seed=1)]) for k in range(2)]
    assert boxes[0].shape == boxes[1].shape
    assert not torch.allclose(boxes[0], boxes[1])


def test_torchrun_environment_sets_shard_and_threads(uneven_folder, monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    loader = DaliMultiCropLoader(uneven_folder, crops=CROPS, batch_size=2, device="cpu")
    assert (loader.shard_id, loader.num_shards, loader.device_id) == (2, 3, 1)
    assert loader.num_threads >= 1
    mine = sum(epoch_indices(loader), [])
    order = loader.plan.order(0)
    assert mine == order[2::3].tolist()


def test_batches_are_independent_tensors(uneven_folder):
    batches = list(make(uneven_folder, shuffle=False))
    kept = batches[0].crops[0].clone()
    assert torch.equal(batches[0].crops[0], kept)
    assert not torch.equal(batches[0].crops[0], batches[1].crops[0])
    assert np.array_equal(batches[0].indices.numpy(), [0, 1])


def test_each_epoch_reads_and_augments_its_batches_once(uneven_folder, monkeypatch):
    from dali_multicrop.graph import feed

    served = []
    original = feed.EpochFeed.__call__

    def counting(self, info):
        out = original(self, info)  # raises StopIteration past the end: not counted
        served.append(len(out[0]))  # a row per sample served
        return out

    monkeypatch.setattr(feed.EpochFeed, "__call__", counting)
    loader = make(uneven_folder, batch_size=4)
    for _ in range(3):
        assert sum(len(b) for b in epoch_indices(loader)) == 11
    assert served == [4, 4, 3] * 3, "DALI computed batches that no epoch delivered"
    for _ in loader:  # a loop left early: at most the prefetched batches are computed, not the rest
        break
    assert len(served) <= 9 + 1 + loader.prefetch


def test_an_older_loop_cannot_read_a_newer_epoch(uneven_folder):
    loader = make(uneven_folder)
    first = iter(loader)
    next(first)
    second = iter(loader)
    assert len(next(second).indices) == 2
    with pytest.raises(RuntimeError, match="a newer loop over this loader started"):
        next(first)
    assert sorted(sum(epoch_indices(loader), [])) == list(range(11))


def _batch_values(batch) -> tuple:
    return (batch.indices.clone(), torch.cat([c.flatten() for c in batch.crops]), batch.boxes.clone(),
            batch.flipped.clone())


def test_resume_from_a_state_mid_epoch_repeats_everything(uneven_folder):
    """Stopped after batch 2 of epoch 1, resumed by a fresh loader from the saved state (through JSON): the
    same samples, crops, boxes and flips from batch 3 on, bit for bit, and the epochs after it too."""
    import json

    first = make(uneven_folder, seed=4)
    for _ in first:  # epoch 0
        pass
    rest, state = [], None
    for k, batch in enumerate(first):  # epoch 1
        if k == 2:
            state = json.loads(json.dumps(first.state_dict()))
        elif k > 2:
            rest.append(_batch_values(batch))
    rest += [_batch_values(b) for b in first]  # epoch 2
    assert state["epoch"] == 1 and state["batch"] == 3
    resumed = make(uneven_folder, seed=4)
    resumed.load_state_dict(state)
    again = [_batch_values(b) for b in resumed] + [_batch_values(b) for b in resumed]
    assert len(again) == len(rest) == 3 + 6
    for x, y in zip(rest, again):
        for t, u in zip(x, y):
            assert torch.equal(t, u)


def test_state_between_loops_and_mismatches(uneven_folder):
    loader = make(uneven_folder, seed=4)
    assert loader.state_dict()["epoch"] == 0 and loader.state_dict()["batch"] == 0
    for _ in loader:
        pass
    assert (loader.state_dict()["epoch"], loader.state_dict()["batch"]) == (1, 0)
    state = loader.state_dict()
    with pytest.raises(ValueError, match="saved with seed=4, this loader has seed=5"):
        make(uneven_folder, seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size"):
        make(uneven_folder, seed=4, batch_size=3).load_state_dict(state)
    with pytest.raises(ValueError, match="past the 6 batches"):
        make(uneven_folder, seed=4).load_state_dict({**state, "batch": 7})


RESUME_SCRIPT = """
import json, sys, torch
from dali_multicrop import DaliMultiCropLoader, MultiCropMaskGenerator
folder, state_path, out = sys.argv[1:4]
state = json.load(open(state_path))
loader = DaliMultiCropLoader(folder, crops="1x32,2x16", batch_size=2, num_threads=2, device="cpu", seed=4)
loader.load_state_dict(state["loader"])
gen = MultiCropMaskGenerator("1x32,2x16", num_levels=1, num_targets=2, min_keep=1)
gen.load_state_dict(state["masks"])
rows = []
for batch in loader:
    masks = gen(batch)
    rows.append([batch.indices, torch.cat([c.flatten() for c in batch.crops]), batch.boxes, batch.flipped,
                 masks.context[0], masks.targets[0]])
torch.save(rows, out)
"""


def test_resume_in_a_fresh_process(uneven_folder, tmp_path):
    """The loader's and the masks' states, saved mid-epoch, resume in another process bit for bit."""
    import json
    import subprocess
    import sys

    from dali_multicrop import MultiCropMaskGenerator

    loader = make(uneven_folder, seed=4)
    gen = MultiCropMaskGenerator(CROPS, num_levels=1, num_targets=2, min_keep=1)
    want, state = [], None
    for k, batch in enumerate(loader):
        masks = gen(batch)
        if k == 1:
            state = {"loader": loader.state_dict(), "masks": gen.state_dict()}
        elif k > 1:
            want.append([batch.indices, torch.cat([c.flatten() for c in batch.crops]), batch.boxes, batch.flipped,
                         masks.context[0], masks.targets[0]])
    (tmp_path / "state.json").write_text(json.dumps(state))
    proc = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, str(uneven_folder), str(tmp_path / "state.json"),
                           str(tmp_path / "rest.pt")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = torch.load(tmp_path / "rest.pt")
    assert len(got) == len(want) == 4
    for row_got, row_want in zip(got, want):
        for a, b in zip(row_got, row_want):
            assert torch.equal(a, b)
