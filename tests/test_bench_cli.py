"""`dali-multicrop bench`: a smoke run on a tiny sample, and one-line errors for bad options."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from PIL import Image

from dali_multicrop.benchmark.backends import BACKENDS


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One bench run of every backend on 12 generated sample JPEGs, 2 timed batches of 4."""
    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("results")
    cmd = [sys.executable, "-m", "dali_multicrop", "bench", "--crops", "2x128,2x64", "--sample-images", "12",
           "--batch-size", "4", "--warmup", "1", "--batches", "2", "--threads", "2", "--masks", "global_only",
           "--out", str(out)]
    env = {**__import__("os").environ, "DALI_MULTICROP_CACHE": str(cache)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = list(out.iterdir())
    assert len(run_dirs) == 1
    return proc, run_dirs[0], cache


def test_bench_prints_a_table_with_every_backend(smoke):
    """The printed table has a row per backend, and its figures are those written to results.json."""
    proc, folder, _ = smoke
    results = {r["backend"]: r for r in json.loads((folder / "results.json").read_text())["results"]}
    rows = {line.split("│")[1].strip(): line for line in proc.stdout.splitlines() if line.count("│") > 3}
    assert set(BACKENDS) <= set(rows)
    for name in ("dali-cpu", "torchvision", "decode-cpu"):
        cells = [c.strip() for c in rows[name].split("│")[1:-1]]
        assert cells[1] == "ok" and cells[2] == f"{results[name]['images_per_s']:,.1f}", cells
    assert "Traceback" not in proc.stderr


def test_bench_json_names_the_machine_and_has_every_figure(smoke):
    _, folder, _ = smoke
    payload = json.loads((folder / "results.json").read_text())
    machine = payload["machine"]
    for key in ("cpu", "cores", "gpu", "python", "libraries"):
        assert key in machine
    assert machine["cores"] >= 1 and "torch" in machine["libraries"]
    load = machine["load"]  # how busy the machine was (Linux: /proc)
    assert set(load) == {"load_average", "busy_before", "steal_during", "cores"} and load["cores"] == 2
    assert load["load_average"] >= 0 and 0 <= load["busy_before"] <= 1 and 0 <= load["steal_during"] <= 1
    assert payload["config"]["spec"] == "2x128,2x64" and payload["config"]["batch_size"] == 4
    results = {r["backend"]: r for r in payload["results"]}
    assert set(results) == set(BACKENDS)
    for name in ("dali-cpu", "torchvision", "decode-cpu"):
        r = results[name]
        assert r["status"] == "ok", r
        assert r["images"] == 8 and r["images_per_s"] > 0
        if name == "decode-cpu":
            assert r["crops_per_s"] is None  # decode only: no crops
        else:
            assert r["crops_per_s"] == pytest.approx(r["images_per_s"] * 4, rel=1e-3)
        assert 0 < r["batch_ms_p50"] <= r["batch_ms_p99"]
        assert r["peak_host_mib"] > 50 and 0 < r["cpu_percent"] <= 100
    assert results["dali-cpu"]["masks_ms_p50"] > 0 and results["torchvision"]["masks_ms_p50"] > 0
    assert results["decode-cpu"]["masks_ms_p50"] is None and "not applicable" in results["decode-cpu"]["reason"]
    import torch

    if not torch.cuda.is_available():
        for name in ("dali-gpu", "decode"):
            assert results[name]["status"] == "skipped" and "CUDA" in results[name]["reason"]
            assert results[name]["images_per_s"] is None  # skipped, never zero


def test_bench_csv_and_chart(smoke):
    _, folder, _ = smoke
    with (folder / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["backend"] for r in rows] == list(BACKENDS)
    assert all(r["cpu"] for r in rows)
    with Image.open(folder / "chart.png") as chart:
        assert chart.format == "PNG" and chart.size[0] >= 600 and chart.size[1] >= 300


def test_sample_data_looks_like_imagenet(smoke):
    _, _, cache = smoke
    files = sorted(cache.glob("sample-v1-12/*/*.jpg"))
    assert len(files) == 12
    for f in files:
        with Image.open(f) as img:
            assert img.format == "JPEG" and 330 <= min(img.size) and max(img.size) == 500
            assert "progressive" not in img.info
        assert 60_000 < f.stat().st_size < 200_000


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dali_multicrop", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, words", [
    (["bench", "--crops", "2x"], "crop spec '2x' is missing a size"),
    (["bench", "--backend", "pillow-simd"], "unknown backend 'pillow-simd'"),
    (["bench", "--data", "/no/such/folder"], "--data folder '/no/such/folder' does not exist"),
    (["bench", "--masks", "everything"], "--masks must be one of"),
    (["bench", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["bench", "--dtype", "int8"], "--dtype must be float32 or float16"),
])
def test_bad_options_exit_nonzero_with_one_line(args, words):
    proc = _run(*args)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert words in lines[0] and "Traceback" not in proc.stderr


HIDDEN_SCRIPT = """
import sys
sys.modules["psutil"] = None       # import psutil -> ImportError, as on a machine without it
sys.modules["matplotlib"] = None
from dali_multicrop.cli import app
app(sys.argv[1:])
"""


def test_bench_runs_without_psutil_and_matplotlib(tmp_path, smoke):
    _, _, cache = smoke
    cmd = [sys.executable, "-c", HIDDEN_SCRIPT, "bench", "--crops", "2x64", "--sample-images", "12",
           "--batch-size", "4", "--warmup", "1", "--batches", "2", "--threads", "2", "--backend", "dali-cpu",
           "--out", str(tmp_path)]
    env = {**__import__("os").environ, "DALI_MULTICROP_CACHE": str(cache)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no chart: matplotlib is not installed" in proc.stdout
    assert "psutil is not installed" in proc.stdout
    folder = next(tmp_path.iterdir())
    result = json.loads((folder / "results.json").read_text())["results"][0]
    assert result["status"] == "ok" and result["peak_host_mib"] > 50 and result["cpu_percent"] > 0
    assert not (folder / "chart.png").exists()


def test_overhead_command_counts_operators_and_times_both_graphs(tmp_path):
    env = {**__import__("os").environ, "DALI_MULTICROP_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "dali_multicrop", "overhead", "--crops", "2x224,6x96", "--crops", "dino",
           "--batch-size", "8", "--batches", "2", "--rounds", "1", "--threads", "2", "--out", str(tmp_path / "out"),
           "--gil-batch-size", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "full / decode" in proc.stdout
    payload = json.loads(next((tmp_path / "out").iterdir()).joinpath("overhead.json").read_text())
    assert "cpu" in payload["machine"]
    default, dino = payload["results"]
    assert default["tiny_spec"] == "2x32,6x16" and dino["tiny_spec"] == "1x32,1x32,8x16"
    for r in (default, dino):
        assert r["ms_full"] > 0 and r["ms_host"] > 0 and r["ms_decode"] > 0
        # the ratios of the written times, written to 2 decimals
        assert r["ratio"] == round(r["ms_full"] / r["ms_decode"], 2)
        assert r["host_ratio"] == round(r["ms_host"] / r["ms_decode"], 2)
        assert r["floor_ratio"] == round(r["ms_floor"] / r["ms_decode"], 2)
    assert default["operators_gpu_graph"]["mixed"] == 2  # the GPU decoder, the colour rows' one copy to the GPU
    assert dino["operators_gpu_graph"]["mixed"] == 3  # and the solarisation offsets' one copy to the GPU
    # dino's blur and solarisation come out of the same crop step: one more host operator only, the blur's split
    # (the solarisation offsets are split on the GPU)
    assert default["operators_gpu_graph"]["cpu"] == dino["operators_gpu_graph"]["cpu"] - 1


def test_bench_source_measures_each_kind_of_source_on_the_same_images(tmp_path):
    """`--source` runs the DALI backend once per kind of source (tar shards and the Parquet file written once into
    the cache)."""
    out, cache = tmp_path / "results", tmp_path / "cache"
    cmd = [sys.executable, "-m", "dali_multicrop", "bench", "--crops", "1x64,2x32", "--sample-images", "12",
           "--batch-size", "4", "--warmup", "1", "--batches", "2", "--threads", "2", "--backend", "dali-cpu",
           "--source", "folder", "--source", "arrays", "--source", "tar", "--source", "dataset", "--source", "parquet",
           "--out", str(out)]
    env = {**__import__("os").environ, "DALI_MULTICROP_CACHE": str(cache)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(next(out.iterdir()).joinpath("results.json").read_text())
    results = {r["backend"]: r for r in payload["results"]}
    assert set(results) == {"dali-cpu", "dali-cpu@arrays", "dali-cpu@tar", "dali-cpu@dataset", "dali-cpu@parquet"}
    assert all(r["status"] == "ok" and r["images"] == 8 for r in results.values()), results
    assert len(list(cache.glob("bench-shards-*/train-*.idx"))) == 1  # 12 images: one shard of up to 256
    assert len(list(cache.glob("bench-parquet-*/train.parquet"))) == 1
    bad = subprocess.run(cmd[:-4] + ["--source", "lmdb"], capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2
    assert "unknown --source 'lmdb' (choose from folder, arrays, tar, dataset, parquet, hf, hf-pil)" in bad.stderr


def test_albumentations_is_skipped_with_the_reason_where_it_is_missing(monkeypatch):
    import sys as _sys

    from dali_multicrop.benchmark.backends import skip_reason

    monkeypatch.setitem(_sys.modules, "albumentations", None)  # import albumentations now raises ImportError
    reason = skip_reason("albumentations", None)
    assert reason is not None and "pip install albumentations, or in the project's checkout: pip install -e " \
        "'.[albumentations]'" in reason


def test_machine_load_is_read_from_proc_and_warned_about():
    from dali_multicrop.benchmark.load import MachineLoad, _busy, _stat

    stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n"
    later = "cpu  250 0 100 850 50 0 0 50 0 0\n"
    assert _stat(stat) == (1000, 850, 0) and _stat(later) == (1300, 900, 50)
    busy, steal = _busy(_stat(stat), _stat(later))
    assert busy == pytest.approx(250 / 300) and steal == pytest.approx(50 / 300)
    assert _stat("intr 1 2 3") is None
    assert MachineLoad(0.1, 0.05, 0.0, 2).warnings() == []
    warned = MachineLoad(1.9, 0.6, 0.12, 2).warnings()
    assert len(warned) == 2 and "60% of 2 cores in use, load average 1.90" in warned[0] and "12%" in warned[1]


def test_an_epoch_of_one_batch_fails_the_backend_instead_of_waiting_forever(tmp_path):
    """Every batch of a one-batch epoch starts an epoch, which the figures leave out: the backend fails at once
    with what to change (it used to wait for a countable batch forever)."""
    env = {**__import__("os").environ, "DALI_MULTICROP_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "dali_multicrop", "bench", "--crops", "1x32", "--sample-images", "8",
                           "--batch-size", "8", "--warmup", "0", "--batches", "2", "--backend", "dali-cpu",
                           "--threads", "2", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dali-cpu: failed: ValueError: an epoch of this data is 1 batch of 8" in " ".join(proc.stdout.split())


@pytest.mark.parametrize("gpu_rate, warned", [(1200.0, True), (4000.0, False)])
def test_a_slow_gpu_decoder_is_reported_with_its_ratio_never_failed(gpu_rate, warned):
    """decode against decode-cpu: the ratio is noted on decode's row; below DECODER_CHECK with a warning, and the
    measured figure stays a figure (status ok), since a many-core host can decode small images about as fast."""
    from dali_multicrop.benchmark.harness import DECODER_CHECK, BackendResult, _check_decoder

    gpu = BackendResult("decode", "ok", images=100, images_per_s=gpu_rate)
    cpu = BackendResult("decode-cpu", "ok", images=100, images_per_s=1000.0)
    _check_decoder([gpu, cpu])
    assert gpu.status == "ok" and gpu.images_per_s == gpu_rate and cpu.reason == ""
    assert f"{gpu_rate / 1000:.2f}x decode-cpu" in gpu.reason
    assert ("warning" in gpu.reason) is warned and (gpu_rate / 1000 < DECODER_CHECK) is warned
