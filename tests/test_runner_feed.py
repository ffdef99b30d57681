"""The feed's and the runner's arithmetic, each on its own: which batch an iteration serves, the draws' keys, the
reader's padding, the look-ahead window, a resumed epoch's replay, a restart's offset, and a runner rebuilt when a
curriculum changes the crops."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import coordinate_image, write_folder, write_shards
from dali_multicrop import ArraySource, Curriculum, DaliMultiCropLoader, FileList, Ramp, TarShards
from dali_multicrop.step.draws import batch_keys, draw_batch, epoch_key
from dali_multicrop.sources.epochs import EpochPlan, ShardPlan
from dali_multicrop.graph.feed import EpochFeed
from dali_multicrop.graph.builder import GraphSettings
from dali_multicrop.recipes.presets import parse_crops
from dali_multicrop.loader.runner import GraphRunner

CROPS = "1x32,2x16"


def _arrays(n: int = 10) -> ArraySource:
    images = np.stack([coordinate_image(24, 32)] * n)
    return ArraySource(images, np.arange(n) % 3)


def _call(feed: EpochFeed, iteration: int) -> dict[str, np.ndarray]:
    return dict(zip(feed.names, feed(SimpleNamespace(iteration=iteration))))


def test_feed_iteration_k_serves_batch_first_plus_k_with_its_own_draws():
    """A feed started at batch ``first`` serves batch ``first + k`` at DALI's iteration ``k``, its indices and
    labels, with the draws keyed on (seed, shard, epoch, first + k); after the last batch, StopIteration."""
    source, spec = _arrays(), parse_crops(CROPS)
    plan = EpochPlan.of([np.array([3, 1, 4]), np.array([0, 5, 9]), np.array([2, 6, 7]), np.array([8])], epoch=4)
    feed = EpochFeed(source, spec, seed=11, shard=2)
    feed.start(plan, first=1)
    assert len(feed) == 3
    for k in range(3):
        out, side = _call(feed, k), feed.side(k)
        assert side.indices.tolist() == plan.indices[1 + k].tolist()
        assert side.labels.tolist() == [source.labels[i] for i in plan.indices[1 + k]]
        expected = draw_batch(spec, batch_keys(epoch_key(11, 2, 4), 1 + k, len(plan.indices[1 + k])))
        assert np.array_equal(side.flips, expected.flips) and set(out) == {"images", "keys"}
        assert out["keys"].dtype == np.uint8 and out["keys"].shape == (len(plan.indices[1 + k]), 8)
        assert np.array_equal(out["keys"].copy().view("<u8")[:, 0], expected.keys)
        with pytest.raises(KeyError):  # taken once
            feed.side(k)
    with pytest.raises(StopIteration):
        feed(SimpleNamespace(iteration=3))


def test_a_file_feed_hands_each_path_and_its_key_in_one_row(tmp_path):
    """A file list's feed has one output: per sample its path's bytes, NUL-padded, a NUL, then its key's 8 bytes
    little-endian; the crop step's reader of the key (``key_of``) gives the key back, and DALI's file reader reads
    the right file from such rows, the longest path's included."""
    from dali_multicrop.step.step_kernel import key_of
    from dali_multicrop.graph.feed import keyed_paths
    from nvidia.dali import fn, pipeline_def, types

    names = ["a.png", "much-longer-name.png", "bb.png"]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(bytes([i]) * (10 + i))
    files = FileList([str(tmp_path / n) for n in names], [0, 1, 2])
    feed = EpochFeed(files, parse_crops(CROPS), seed=4)
    assert feed.names == ["keyed_paths"]
    feed.start(EpochPlan.of([np.array([1, 2, 0])], epoch=0))
    rows = _call(feed, 0)["keyed_paths"]
    keys = batch_keys(epoch_key(4, 0, 0), 0, 3)
    width = files.path_bytes.shape[1]
    assert rows.dtype == np.uint8 and rows.shape == (3, width + 9)
    assert np.array_equal(rows[:, :width], files.path_bytes[[1, 2, 0]]) and not rows[:, width].any()
    assert np.array_equal(rows[:, width + 1:].copy().view("<u8")[:, 0], keys)
    assert [key_of(row) for row in rows] == keys.tolist()
    assert key_of(np.array([9, 0x80, 0, 0, 0, 0, 0, 0, 1], dtype=np.uint8)) == 0x80 | 1 << 56  # last 8, little-endian
    extreme = np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)
    packed = keyed_paths(files.path_bytes[[0, 0, 1, 1]], extreme)
    assert np.array_equal(packed[:, width + 1:].copy().view("<u8")[:, 0], extreme)

    @pipeline_def(batch_size=3, num_threads=1, device_id=None, exec_dynamic=True)
    def read():
        return fn.io.file.read(fn.external_source(source=lambda: rows, batch=True, dtype=types.UINT8))

    pipe = read()
    pipe.build()
    contents = [bytes(np.array(sample)) for sample in pipe.run()[0]]
    assert contents == [bytes([1]) * 11, bytes([2]) * 12, bytes([0]) * 10]


def test_feed_skips_the_empty_batches_that_end_an_epoch_and_stops_early_when_told():
    source, spec = _arrays(), parse_crops(CROPS)
    plan = EpochPlan.of([np.array([0, 1]), np.array([2]), np.array([], dtype=np.int64)])
    feed = EpochFeed(source, spec)
    feed.start(plan)
    assert len(feed) == 2  # the empty batch is the runner's to yield, not DALI's to compute
    _call(feed, 0)
    feed.stop()
    with pytest.raises(StopIteration):
        feed(SimpleNamespace(iteration=1))


def _tar_source(coord_folder: Path, folder: Path) -> TarShards:
    files = FileList.from_folder(coord_folder)
    write_shards(list(files.files), list(files.labels), folder, per_shard=5)
    return TarShards(str(folder / "train-{000..002}.tar"))


def test_feed_of_a_reader_plan_pads_a_short_batch_with_its_last_samples_draws(coord_folder, tmp_path):
    """A reader picks the samples and pads the rank's last batch to the batch size: the feed's draws of a short
    batch are the draws of that many samples (as from a file source), then the last one repeated."""
    source, spec = _tar_source(coord_folder, tmp_path / "s"), parse_crops(CROPS)
    plan = source.epoch_plan(ShardPlan(len(source), 4, shard_id=1, num_shards=2, seed=5), 1)
    assert plan.sizes == (4, 2) and plan.batch_size == 4 and plan.indices is None
    feed = EpochFeed(source, spec, seed=5, shard=1)
    assert "indices" not in feed.names  # the reader's samples carry them
    feed.start(plan)
    out = _call(feed, 1)
    expected = draw_batch(spec, batch_keys(epoch_key(5, 1, 1), 1, 2))
    assert set(out) == {"keys"} and out["keys"].shape == (4, 8)
    assert out["keys"].copy().view("<u8")[:, 0].tolist() == expected.keys.tolist() + [expected.keys[1]] * 2
    side = feed.side(1)  # the batch's own size, unpadded; a reader's samples carry their indices and labels
    assert side.indices is None and side.labels is None and np.array_equal(side.flips, expected.flips)


def test_feed_in_flight_is_the_batch_asked_for_and_ahead_more():
    feed = EpochFeed(_arrays(), parse_crops(CROPS), ahead=2)
    batches = [np.array([i]) for i in range(6)]
    feed.start(EpochPlan.of(batches), first=1)
    assert [b.tolist() for b in feed.in_flight(0)] == [[1], [2], [3]]
    assert [b.tolist() for b in feed.in_flight(3)] == [[4], [5]]  # the epoch's end cuts the window


def test_plan_counts_the_batches_a_resumed_reader_replays():
    plan = EpochPlan(epoch=0, sizes=(4, 4, 2, 0, 0), reader=object(), batch_size=4)
    assert [plan.filled(0, first) for first in range(6)] == [0, 1, 2, 3, 3, 3]
    assert plan.filled(3) == 0 and plan.filled(2) == 1 and len(plan) == 5


def _settings(batch: int) -> GraphSettings:
    return GraphSettings(device="cpu", batch_size=batch, num_threads=1, seed=0, prefetch=1)


def test_runner_resumes_an_indexed_epoch_at_its_batch_without_replaying(tmp_path):
    """A runner given a plan and ``first`` yields the plan's batches from ``first`` on (the feed starts there: no
    batch is computed twice), the same crops as the whole epoch's; empty batches at the end stay empty."""
    source = FileList.from_folder(write_folder(tmp_path / "d", {"a": [coordinate_image(40, 48)] * 7}))
    spec, shard_plan = parse_crops(CROPS), ShardPlan(7, 2, shard_id=0, num_shards=2, seed=3)
    plan = shard_plan.epoch_plan(1)
    assert plan.sizes == (2, 2)
    runner = GraphRunner(source, spec, _settings(2), shard_plan)
    whole = [(b.indices.tolist(), b.crops[1].clone()) for b in runner.run_epoch(plan)]
    calls = []
    original = runner._feed._serve
    runner._feed._serve = lambda iteration: calls.append(iteration) or original(iteration)
    rest = [(b.indices.tolist(), b.crops[1]) for b in runner.run_epoch(plan, first=1)]
    assert [r[0] for r in rest] == [w[0] for w in whole[1:]] and torch.equal(rest[0][1], whole[1][1])
    assert calls == [0]  # one batch computed: the one yielded
    empty = EpochPlan.of([np.array([0, 1]), np.array([], dtype=np.int64)], epoch=1, batch_size=2)
    sizes = [b.batch_size for b in runner.run_epoch(empty)]
    assert sizes == [2, 0]
    runner.close()


def test_runner_replays_a_resumed_reader_epoch_and_yields_the_rest(coord_folder, tmp_path):
    """A reader's order is only known by reading: a runner resumed at batch ``first`` of a tar epoch computes the
    batches before it again, yields none of them, and yields what a whole epoch yields from there."""
    source = _tar_source(coord_folder, tmp_path / "s")
    spec, shard_plan = parse_crops(CROPS), ShardPlan(len(source), 3, seed=9)
    plan = source.epoch_plan(shard_plan, 0)
    assert plan.sizes == (3, 3, 3, 3) and plan.indices is None
    runner = GraphRunner(source, spec, _settings(3), shard_plan)
    whole = [(b.indices.tolist(), b.boxes.clone()) for b in runner.run_epoch(plan)]
    rest = [(b.indices.tolist(), b.boxes) for b in runner.run_epoch(plan, first=2)]
    assert [r[0] for r in rest] == [w[0] for w in whole[2:]]
    assert all(torch.equal(r[1], w[1]) for r, w in zip(rest, whole[2:]))
    assert sorted(i for w in whole for i in w[0]) == list(range(12))
    runner.close()


def test_a_curriculum_rebuilds_the_runner_and_closes_the_old_one(tmp_path):
    """A new crop count is a new graph: the loader's runner is replaced (the old one's pipeline freed) when the
    curriculum changes the crops, and kept while they stay."""
    folder = write_folder(tmp_path / "d", {"a": [coordinate_image(40, 48)] * 4})
    curriculum = Curriculum(local_crops=Ramp(start=2, end=0, epochs=2))
    loader = DaliMultiCropLoader(folder, crops="1x32,2x16", batch_size=2, device="cpu", num_threads=1,
                                 curriculum=curriculum)
    runners, counts = [], []
    for _ in range(3):
        batch = next(iter(loader))
        runners.append(loader._runner)
        counts.append(len(batch.crops))
    assert counts[0] > counts[-1]
    assert runners[0] is not runners[-1] and runners[0]._iterator is None  # the old graph closed
    assert runners[0].spec != runners[-1].spec
    loader.close()


def test_runner_restarts_at_the_failed_batch_with_the_same_draws(tmp_path):
    """on_error="skip" without validation: DALI fails on a batch holding a file that is not an image; the runner
    finds it, replaces it in its batch and restarts the graph at the batch that failed (the feed's offset): every
    batch's boxes and flips are those of a run over good files (the draws keyed on the batch number, the images of
    one size), and only the bad file's slot differs (index -1)."""
    from dali_multicrop.badsamples.policy import BadImageWarning, BadSamples

    image = coordinate_image(40, 48)
    good = FileList.from_folder(write_folder(tmp_path / "good", {"a": [image] * 8}))
    broken = write_folder(tmp_path / "broken", {"a": [image] * 8})
    (broken / "a" / "005.png").write_bytes(b"not an image at all")
    bad = FileList.from_folder(broken)
    spec, shard_plan = parse_crops(CROPS), ShardPlan(8, 2, shuffle=False, seed=4)
    plan = shard_plan.epoch_plan(0)

    def run(source):
        runner = GraphRunner(source, spec, _settings(2), shard_plan, bad=BadSamples(source, on_error="skip"))
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", BadImageWarning)
            batches = [(b.indices.tolist(), b.boxes.clone(), b.flipped.clone()) for b in runner.run_epoch(plan)]
        runner.close()
        return batches, runner.bad.skipped, len(said)

    clean, none, quiet = run(good)
    fixed, skipped, warned = run(bad)
    assert not none and not quiet and list(skipped) == [str(broken / "a" / "005.png")] and warned == 1
    assert [i for i, _, _ in fixed] == [[0, 1], [2, 3], [4, -1], [6, 7]] == \
        [[-1 if i == 5 else i for i in c] for c, _, _ in clean]
    assert all(torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]) for a, b in zip(fixed, clean))

