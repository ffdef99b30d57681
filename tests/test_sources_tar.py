"""WebDataset tar shards through DALI's webdataset reader: the same crops as the folder, exactly-once epochs over
ranks, resume, index files, and clear errors for bad shards."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import write_shards
from dali_multicrop import DaliMultiCropLoader, FileList, TarShards
from dali_multicrop.cli import app
from dali_multicrop.sources.epochs import ShardPlan
from dali_multicrop.sources.tar import expand_shards
from dali_multicrop.sources.tar_index import index_path_for

CROPS = "1x32,2x16"


@pytest.fixture(scope="module")
def shards(coord_folder, tmp_path_factory) -> Path:
    """The 12 coordinate images in shards of 5, 5 and 2 samples (uneven), in the folder's order."""
    files = FileList.from_folder(coord_folder)
    out = tmp_path_factory.mktemp("shards")
    write_shards(list(files.files), list(files.labels), out, per_shard=5)
    return out


def _pattern(shards: Path) -> str:
    return str(shards / "train-{000..002}.tar")


def test_brace_patterns_expand_in_order(tmp_path):
    assert expand_shards("a/t-{000..002}.tar") == ["a/t-000.tar", "a/t-001.tar", "a/t-002.tar"]
    assert expand_shards(["x.tar", "y-{a,b}.tar"]) == ["x.tar", "y-a.tar", "y-b.tar"]
    assert index_path_for("s3://b/p/t-000.tar") == "s3://b/p/t-000.idx"
    with pytest.raises(ValueError, match="unbalanced braces"):
        expand_shards("t-{000..002.tar")


def test_same_crops_labels_and_indices_as_the_folder(coord_folder, shards):
    """One rank, no shuffle: the reader reads the samples in stored order, so every batch (the short last one
    too) equals the folder loader's, bit for bit."""
    common = dict(crops=CROPS, batch_size=5, device="cpu", shuffle=False, seed=4)
    tar = DaliMultiCropLoader(_pattern(shards), **common)
    folder = DaliMultiCropLoader(str(coord_folder), **common)
    assert isinstance(tar.source, TarShards) and len(tar) == len(folder) == 3
    for a, b in zip(tar, folder):
        assert a.indices.tolist() == b.indices.tolist()
        assert a.labels.tolist() == b.labels.tolist()
        assert all(torch.equal(x, y) for x, y in zip(a.crops, b.crops))
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.flipped, b.flipped)


@pytest.mark.parametrize("world,batch,drop_last", [(3, 2, False), (2, 4, False), (3, 3, False), (2, 2, True),
                                                   (5, 2, False), (5, 2, True), (7, 2, False)])
def test_every_sample_once_per_epoch_over_ranks(shards, world, batch, drop_last):
    """DALI splits the epoch's samples into contiguous ranges per rank (12 samples over 5 ranks: 2, 2, 3, 2, 3;
    over 7: 1 or 2) and pads them; DALI's iterator, told the reader's name, cuts the padding: each sample once per
    epoch over all ranks, the same number of batches everywhere, short or empty last batches only at the end, each
    of the size the epoch's plan says; drop_last keeps full batches only."""
    loaders = [DaliMultiCropLoader(_pattern(shards), crops=CROPS, batch_size=batch, device="cpu", seed=7,
                                   shard_id=k, num_shards=world, drop_last=drop_last) for k in range(world)]
    orders = []
    for epoch in range(2):
        seen, steps = [], []
        for loader in loaders:
            sizes = []
            for b in loader:
                sizes.append(len(b.indices))
                seen += b.indices.tolist()
                assert b.labels.tolist() == [_coord_label(i) for i in b.indices.tolist()]
            steps.append(len(sizes))
            assert sizes == list(loader.epoch_plan(epoch).sizes)
            assert sizes == sorted(sizes, reverse=True) and (not drop_last or set(sizes) == {batch})
        assert len(set(steps)) == 1 and steps[0] == len(loaders[0])
        if drop_last:
            assert len(seen) == len(set(seen)) == steps[0] * batch * world
        else:
            assert sorted(seen) == list(range(12)), f"epoch {epoch}: {sorted(seen)}"
        orders.append(seen)
    assert orders[0] != orders[1], "the epochs had the same order"


def _coord_label(index: int) -> int:
    """The coordinate folder's label of sample ``index`` (3 classes of 4, in order)."""
    return index // 4


def test_same_seed_same_order_and_crops_other_seed_not(shards):
    def epoch(seed):
        loader = DaliMultiCropLoader(_pattern(shards), crops=CROPS, batch_size=4, device="cpu", seed=seed)
        return [(b.indices.tolist(), b.boxes) for b in loader]

    a, b, c = epoch(1), epoch(1), epoch(2)
    assert [x[0] for x in a] == [x[0] for x in b] and all(torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert [x[0] for x in a] != [x[0] for x in c]


def test_resume_mid_epoch_and_set_epoch(shards):
    """A state taken after batch 0 resumes at batch 1 in a new loader with the same samples and crops; a tar
    epoch is replayed up to there (its reader order is only known by reading)."""
    make = lambda: DaliMultiCropLoader(_pattern(shards), crops=CROPS, batch_size=3, device="cpu", seed=5)
    loader = make()
    loader.set_epoch(2)
    full = [(b.indices.tolist(), b.crops[1].clone()) for b in loader]
    loader.set_epoch(2)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    assert (state["epoch"], state["batch"]) == (2, 1)
    other = make()
    other.load_state_dict(state)
    rest = [(b.indices.tolist(), b.crops[1]) for b in other]
    assert [r[0] for r in rest] == [f[0] for f in full[1:]]
    assert all(torch.equal(r[1], f[1]) for r, f in zip(rest, full[1:]))


def test_unlabelled_shards_have_label_zero(coord_folder, tmp_path):
    files = FileList.from_folder(coord_folder)
    write_shards(list(files.files), list(files.labels), tmp_path, per_shard=6, labelled=False)
    loader = DaliMultiCropLoader([str(tmp_path / "train-000.tar"), str(tmp_path / "train-001.tar")], crops=CROPS,
                                 batch_size=6, device="cpu")
    assert not loader.source.labelled
    batches = list(loader)
    assert sorted(i for b in batches for i in b.indices.tolist()) == list(range(12))
    assert all(b.labels.tolist() == [0] * len(b.labels) for b in batches)


def test_index_shards_command_writes_dali_index_files(shards, tmp_path):
    copies = []
    for p in sorted(shards.glob("*.tar")):
        copy = tmp_path / p.name
        copy.write_bytes(p.read_bytes())
        copies.append(copy)
    result = CliRunner().invoke(app, ["index-shards", str(tmp_path / "train-{000..002}.tar")])
    assert result.exit_code == 0, result.output
    idx = tmp_path / "train-000.idx"
    lines = idx.read_text().splitlines()
    assert lines[0] == "v1.2 5" and lines[1].split()[0::4] == ["png", "cls"]
    with tarfile.open(copies[0]) as tar:  # offsets and sizes are the members' data as tar reads them
        member = tar.getmember(lines[1].split()[3])
        assert (member.offset_data, member.size) == (int(lines[1].split()[1]), int(lines[1].split()[2]))
    source = TarShards(str(tmp_path / "train-{000..002}.tar"))
    assert source.index_paths[0] == str(idx) and len(source) == 12
    again = CliRunner().invoke(app, ["index-shards", str(tmp_path / "train-000.tar")])
    assert again.exit_code == 0 and "kept" in again.output


def _tar_with(path: Path, members: list[tuple[str, bytes]]) -> Path:
    import io

    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_bad_shards_are_clear_errors(shards, tmp_path):
    with pytest.raises(ValueError, match=r"tar shard '.*train-003.tar' does not exist \(and 6 more\)"):
        DaliMultiCropLoader(str(shards / "train-{000..009}.tar"), crops=CROPS, device="cpu")
    with pytest.raises(ValueError, match="the same tar shard is listed twice"):
        TarShards([str(shards / "train-001.tar"), str(shards / "train-{000..001}.tar")])
    whole = (shards / "train-000.tar").read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ValueError, match=r"tar shard '.*cut.tar' is truncated|cut.tar' cannot be read"):
        TarShards(str(cut))
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(3000))
    with pytest.raises(ValueError, match=r"junk.tar' cannot be read as a tar archive"):
        TarShards(str(junk))
    png = (shards / "train-002.tar")
    with tarfile.open(png) as tar:
        image = tar.extractfile(tar.getmembers()[0]).read()
    no_image = _tar_with(tmp_path / "noimg.tar", [("a.png", image), ("a.cls", b"1"), ("b.txt", b"x"), ("b.cls", b"2")])
    with pytest.raises(ValueError, match=r"sample 'b' has no image member \(found cls, txt"):
        TarShards(str(no_image))
    mixed = _tar_with(tmp_path / "mixed.tar", [("a.png", image), ("a.cls", b"1"), ("b.png", image)])
    with pytest.raises(ValueError, match=r"sample 1 has no 'cls' member while other samples have one"):
        TarShards(str(mixed))
    word = _tar_with(tmp_path / "word.tar", [("a.png", image), ("a.cls", b"cat")])
    with pytest.raises(ValueError, match=r"label \('cls' member\) of tar sample .*word.tar.* is b'cat'"):
        list(DaliMultiCropLoader(str(word), crops=CROPS, batch_size=1, device="cpu"))
    stale = tmp_path / "stale.idx"
    stale.write_text("v1.2 3\npng 512 10 a.png\n")
    with pytest.raises(ValueError, match=r"announces 3 samples but lists 1"):
        TarShards(str(_tar_with(tmp_path / "stale.tar", [("a.png", image)])))
    old = tmp_path / "old.idx"
    old.write_text("v1.0 1\npng 512 10\n")
    with pytest.raises(ValueError, match=r"not a v1.2 webdataset index .*index-shards"):
        TarShards(str(_tar_with(tmp_path / "old.tar", [("a.png", image)])))


def test_from_config_reads_tar_shards(shards):
    config = {"data": {"path": _pattern(shards), "preset": CROPS}, "loader": {"batch_size": 4, "device": "cpu"}}
    loader = DaliMultiCropLoader.from_config(config)
    assert isinstance(loader.source, TarShards) and len(loader.source) == 12
    assert sorted(i for b in loader for i in b.indices.tolist()) == list(range(12))


def test_gpu_graph_over_tar_shards_is_defined_here(shards):
    """The tar head on the GPU graph (reader and source info on the host, decoder "mixed") passes DALI's
    definition step without a GPU; tested on a lent GPU by the gpu tests."""
    from collections import Counter

    from dali_multicrop.graph.feed import EpochFeed
    from dali_multicrop.graph.builder import GraphSettings, build_pipeline
    from dali_multicrop.recipes.presets import parse_crops

    source, spec = TarShards(_pattern(shards)), parse_crops(CROPS)
    reader = source.epoch_plan(ShardPlan(len(source), 2), 0).reader
    pipe = build_pipeline(EpochFeed(source, spec), spec, GraphSettings(device="gpu", batch_size=2, num_threads=1,
                                                                        seed=0), reader=reader).pipeline
    pipe._build_graph()
    counts = Counter(op._op.device for op in pipe._ops)
    assert counts["mixed"] == 1 and counts["gpu"] > 0
    # the windows come from the shards' encoded headers: no host step waits for the GPU decoder
    assert [op._op.schema_name for op in pipe._ops if op._op.device == "cpu"
            and any(node.device == "gpu" for node in op.inputs)] == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tar_shards_on_the_gpu_give_every_sample_once(shards):
    loader = DaliMultiCropLoader(_pattern(shards), crops=CROPS, batch_size=5, device="gpu")
    batches = list(loader)
    assert all(b.crops[0].is_cuda and b.indices.is_cuda for b in batches)
    assert sorted(i for b in batches for i in b.indices.tolist()) == list(range(12))


def test_skip_reads_the_members_itself_and_replaces_bad_samples(coord_folder, tmp_path):
    """on_error="skip": the loader reads the members itself (DALI's reader cannot leave one out), so a sample that
    is not an image, cut short or corrupt is replaced in its batch (index -1), warned once, named by its member;
    every good sample comes once per epoch over ranks, with the same crops as from the folder."""
    import warnings

    from bad_images import BAD
    from dali_multicrop.badsamples.policy import BadImageWarning

    files = FileList.from_folder(coord_folder)
    good = [Path(f).read_bytes() for f in files.files]
    members = []
    for k, data in enumerate(good):
        members += [(f"s{k:02d}.png", data), (f"s{k:02d}.cls", str(files.labels[k]).encode())]
    members += [("s12.jpg", b"<html>404</html>"), ("s12.cls", b"0"), ("s13.jpg", BAD["corrupt.jpg"][0]()),
                ("s13.cls", b"1"), ("s14.png", good[0][:len(good[0]) // 2]), ("s14.cls", b"2")]
    shard = str(_tar_with(tmp_path / "train-000.tar", members))
    common = dict(crops=CROPS, batch_size=4, device="cpu", seed=3, on_error="skip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranks = [DaliMultiCropLoader(shard, shard_id=k, num_shards=2, **common) for k in range(2)]
        epochs = [[i for loader in ranks for b in loader for i in b.indices.tolist()] for _ in range(2)]
    for seen in epochs:
        assert sorted(seen) == [-1] * 3 + list(range(12))
    skipped = {**ranks[0].skipped, **ranks[1].skipped}
    assert sorted(skipped) == [f"{shard}:s12.jpg", f"{shard}:s13.jpg", f"{shard}:s14.png"]
    assert "holds HTML" in skipped[f"{shard}:s12.jpg"] and "truncated PNG" in skipped[f"{shard}:s14.png"]
    assert "DALI cannot decode (corrupt?)" in skipped[f"{shard}:s13.jpg"]
    # once per sample and loader (each rank learns of a bad sample when it first meets it)
    assert sum(issubclass(w.category, BadImageWarning) for w in caught) == sum(len(r.skipped) for r in ranks)
    # the good samples' crops are the folder's: the same images, the same draws
    folder = DaliMultiCropLoader(str(coord_folder), crops=CROPS, batch_size=4, device="cpu", seed=3, shuffle=False)
    clean = DaliMultiCropLoader(_tar_with(tmp_path / "clean.tar", members[:24]).as_posix(), crops=CROPS,
                                batch_size=4, device="cpu", seed=3, shuffle=False, on_error="skip")
    for a, b in zip(clean, folder):
        assert a.indices.tolist() == b.indices.tolist() and a.labels.tolist() == b.labels.tolist()
        assert all(torch.equal(x, y) for x, y in zip(a.crops, b.crops))
