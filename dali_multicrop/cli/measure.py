"""The measuring commands: ``bench`` (throughput of each backend on the same data and recipe), ``probe`` (one
dataset's rate and ceiling) and ``overhead`` (the graph's fixed cost per batch and its GIL time)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..common.checks import install_hint
from ..common.system import visible_cores
from ..graph.builder import HW_DECODER_LOAD
from ..sources import FileList

from .common import (app, DEFAULT_CROPS, CROPS_HELP, CONFIG_HELP, _fail, _spec, _spec_or_config, _wide_console,
                     _positive, _check_data_folder, _data, _strategy)


@app.command()
def bench(
    crops: str = typer.Option(DEFAULT_CROPS, "--crops", help=CROPS_HELP, show_default=True),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    data: Optional[Path] = typer.Option(None, "--data", help="Image folder to read instead of the built-in sample."),
    backend: Optional[List[str]] = typer.Option(None, "--backend",
                                                help="Backend to run (repeatable): dali-gpu, dali-cpu, torchvision, "
                                                     "albumentations, decode, decode-cpu. Default: all; those that "
                                                     "cannot run here are reported as skipped."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per batch.", show_default=True),
    threads: Optional[int] = typer.Option(None, "--threads",
                                          help="DALI threads, and the peers' DataLoader workers. Default: every "
                                               "core."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed batches per backend.", show_default=True),
    batches: int = typer.Option(20, "--batches", help="Timed batches per backend.", show_default=True),
    dtype: str = typer.Option("float32", "--dtype", help="Crop dtype: float32 or float16.", show_default=True),
    masks: Optional[str] = typer.Option(None, "--masks", help="Also run MultiCropMaskGenerator with this strategy "
                                                              "on every batch, and time it."),
    patch_size: int = typer.Option(16, "--patch-size", help="Patch size for --masks.", show_default=True),
    sample_images: int = typer.Option(3000, "--sample-images", help="Size of the built-in sample set.",
                                      show_default=True),
    out: Path = typer.Option(Path("results"), "--out", help="Results folder (a timestamped run folder inside).",
                             show_default=True),
    seed: int = typer.Option(0, "--seed", show_default=True),
    source: Optional[List[str]] = typer.Option(None, "--source", help="Source kinds the DALI backends read the "
                                               "same images from: folder, arrays (decoded in memory), tar "
                                               "(WebDataset shards), dataset (a torch Dataset of PIL images), "
                                               "parquet (a Parquet file of the encoded images; needs pyarrow), "
                                               "hf (a Hugging Face datasets.Dataset read from its Arrow table), "
                                               "hf-pil (the same through its own __getitem__, PIL decoding). "
                                               "Repeatable. Default: folder."),
    hw_decoder_load: float = typer.Option(HW_DECODER_LOAD, "--hw-decoder-load",
                                          help="Share of JPEG decoding given to the GPU's hardware decoder (0-1; "
                                               "GPU backends only).", show_default=True),
    executor: str = typer.Option("", "--executor", help="DALI's executor settings for the DALI backends, e.g. "
                                 "concurrency=full,stream_policy=per_operator,resize_batch=batch (keys: concurrency "
                                 "none/backend/full, stream_policy single/per_backend/per_operator, resize_batch N "
                                 "or batch). Default: DALI's own."),
) -> None:
    """Measure multi-crop throughput of each backend on the same data and recipe; write JSON, CSV and a PNG."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..benchmark.backends import bench_rows
    from ..benchmark.environment import describe_machine
    from ..benchmark.harness import BenchConfig, check_settings, run_benchmark
    from ..benchmark.load import LoadWatch
    from ..benchmark.report import notes, render_table, write_results

    spec = _spec_or_config(crops, config)
    _check_data_folder(data)
    _positive("--sample-images", sample_images)
    strategy = _strategy(masks)
    settings = dict(batch_size=batch_size, threads=visible_cores() if threads is None else threads, warmup=warmup,
                    batches=batches, dtype=dtype, masks=strategy, patch_size=patch_size, seed=seed,
                    hw_decoder_load=hw_decoder_load, executor=executor)
    try:
        chosen = bench_rows(backend, source)
        check_settings(spec, **settings)  # every option, before the data is made
    except ValueError as exc:
        _fail(str(exc))
    console = Console(stderr=True)
    files, data_path = _data(data, sample_images)
    cfg = BenchConfig(spec=spec, data=files, data_path=data_path, **settings)
    threads = cfg.threads
    watch = LoadWatch(threads)
    with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        tasks: dict[str, Any] = {}

        def tick(name: str) -> None:  # a backend's bar appears with its first batch: skipped ones show none
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=warmup + batches)
            progress.advance(tasks[name])

        watch.start()
        results = run_benchmark(cfg, chosen, tick=tick)
        load = watch.stop()
    machine = describe_machine()
    if load is not None:
        machine["load"] = load.as_dict()
    recipe = str(spec) if crops.strip() == str(spec) else f"{crops.strip()} ({spec})"
    title = f"{recipe} — batch {batch_size}, {threads} threads — {machine['cpu']}, {machine.get('gpu') or 'no GPU'}"
    if cfg.executor:
        title += f" — executor {cfg.executor}"
    out_console = _wide_console(160)
    out_console.print(render_table(results, title))
    for line in notes(results):
        out_console.print(line, highlight=False)
    for line in load.warnings() if load is not None else []:
        out_console.print(f"warning: {line}", highlight=False, style="yellow")
    folder = out / time.strftime("bench-%Y%m%d-%H%M%S")
    paths = write_results(results, {**cfg.describe(), "crops": crops}, machine, folder, title=title)
    written = ", ".join(str(paths[k]) for k in ("json", "csv", "png") if k in paths)
    typer.echo(f"results: {written}" + ("" if "png" in paths else " (no chart: matplotlib is not installed)"))


@app.command()
def probe(
    data: Path = typer.Argument(..., help="Your image folder (class folders or images; searched as the loader does)."),
    crops: str = typer.Option(DEFAULT_CROPS, "--crops", help=CROPS_HELP, show_default=True),
    device: str = typer.Option("auto", "--device", help="The graph: gpu, cpu or auto (gpu where CUDA is visible).",
                               show_default=True),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per batch.", show_default=True),
    threads: Optional[int] = typer.Option(None, "--threads", help="DALI threads. Default: every core."),
    batches: int = typer.Option(30, "--batches", help="Timed batches of each graph.", show_default=True),
    model_img_s: Optional[float] = typer.Option(None, "--model-img-s", help="Images per second one GPU's training "
                                                "step takes: then says how many GPUs the loader's rate feeds."),
) -> None:
    """Read your own data through the loader for a few dozen batches: its images/s beside the decode-only ceiling on
    the same files, and how many GPUs that rate feeds at --model-img-s."""
    import torch

    from ..benchmark.probe import probe as run_probe

    spec = _spec(crops)
    _positive("--batch-size", batch_size)
    _positive("--batches", batches)
    if device not in ("gpu", "cpu", "auto"):
        _fail(f"--device must be gpu, cpu or auto, got '{device}'")
    if device == "gpu" and not torch.cuda.is_available():
        _fail("--device gpu: no CUDA GPU is visible to torch here (--device cpu or auto measures the CPU graph)")
    if model_img_s is not None and not model_img_s > 0:
        _fail(f"--model-img-s must be a rate above 0, got {model_img_s}")
    _check_data_folder(data, "DATA")
    files, data_path = _data(data, 0)
    chosen = "gpu" if device == "gpu" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    typer.echo(f"probe: reading {len(files):,} images of {data_path} through the {chosen} graph ...", err=True)
    try:
        result = run_probe(files, data_path, spec, chosen, batch_size, visible_cores() if threads is None else threads,
                           batches=batches, model_img_s=model_img_s)
    except ValueError as exc:
        _fail(str(exc))
    for line in result.lines():
        typer.echo(line)


@app.command()
def overhead(
    crops: Optional[List[str]] = typer.Option(None, "--crops", help=CROPS_HELP + " Repeatable. Default: "
                                                                   "2x224,6x96 and dino."),
    batch_size: int = typer.Option(128, "--batch-size", help="Images per batch.", show_default=True),
    threads: Optional[int] = typer.Option(None, "--threads", help="DALI threads. Default: every core."),
    batches: int = typer.Option(30, "--batches", help="Timed batches per graph and round.", show_default=True),
    rounds: int = typer.Option(3, "--rounds", help="Rounds of decode-only then full graph.", show_default=True),
    out: Path = typer.Option(Path("results"), "--out", help="Results folder (a timestamped run folder inside).",
                             show_default=True),
    gil_batch_size: int = typer.Option(256, "--gil-batch-size", help="Batch size of the GIL measurement (py-spy "
                                       "samples of the loader's steady loop); 0 skips it.", show_default=True),
    gil_source: str = typer.Option("folder", "--gil-source", help="The GIL measurement's source of the same images: "
                                   "folder, or parquet (one Parquet file: the fetch threads' Python counts).",
                                   show_default=True),
) -> None:
    """Measure the graph's fixed cost per batch on tiny images (24x32 JPEGs, crops shrunk to 32/16 px): operators
    by device, the full CPU graph, the GPU graph's host stage and the pixel floor (a resize and a normalisation per
    crop) against the decode-only head, and the milliseconds per batch the loader holds the GIL (against a bare
    DALI reader + decoder loader)."""
    from ..benchmark.environment import describe_machine
    from ..benchmark.overhead import measure_overhead
    from ..benchmark.report import overhead_table
    from ..sample_data import ensure_tiny_data

    recipes = list(crops) if crops else ["2x224,6x96", "dino"]
    specs = [(name, _spec(name)) for name in recipes]
    for name, value, low in (("--batch-size", batch_size, 1), ("--batches", batches, 1), ("--rounds", rounds, 1)):
        _positive(name, value, low)
    threads = _positive("--threads", threads) if threads is not None else visible_cores()
    if gil_source not in ("folder", "parquet"):
        _fail(f"--gil-source must be folder or parquet, got '{gil_source}'")
    files = FileList.from_folder(ensure_tiny_data())
    results = []
    for name, spec in specs:
        typer.echo(f"measuring {name} ...", err=True)
        results.append(measure_overhead(name, spec, files, batch_size=batch_size, threads=threads,
                                        batches=batches, rounds=rounds))
    gil, gil_note = _measure_gil(recipes, gil_batch_size, threads, gil_source)
    machine = describe_machine()
    title = f"graph fixed cost, tiny images — batch {batch_size}, {threads} threads — {machine['cpu']}"
    _wide_console(240).print(overhead_table(results, gil, gil_batch_size, title))
    if gil_note:
        typer.echo(gil_note)
    folder = out / time.strftime("overhead-%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "overhead.json"
    path.write_text(json.dumps({"machine": machine, "results": [dataclasses.asdict(r) for r in results],
                                "gil": {k: dataclasses.asdict(v) for k, v in gil.items()}, "gil_note": gil_note},
                               indent=2) + "\n")
    typer.echo(f"results: {path}")


def _measure_gil(recipes: List[str], batch_size: int, threads: int,
                 source: str = "folder") -> tuple[dict, Optional[str]]:
    """``overhead``'s GIL column: ``({recipe or "bare": GilResult}, why it is missing or None)``; the recipes' loader
    over ``source`` (``folder`` or ``parquet``)."""
    from ..benchmark.gil import WARMUP, measure_gil, py_spy
    from ..sample_data import ensure_tiny_data

    if batch_size <= 0:
        return {}, None
    if py_spy() is None:
        return {}, f"no GIL column: py-spy is not installed ({install_hint('py-spy', 'bench')})"
    batches = 40
    data = str(ensure_tiny_data(max(1024, (WARMUP + batches + 2) * batch_size)))
    found = {}
    try:
        for name in ["bare", *recipes]:
            typer.echo(f"measuring the GIL of {name} ...", err=True)
            kind, crops = ("bare", recipes[0]) if name == "bare" else ("loader" if source == "folder" else source, name)
            found[name] = measure_gil(kind, crops, data, batch_size=batch_size, threads=threads, batches=batches)
    except RuntimeError as exc:  # py-spy cannot attach here (no ptrace permission, ...)
        return found, f"no GIL column: {exc}"
    return found, None


