"""Object storage: folders, file lists and tar shards under ``s3://`` read through DALI's own S3 support, against
a real local S3 server (moto) on 127.0.0.1; the same crops as from the local copy; clear errors for a missing
bucket, a missing object and an unreachable endpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import write_shards
from dali_multicrop import DaliMultiCropLoader, FileList, TarShards

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

CROPS = "1x32,2x16"
BUCKET = "training-data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(coord_folder, tmp_path_factory):
    """A moto S3 server on loopback holding the coordinate folder (``folder/``) and its tar shards
    (``shards/``); the AWS variables point at it while the module's tests run."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                                            "AWS_ENDPOINT_URL")}
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint)
    try:
        client = boto3.client("s3")
        for _ in range(100):  # the server starts in about a second
            try:
                client.list_buckets()
                break
            except Exception:
                time.sleep(0.1)
        client.create_bucket(Bucket=BUCKET)
        for path in sorted(coord_folder.rglob("*.png")):
            client.upload_file(str(path), BUCKET, f"folder/{path.relative_to(coord_folder)}")
        files = FileList.from_folder(coord_folder)
        local_shards = tmp_path_factory.mktemp("s3_shards")
        for path in write_shards(list(files.files), list(files.labels), local_shards, per_shard=5):
            client.upload_file(str(path), BUCKET, f"shards/{path.name}")
        yield {"client": client, "folder": coord_folder, "shards": local_shards, "endpoint": endpoint}
    finally:
        server.terminate()
        server.wait(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _same_batches(a: DaliMultiCropLoader, b: DaliMultiCropLoader) -> None:
    pairs = list(zip(a, b))
    assert len(pairs) == len(a) == len(b)
    for x, y in pairs:
        assert x.indices.tolist() == y.indices.tolist() and x.labels.tolist() == y.labels.tolist()
        assert all(torch.equal(p, q) for p, q in zip(x.crops, y.crops)) and torch.equal(x.boxes, y.boxes)


def test_folder_on_s3_gives_the_local_folders_crops(s3):
    common = dict(crops=CROPS, batch_size=5, device="cpu", seed=2)
    remote = DaliMultiCropLoader(f"s3://{BUCKET}/folder", **common)
    assert remote.source.classes == ("cat", "dog", "emu") and remote.source.files[0].startswith("s3://")
    _same_batches(remote, DaliMultiCropLoader(str(s3["folder"]), **common))


def test_file_list_on_s3(s3):
    local = FileList.from_folder(s3["folder"])
    pairs = [(f"s3://{BUCKET}/folder/{Path(f).relative_to(s3['folder'])}", label)
             for f, label in zip(local.files, local.labels)]
    _same_batches(DaliMultiCropLoader(pairs, crops=CROPS, batch_size=4, device="cpu"),
                  DaliMultiCropLoader(local, crops=CROPS, batch_size=4, device="cpu"))


def test_file_list_on_s3_with_paths_of_different_lengths(s3):
    """The feed pads the paths of a batch to the longest and puts each sample's key after them (feed.keyed_paths):
    DALI's S3 reader opens each object by its path alone."""
    local = FileList.from_folder(s3["folder"])
    names = [f"uneven/{'x' * (i + 1)}.png" for i in range(len(local))]
    for path, name in zip(local.files, names):
        s3["client"].upload_file(path, BUCKET, name)
    pairs = [(f"s3://{BUCKET}/{name}", label) for name, label in zip(names, local.labels)]
    _same_batches(DaliMultiCropLoader(pairs, crops=CROPS, batch_size=4, device="cpu", seed=1),
                  DaliMultiCropLoader(local, crops=CROPS, batch_size=4, device="cpu", seed=1))


def test_tar_shards_on_s3_with_and_without_index_files(s3, tmp_path):
    pattern = f"s3://{BUCKET}/shards/train-{{000..002}}.tar"
    common = dict(crops=CROPS, batch_size=4, device="cpu", seed=9, num_shards=2, shard_id=1)
    local = lambda: DaliMultiCropLoader(str(s3["shards"] / "train-{000..002}.tar"), **common)
    remote = DaliMultiCropLoader(pattern, **common)  # indexed now, streaming each shard once
    assert remote.source.index_paths[0].startswith(os.environ["DALI_MULTICROP_CACHE"])
    _same_batches(remote, local())
    from typer.testing import CliRunner
    from dali_multicrop.cli import app

    result = CliRunner().invoke(app, ["index-shards", pattern])
    assert result.exit_code == 0, result.output
    indexed = TarShards(pattern)
    assert indexed.index_paths == tuple(f"s3://{BUCKET}/shards/train-{k:03d}.idx" for k in range(3))
    _same_batches(DaliMultiCropLoader(indexed, **common), local())


def test_missing_bucket_object_and_unreachable_endpoint_are_clear_errors(s3, monkeypatch):
    with pytest.raises(ValueError, match=r"bucket 'no-such-bucket' does not exist at http://127.0.0.1"):
        DaliMultiCropLoader("s3://no-such-bucket/folder", crops=CROPS, device="cpu")
    with pytest.raises(ValueError, match=r"'s3://training-data/shards/train-003.tar' does not exist \(no object"):
        DaliMultiCropLoader(f"s3://{BUCKET}/shards/train-{{000..007}}.tar", crops=CROPS, device="cpu")
    with pytest.raises(ValueError, match=r"s3://training-data/empty' holds no images"):
        DaliMultiCropLoader(f"s3://{BUCKET}/empty", crops=CROPS, device="cpu")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"cannot reach the S3 endpoint http://127.0.0.1:\d+ .*AWS_ENDPOINT_URL"):
        DaliMultiCropLoader(f"s3://{BUCKET}/folder", crops=CROPS, device="cpu")
    assert time.monotonic() - start < 30, "an unreachable endpoint must fail fast, not hang"


def test_parquet_files_on_s3_give_the_local_files_crops(s3, tmp_path):
    """Parquet files read from S3 by Arrow's S3 file system (the same endpoint and credentials as the other s3://
    sources): the same rows, order and crops as the same files on disk; a pattern matching nothing is one error."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    files = FileList.from_folder(s3["folder"])
    images = [{"bytes": Path(f).read_bytes(), "path": None} for f in files.files]
    half = len(images) // 2
    for k, rows in enumerate((slice(0, half), slice(half, None))):
        local = tmp_path / f"train-{k}.parquet"
        pq.write_table(pa.table({"image": images[rows], "label": list(files.labels)[rows]}), local, row_group_size=3)
        s3["client"].upload_file(str(local), BUCKET, f"parquet/train-{k}.parquet")
    remote = DaliMultiCropLoader(f"parquet:s3://{BUCKET}/parquet/train-*.parquet", crops=CROPS, batch_size=4,
                                 device="cpu", seed=6)
    here = DaliMultiCropLoader(f"parquet:{tmp_path}/train-*.parquet", crops=CROPS, batch_size=4, device="cpu", seed=6)
    assert len(remote.source) == len(files) and remote.source.dataset.files[1].startswith("s3://")
    _same_batches(remote, here)
    with pytest.raises(ValueError, match="no Parquet file matches"):
        DaliMultiCropLoader(f"parquet:s3://{BUCKET}/parquet/valid-*.parquet", crops=CROPS, batch_size=4, device="cpu")
