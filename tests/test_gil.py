"""The loader's Python under the GIL (py-spy's GIL samples of its steady loop), and the batch-level path array the
feed hands DALI (one gather per batch from the list's path table, not a step per sample)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import coordinate_image, has_cuda, write_folder
from dali_multicrop import DaliMultiCropLoader, FileList
from dali_multicrop.benchmark import gil
from dali_multicrop.sources.files import encode_paths


def test_paths_go_to_dali_as_one_nul_padded_array_and_read_back_exactly(tmp_path):
    paths = ["a.jpg", "/données/été 2026/ünï.png", "x" * 40]
    array = encode_paths(paths)
    assert array.dtype == np.uint8 and array.shape == (3, max(len(p.encode()) for p in paths))
    for row, path in zip(array, paths):
        assert row.tobytes().rstrip(b"\0") == path.encode()
    # a batch's paths are one gather from the list's table (made once): the same rows, padded to the list's longest
    files = FileList(tuple(paths), (0, 0, 0))
    assert files.path_bytes is files.path_bytes and np.array_equal(files.path_bytes[[2, 0]], array[[2, 0]])
    # through the real graph: odd names (spaces, accents) and very different lengths in one batch
    image = coordinate_image(40, 48)
    root = write_folder(tmp_path / "data", {"été": [image], "b": [image]})
    (root / "b" / "000.png").rename(root / "b" / ("a much longer file name with spaces " * 3 + ".png"))
    plain = write_folder(tmp_path / "plain", {"b": [image], "c": [image]})  # the same images and order, plain names
    common = dict(crops="1x32,1x16", batch_size=2, device="cpu", shuffle=False, seed=5)
    odd = next(iter(DaliMultiCropLoader(FileList.from_folder(root), **common)))
    same = next(iter(DaliMultiCropLoader(FileList.from_folder(plain), **common)))
    assert odd.indices.tolist() == [0, 1] and odd.labels.tolist() == [0, 1]
    assert all(torch.equal(a, b) for a, b in zip(odd.crops, same.crops))


@pytest.mark.skipif(gil.py_spy() is None, reason="py-spy is not installed")
def test_gil_per_batch_is_measured_for_the_loader_and_the_bare_reader():
    from dali_multicrop.sample_data import ensure_tiny_data

    data = str(ensure_tiny_data(2048))
    loader = gil.measure_gil("loader", "2x224,6x96", data, batch_size=32, threads=2, batches=40)
    bare = gil.measure_gil("bare", "2x224,6x96", data, batch_size=32, threads=2, batches=40)
    crops = gil.measure_gil("bare-crops", "2x224,6x96", data, batch_size=32, threads=2, batches=40, isolate=False)
    assert loader.samples > 0 and loader.gil_ms_per_batch > 0
    assert loader.isolated == bare.isolated == (gil.core_split() is not None) and not crops.isolated
    for result, kind in ((loader, "loader"), (bare, "bare"), (crops, "bare-crops")):
        assert (result.kind, result.batch_size, result.batches) == (kind, 32, 40)
        assert result.gil_ms_per_batch == pytest.approx(result.samples / result.rate_hz / 40 * 1e3, abs=0.01)
    # which of the two holds the GIL longer is a measurement (bench/README), not asserted here: since the crop
    # step and the draws were compiled the loader's figure at batch 32 (about 1 ms) is within the bare loader's
    # noise (0.2-1.3 ms seen), and a timed comparison would fail by chance


def test_overhead_says_why_there_is_no_gil_column_without_py_spy(monkeypatch):
    from dali_multicrop.cli import measure

    monkeypatch.setattr(gil, "py_spy", lambda: None)
    found, note = measure._measure_gil(["2x224,6x96"], 256, 2)
    assert found == {} and note == ("no GIL column: py-spy is not installed (pip install py-spy, or in the project's "
                                    "checkout: pip install -e '.[bench]')")
    assert measure._measure_gil(["2x224,6x96"], 0, 2) == ({}, None)
    with pytest.raises(ValueError, match="kind must be one of loader, parquet, bare, bare-crops, bare-pixels"):
        gil.measure_gil("other", "2x224,6x96", "unused")


def test_overhead_measures_the_loader_over_the_source_it_is_given(monkeypatch, tmp_path):
    """--gil-source parquet: the recipes' loader over the same tiny images as one Parquet file; the bare reference
    stays the bare DALI loader."""
    import dali_multicrop.sample_data
    from dali_multicrop.cli import measure

    asked = []
    monkeypatch.setattr(dali_multicrop.sample_data, "ensure_tiny_data", lambda count: tmp_path)  # not made here
    monkeypatch.setattr(gil, "py_spy", lambda: "py-spy")
    monkeypatch.setattr(gil, "measure_gil", lambda kind, crops, data, **kw: asked.append((kind, crops)) or kind)
    found, note = measure._measure_gil(["dino"], 256, 2, "parquet")
    assert note is None and asked == [("bare", "dino"), ("parquet", "dino")] and found == {"bare": "bare",
                                                                                          "dino": "parquet"}


def test_core_split_gives_the_training_thread_the_highest_core_and_nothing_on_one_core(monkeypatch):
    monkeypatch.setattr(gil.os, "sched_getaffinity", lambda pid: {0, 2, 5, 7})
    assert gil.core_split() == (7, {0, 2, 5})
    monkeypatch.setattr(gil.os, "sched_getaffinity", lambda pid: {3})
    assert gil.core_split() is None


def _allowed(status: str) -> set[int]:
    """The cores of a ``/proc/.../status`` text's ``Cpus_allowed_list`` line (``0-2,5``)."""
    line = next(l for l in status.splitlines() if l.startswith("Cpus_allowed_list:"))
    cores: set[int] = set()
    for part in line.split(":", 1)[1].strip().split(","):
        low, _, high = part.partition("-")
        cores.update(range(int(low), int(high or low) + 1))
    return cores


@pytest.mark.skipif(gil.core_split() is None or not os.path.isdir("/proc/self/task"),
                    reason="needs two cores and Linux's /proc")
@pytest.mark.parametrize("kind", ["loader", "bare-crops"])
def test_the_measured_training_thread_has_a_core_of_its_own_and_dali_threads_the_others(kind):
    """The measured program, warm and waiting for py-spy: its main thread may run on the training core only, and
    every other thread (DALI's, started during the warm-up) anywhere but there."""
    from dali_multicrop.sample_data import ensure_tiny_data

    core, others = gil.core_split()
    data = str(ensure_tiny_data(2048))
    args = ["--run", kind, "--crops", "2x224,2x96", "--data", data, "--batch-size", "16", "--threads", "2",
            "--batches", "2", "--training-core", str(core)]
    with subprocess.Popen([sys.executable, "-m", "dali_multicrop.benchmark.gil", *args], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as program:
        try:
            assert program.stdout.readline().strip() == "warm"
            tasks = {int(t): Path(f"/proc/{program.pid}/task/{t}/status").read_text()
                     for t in os.listdir(f"/proc/{program.pid}/task")}
            program.stdin.write("go\n")
            program.stdin.flush()
            assert program.wait(timeout=120) == 0
        finally:
            if program.poll() is None:
                program.kill()
    assert len(tasks) > 2  # DALI's threads are running
    assert _allowed(tasks.pop(program.pid)) == {core}
    assert all(_allowed(status) <= others for status in tasks.values())


def test_ready_batches_are_timed_inside_without_py_spy():
    """``measure_ready``: the host ms of each call for a batch DALI already holds, for the loader and the bare
    loaders (no py-spy involved: it runs where py-spy cannot attach)."""
    from dali_multicrop.sample_data import ensure_tiny_data

    data = str(ensure_tiny_data(2048))
    for kind in gil.KINDS:
        result = gil.measure_ready(kind, "2x224,2x96", data, batch_size=16, threads=2, batches=12)
        assert (result.kind, result.batch_size, result.batches) == (kind, 16, 12)
        assert 0 < result.p10_ms <= result.median_ms <= result.p90_ms
        assert result.isolated == (gil.core_split() is not None) and result.device == "cpu"
    with pytest.raises(ValueError, match="kind must be one of"):
        gil.measure_ready("other", "2x224,6x96", "unused")


@pytest.mark.parametrize("kind", ["bare-crops", "bare-pixels"])
def test_the_bare_references_hand_over_a_crop_per_output(kind):
    """``bare-crops``: a plain resize per crop (uint8 HWC); ``bare-pixels``: the loader's GPU pixel operators per
    crop (resize, colour map, normalisation: float32 CHW), nothing drawn."""
    import numpy as np

    from dali_multicrop.benchmark.overhead import tiny_spec
    from dali_multicrop.recipes.presets import parse_crops
    from dali_multicrop.sample_data import ensure_tiny_data
    from dali_multicrop.sources import FileList

    files = list(FileList.from_folder(ensure_tiny_data(2048)).files)[:8]
    pipeline, names = gil.bare_pipeline(kind, files, "2x224,3x96", batch_size=4, threads=1)
    sizes = tiny_spec(parse_crops("2x224,3x96")).sizes
    assert names == [f"crop_{i}" for i in range(5)] + ["labels"]
    pipeline.build()
    outputs = pipeline.run()
    kinds = [getattr(op._op, "schema_name", type(op._op).__name__) for op in pipeline._ops]
    for out, size in zip(outputs[:5], sizes):
        array = np.array(out.as_tensor())
        if kind == "bare-pixels":
            assert array.shape == (4, 3, size, size) and array.dtype == np.float32
        else:
            assert array.shape == (4, size, size, 3) and array.dtype == np.uint8
    per_crop = {"bare-crops": ["Resize"], "bare-pixels": ["Resize", "CoordTransform", "CropMirrorNormalize"]}[kind]
    assert all(kinds.count(name) == 5 for name in per_crop)


def test_only_the_loader_is_measured_on_the_gpu():
    with pytest.raises(ValueError, match="the bare references run on the CPU"):
        gil.measure_ready("bare", "2x224,6x96", "unused", device="gpu")
    with pytest.raises(ValueError, match="device must be"):
        gil.measure_gil("loader", "2x224,6x96", "unused", device="tpu")


@pytest.mark.gpu
@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")
def test_ready_batches_of_the_gpu_graph_are_timed():
    """What a GPU run pays the loader on the host per batch (the device check records it at batch 256)."""
    from dali_multicrop.sample_data import ensure_tiny_data

    result = gil.measure_ready("loader", "2x224,6x96", str(ensure_tiny_data(2048)), batch_size=32, threads=2,
                               batches=12, device="gpu")
    assert result.device == "gpu" and 0 < result.p10_ms <= result.median_ms <= result.p90_ms


def test_py_spy_beside_the_running_python_is_found_off_path(monkeypatch, tmp_path):
    """A virtual environment's py-spy is found even where its bin folder is not on PATH."""
    import shutil
    import sys

    (tmp_path / "python").write_text("")
    spy = tmp_path / "py-spy"
    spy.write_text("#!/bin/sh\n")
    spy.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    assert gil.py_spy() == str(spy)
    spy.unlink()
    assert gil.py_spy() is None
