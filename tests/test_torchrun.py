"""Exactly-once epochs under real torchrun processes (CPU, gloo, loopback): 2 and 3 ranks on one node, and two
"nodes" of two ranks each."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import coordinate_image, write_folder, write_shards
from dali_multicrop import DaliMultiCropLoader, FileList
from dali_multicrop.sources.epochs import ShardPlan

WORKER = str(Path(__file__).resolve().parent / "torchrun_worker.py")
N = 11  # uneven for 2 and 3 ranks and batches of 2


@pytest.fixture(scope="module")
def uneven(tmp_path_factory):
    img = coordinate_image(64, 80)  # every image the same: different boxes can only come from different draws
    return write_folder(tmp_path_factory.mktemp("uneven"), {"a": [img] * 6, "b": [img] * 5})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only: gloo otherwise picks the host's first interface
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(*procs: subprocess.Popen) -> None:
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]


@pytest.fixture(scope="module")
def uneven_shards(uneven, tmp_path_factory):
    """The same 11 images as tar shards of 4, 4 and 3 samples."""
    files = FileList.from_folder(uneven)
    out = tmp_path_factory.mktemp("uneven_shards")
    write_shards(list(files.files), list(files.labels), out, per_shard=4)
    return str(out / "train-{000..002}.tar")


def _check(ranks: list[dict], world: int, expected=None) -> None:
    """Every sample once per epoch, equal steps, different crops per rank, and each rank's samples in the
    order ``expected(epoch, rank)`` gives (default: the folder source's ShardPlan)."""
    assert [r["shard_id"] for r in ranks] == list(range(world)) and {r["num_shards"] for r in ranks} == {world}
    for epoch in range(2):
        per_rank = [r["epochs"][epoch] for r in ranks]
        everything = sorted(i for r in per_rank for i in r["indices"])
        assert everything == list(range(N)), f"epoch {epoch}: not every sample exactly once: {everything}"
        assert len({r["steps"] for r in per_rank}) == 1, "ranks took different numbers of steps"
        for k, r in enumerate(per_rank):  # the same order as the seed gives anywhere
            if expected is None:
                assert r["indices"] == np.concatenate(ShardPlan(N, 2, shard_id=k, num_shards=world, seed=3)
                                                      .batches(epoch)).tolist()
            else:
                assert r["indices"] == expected(epoch, k)
        assert [i for r in per_rank for i in r["indices"]] != list(range(N)), "the epoch was not shuffled"
        first = [np.array(r["boxes"][0]) for r in per_rank if r["boxes"]]
        assert not any(np.allclose(first[0], other) for other in first[1:]), "ranks drew the same crops"


@pytest.mark.parametrize("world", [2, 3])
def test_one_node(uneven, tmp_path, world):
    out = tmp_path / "ranks.json"
    _wait(_torchrun("--nproc_per_node", str(world), "--master_addr", "127.0.0.1", "--master_port",
                    str(_free_port()), WORKER, str(uneven), str(out)))
    ranks = json.loads(out.read_text())
    _check(ranks, world)
    assert [r["local_rank"] for r in ranks] == list(range(world))


@pytest.mark.parametrize("world", [2, 3])
def test_one_node_tar_shards(uneven_shards, tmp_path, world):
    """The same guarantees for tar shards read by DALI's webdataset reader (samples split by rank in
    contiguous ranges of each epoch's shard order, the reader's padding cut)."""
    out = tmp_path / "ranks.json"
    _wait(_torchrun("--nproc_per_node", str(world), "--master_addr", "127.0.0.1", "--master_port",
                    str(_free_port()), WORKER, uneven_shards, str(out)))

    def expected(epoch, rank):  # the same seed in this process gives each rank's order
        loader = DaliMultiCropLoader(uneven_shards, crops="1x32,2x16", batch_size=2, device="cpu", seed=3,
                                     shard_id=rank, num_shards=world)
        loader.set_epoch(epoch)
        return [i for b in loader for i in b.indices.tolist()]

    _check(json.loads(out.read_text()), world, expected)


def test_two_nodes_of_two(uneven, tmp_path):
    out = tmp_path / "ranks.json"
    port = _free_port()
    common = ["--nnodes", "2", "--nproc_per_node", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint",
              f"127.0.0.1:{port}", "--rdzv-id", "dali-multicrop-test", "--local-addr", "127.0.0.1"]
    nodes = [_torchrun(*common, "--node_rank", str(k), WORKER, str(uneven), str(out)) for k in range(2)]
    _wait(*nodes)
    ranks = json.loads(out.read_text())
    _check(ranks, 4)
    # shards follow the global rank; threads and devices follow the rank within the node
    assert sorted(r["local_rank"] for r in ranks) == [0, 0, 1, 1]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert {r["threads"] for r in ranks} == {max(1, cores // 2)}


@pytest.fixture(scope="module")
def uneven_parquet(uneven, tmp_path_factory):
    """The same 11 images' file bytes in a Parquet file (Hugging Face's image structs) of row groups of 3 rows."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    files = FileList.from_folder(uneven)
    path = tmp_path_factory.mktemp("uneven_parquet") / "train.parquet"
    images = [{"bytes": Path(f).read_bytes(), "path": Path(f).name} for f in files.files]
    pq.write_table(pa.table({"image": images, "label": list(files.labels)}), path, row_group_size=3)
    return str(path)


def test_one_node_parquet(uneven_parquet, tmp_path):
    """The same guarantees for a Parquet source (its rows shuffled by row groups, then within windows)."""
    from dali_multicrop.sources import ParquetTable

    out = tmp_path / "ranks.json"
    _wait(_torchrun("--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                    WORKER, f"parquet:{uneven_parquet}", str(out)))
    order = ParquetTable(uneven_parquet).epoch_order

    def expected(epoch, rank):
        return np.concatenate(ShardPlan(N, 2, shard_id=rank, num_shards=2, seed=3, order_of=order)
                              .batches(epoch)).tolist()

    _check(json.loads(out.read_text()), 2, expected)
