"""The ``dali-multicrop`` command line (typer): ``bench`` (throughput of each backend), ``overhead`` (the graph's
fixed cost per batch and its GIL time), ``preview`` (a picture of the crops and masks), ``doctor`` (the install),
``presets``, ``crops`` (a spec's groups), ``config`` (a resolved training config), ``check-data`` (a dataset scanned
for bad files) and ``index-shards`` (tar shards' index files).

Every bad option ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from pathlib import Path
from typing import Any, List, NoReturn, Optional, Union

import typer

from . import __version__
from ._checks import install_hint
from ._system import cache_dir, visible_cores
from .graph import HW_DECODER_LOAD
from .presets import list_presets, load_preset, load_preset_description, parse_crops
from .sources import FileList, s3
from .sources.tar import expand_shards
from .sources.tar_index import index_path_for, write_index
from .spec import MultiCropSpec

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Multi-crop views for self-supervised training, made by NVIDIA DALI.")

DEFAULT_CROPS = "2x224,6x96"
CROPS_HELP = ("Crop spec (COUNTxSIZE groups, first global, e.g. 2x224,6x96), a preset name "
              "(see 'dali-multicrop presets') or a recipe YAML file.")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _spec(crops: str) -> MultiCropSpec:
    try:
        return parse_crops(crops)
    except ValueError as exc:
        _fail(str(exc))


CONFIG_HELP = "A training config (YAML, see configs/): take the crop recipe from it instead of --crops."


def _spec_or_config(crops: str, config: Optional[Path]) -> MultiCropSpec:
    """The recipe of ``--config`` where one is given (then ``--crops`` must be left at its default), else of
    ``--crops``."""
    if config is None:
        return _spec(crops)
    if crops != DEFAULT_CROPS:
        _fail("give --crops or --config, not both")
    return _config(config).spec


def _wide_console(width: int) -> Any:
    """A rich console for tables: the terminal's own, or ``width`` columns when the output is a file or a pipe (where
    rich would otherwise wrap at 80)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=width)


def _config(config: Union[str, Path]):
    from .config import load_config

    try:
        return load_config(config)
    except ValueError as exc:
        _fail(str(exc))


def _positive(name: str, value: int, minimum: int = 1) -> int:
    if value < minimum:
        _fail(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_data_folder(data: Optional[Path], name: str = "--data") -> None:
    if data is not None and not data.is_dir():
        _fail(f"{name} folder '{data}' does not exist" if not data.exists() else f"{name} '{data}' is not a folder")


def _data(data: Optional[Path], sample_images: int):
    """The image list to use: ``--data`` or the built-in sample set (generated on first use)."""
    from .sample_data import ensure_sample_data

    if data is None:
        from rich.console import Console
        from rich.progress import Progress

        typer.echo(f"sample data: {sample_images} JPEGs under {cache_dir()} (generated on first use)",
                   err=True)
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("generating sample JPEGs", total=sample_images)
            folder = ensure_sample_data(sample_images, progress=lambda done, total: progress.update(task,
                                                                                                    completed=done))
    else:
        folder = data
    try:
        return FileList.from_folder(folder), str(folder)
    except ValueError as exc:
        _fail(str(exc))


def _strategy(masks: Optional[str], option: str = "--masks", also: tuple[str, ...] = ()) -> Optional[str]:
    """``masks`` where it is a JEPA strategy; else the one-line error naming the choices (and ``also``)."""
    from .masking import STRATEGIES

    if masks is not None and masks not in STRATEGIES:
        _fail(f"{option} must be one of {', '.join(STRATEGIES + also)}, got '{masks}'")
    return masks


@app.callback(invoke_without_command=True)
def main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


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
                                               "(WebDataset shards), dataset (a torch Dataset of PIL images). "
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

    from .benchmark.backends import bench_rows
    from .benchmark.environment import describe_machine
    from .benchmark.harness import BenchConfig, check_settings, run_benchmark
    from .benchmark.load import LoadWatch
    from .benchmark.report import notes, render_table, write_results

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

    from .benchmark.probe import probe as run_probe

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
) -> None:
    """Measure the graph's fixed cost per batch on tiny images (24x32 JPEGs, crops shrunk to 32/16 px): operators
    by device, the full CPU graph, the GPU graph's host stage and the pixel floor (a resize and a normalisation per
    crop) against the decode-only head, and the milliseconds per batch the loader holds the GIL (against a bare
    DALI reader + decoder loader)."""
    from .benchmark.environment import describe_machine
    from .benchmark.overhead import measure_overhead
    from .benchmark.report import overhead_table
    from .sample_data import ensure_tiny_data

    recipes = list(crops) if crops else ["2x224,6x96", "dino"]
    specs = [(name, _spec(name)) for name in recipes]
    for name, value, low in (("--batch-size", batch_size, 1), ("--batches", batches, 1), ("--rounds", rounds, 1)):
        _positive(name, value, low)
    threads = _positive("--threads", threads) if threads is not None else visible_cores()
    files = FileList.from_folder(ensure_tiny_data())
    results = []
    for name, spec in specs:
        typer.echo(f"measuring {name} ...", err=True)
        results.append(measure_overhead(name, spec, files, batch_size=batch_size, threads=threads,
                                        batches=batches, rounds=rounds))
    gil, gil_note = _measure_gil(recipes, gil_batch_size, threads)
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


def _measure_gil(recipes: List[str], batch_size: int, threads: int) -> tuple[dict, Optional[str]]:
    """``overhead``'s GIL column: ``({recipe or "bare": GilResult}, why it is missing or None)``."""
    from .benchmark.gil import WARMUP, measure_gil, py_spy
    from .sample_data import ensure_tiny_data

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
            kind, crops = ("bare", recipes[0]) if name == "bare" else ("loader", name)
            found[name] = measure_gil(kind, crops, data, batch_size=batch_size, threads=threads, batches=batches)
    except RuntimeError as exc:  # py-spy cannot attach here (no ptrace permission, ...)
        return found, f"no GIL column: {exc}"
    return found, None


@app.command()
def preview(
    crops: str = typer.Option(DEFAULT_CROPS, "--crops", help=CROPS_HELP, show_default=True),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    data: Optional[Path] = typer.Option(None, "--data", help="Image folder to read instead of the built-in sample."),
    images: int = typer.Option(3, "--images", help="How many source images to show.", show_default=True),
    strategy: str = typer.Option("global_only", "--strategy", help="Masking strategy to overlay: a JEPA strategy "
                                 "(global_only, global_with_local_context, cross_crop_prediction) or ibot / "
                                 "dinov2 (the block-wise patch masks of the global crops).", show_default=True),
    levels: int = typer.Option(3, "--levels", help="Mask hierarchy levels.", show_default=True),
    targets: int = typer.Option(4, "--targets", help="Target blocks per crop and level.", show_default=True),
    patch_size: int = typer.Option(16, "--patch-size", show_default=True),
    tile: int = typer.Option(128, "--tile", help="Side of each cell of the picture, in pixels.", show_default=True),
    sample_images: int = typer.Option(3000, "--sample-images", help="Size of the built-in sample set.",
                                      show_default=True),
    seed: int = typer.Option(0, "--seed", show_default=True),
    out: Path = typer.Option(Path("results/preview.png"), "--out", help="PNG file to write.", show_default=True),
) -> None:
    """Draw a few images with their crop windows, the crops, and the masks of a strategy, level by level."""
    from .loader import DaliMultiCropLoader
    from .masking import MultiCropMaskGenerator, PatchMaskGenerator
    from .masking.patches import PATCH_STRATEGIES
    from .preview import preview_size, render_preview

    spec = _spec_or_config(crops, config)
    for name, value, low in (("--images", images, 1), ("--levels", levels, 1), ("--targets", targets, 1),
                             ("--patch-size", patch_size, 1), ("--tile", tile, 16),
                             ("--sample-images", sample_images, 1)):
        _positive(name, value, low)
    patches = strategy in PATCH_STRATEGIES
    if not patches:
        _strategy(strategy, "--strategy", PATCH_STRATEGIES)
    _check_data_folder(data)
    try:
        generator: Any = (PatchMaskGenerator(spec, patch_size=patch_size, seed=seed) if patches else
                          MultiCropMaskGenerator(spec, patch_size=patch_size, strategy=strategy, num_levels=levels,
                                                 num_targets=targets, seed=seed))
    except ValueError as exc:
        _fail(str(exc))
    levels = 1 if patches else levels
    files, _ = _data(data, sample_images)
    loader = DaliMultiCropLoader(files, crops=spec, batch_size=min(images, len(files)), device="auto", seed=seed,
                                 shard_id=0, num_shards=1)
    batch = next(iter(loader))
    path = render_preview(batch, generator(batch), files.files, out, tile=tile, mean=loader.mean, std=loader.std,
                          num_global=loader.spec.num_global)
    width, height = preview_size(batch.batch_size, spec.num_crops, levels, tile)
    what = "patch masks on the global crops" if patches else f"{levels} levels of '{strategy}' masks"
    typer.echo(f"preview: {path} ({width}x{height} px, {batch.batch_size} images, {spec.num_crops} crops, {what})")


@app.command()
def fidelity(
    crops: str = typer.Option(DEFAULT_CROPS, "--crops", help=CROPS_HELP, show_default=True),
    images: Optional[Path] = typer.Option(None, "--images", help="A folder of your own images (searched "
                                          "recursively; PNG or JPEG). Default: the photographs scikit-image bundles."),
    device: str = typer.Option("cpu", "--device", help="The graph to measure: cpu or gpu.", show_default=True),
    epochs: int = typer.Option(2, "--epochs", help="Passes over the images (each draws new crops).",
                               show_default=True),
) -> None:
    """How close each crop group's operations are to torchvision on PIL images, the method's own transform, in code
    values (0-255): the resize with the group's interpolation, then each colour operation, the whole ColorJitter in
    its order drawn per crop and grayscale (docs/fidelity.md)."""
    from .fidelity import colour_fidelity, format_rows, natural_photos, resize_fidelity

    spec = _spec(crops)
    _positive("--epochs", epochs)
    if device not in ("cpu", "gpu"):
        _fail(f"--device must be cpu or gpu, got '{device}'")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        _fail("fidelity compares with torchvision on PIL images: pip install torchvision (make install brings it)")
    try:
        photos = natural_photos() if images is None else _images_in(images)
        rows = resize_fidelity(spec, photos, device=device, epochs=epochs)
        rows += colour_fidelity(spec, photos, device=device, epochs=epochs)
    except ValueError as exc:
        _fail(str(exc))
    for line in format_rows(rows, f"{crops} ({spec}) on {len(photos)} images, the {device} graph, against "
                                  f"torchvision on PIL (code values, 0-255)"):
        typer.echo(line)


def _images_in(folder: Path) -> list[Any]:
    """The images under ``folder`` as RGB arrays, or a ValueError naming the folder."""
    import numpy as np
    from PIL import Image

    if not folder.is_dir():
        raise ValueError(f"--images {folder}: not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise ValueError(f"--images {folder}: no PNG or JPEG image in it")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths[:64]]


@app.command()
def doctor() -> None:
    """Print what this machine gives the GPU path (driver, torch's and DALI's CUDA, GPUs and their hardware JPEG
    decoder, versions) and what does not fit, with the fix; exit code 1 when something does not."""
    from .doctor import diagnose, problems, report

    env = diagnose()
    for line in report(env):
        typer.echo(line)
    found = problems(env)
    for line in found:
        typer.echo(f"problem: {line}")
    if not found:
        typer.echo("ok: " + ("the GPU path can run" if env.torch_sees_cuda else "no NVIDIA driver: the CPU path "
                             "(device='cpu') runs the same graph"))
    raise typer.Exit(1 if found else 0)


@app.command()
def presets(describe: bool = typer.Option(False, "--describe", help="Also print each recipe's full description "
                                          "(its sources and how it differs from the original).")) -> None:
    """List the shipped recipes (pipelines/): per recipe what it is, and a table of its crop groups."""
    from rich.table import Table

    console = _wide_console(140)
    for name in list_presets():
        text = load_preset_description(name)
        spec = load_preset(name)
        what = text.split(" (")[0].split(":")[0]  # "DINO's multi-crop (Caron et al. 2021; ...): ..." -> its name
        table = Table(title=f"{name}: {what}", title_justify="left", expand=False)
        for column in ("group", "crops", "area (scale)", "aspect", "flip", "jitter p: b c s h", "gray", "blur",
                       "solarize"):
            table.add_column(column)
        for i, g in enumerate(spec.groups):
            j = g.color_jitter
            area = f"{g.center:g} of the side (eval)" if g.center is not None else f"{g.scale[0]:g}-{g.scale[1]:g}"
            table.add_row("global" if i < spec.num_global_groups else "local", f"{g.count}x{g.size}", area,
                          f"{g.ratio[0]:.3g}-{g.ratio[1]:.3g}", f"{g.flip_prob:g}",
                          f"{j.probability:g}: {j.brightness:g} {j.contrast:g} {j.saturation:g} {j.hue:g}",
                          f"{g.grayscale_prob:g}", f"{g.blur_prob:g}", f"{g.solarize_prob:g}")
        console.print(table)
        if describe:
            console.print(text, highlight=False)
        console.print()


def _print_groups(parsed: MultiCropSpec) -> None:
    for i, group in enumerate(parsed.groups):
        kind = "global" if i < parsed.num_global_groups else "local"
        fields = ", ".join(f"{f.name}={getattr(group, f.name)!r}" for f in dataclasses.fields(group)
                           if f.name not in ("count", "size"))
        typer.echo(f"{kind}: {group.count}x{group.size}  {fields}")


@app.command()
def crops(spec: str = typer.Argument(..., help=CROPS_HELP)) -> None:
    """Show the recipe a crop spec or preset expands to, one line per group."""
    _print_groups(_spec(spec))


def _resolved(function: Any, given: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    """``function``'s keyword arguments as a config resolves them: every one, the file's marked ``(file)``."""
    parts = []
    for name, parameter in inspect.signature(function).parameters.items():
        if name in ("self",) + skip or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name in given:
            parts.append(f"{name}={given[name]!r} (file)")
        elif parameter.default is not inspect.Parameter.empty:
            parts.append(f"{name}={parameter.default!r}")
    return ", ".join(parts)


def _first_sentence(text: str) -> str:
    """The first sentence of a YAML file's leading comment (its lines joined; a sentence ends at a full stop
    before a capital letter or at the comment's end)."""
    import re

    comment = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("# ").strip())
    words = " ".join(comment)
    end = re.search(r"\.(?=\s+[A-Z])", words)
    return words[:end.end()] if end else words


@app.command("config")
def config_command(
    path: Optional[str] = typer.Argument(None, help="The training config to check: a YAML file or a shipped config's "
                                         "name (see --list)."),
    list_: bool = typer.Option(False, "--list", help="List the shipped configs."),
) -> None:
    """Validate a training config and print the whole configuration it resolves to (crops, loader, masks,
    curriculum; defaults included, the file's own values marked)."""
    from .config import _shipped, list_configs

    if list_:
        for name in list_configs():
            typer.echo(f"{name}: {_first_sentence((_shipped() / f'{name}.yaml').read_text())}")
        return
    if path is None:
        _fail("give a config (a YAML file or a shipped config's name), or --list")
    cfg = _config(path)  # a file, else a shipped config's name
    from .loader import DaliMultiCropLoader
    from .masking import MultiCropMaskGenerator, PatchMaskGenerator

    for section, cls, given in (("masking", MultiCropMaskGenerator, cfg.masking),
                                ("patch_masking", PatchMaskGenerator, cfg.patch_masking)):
        if given:
            try:
                cls(cfg.spec, **given)
            except ValueError as exc:
                _fail(f"{cfg.origin}: {section}: {exc}")
    typer.echo(f"crops: {cfg.spec} ({cfg.spec.num_global} global)")
    _print_groups(cfg.spec)
    typer.echo(f"data path: {cfg.path or '(not set: pass source=... to DaliMultiCropLoader.from_config)'}")
    typer.echo("loader: " + _resolved(DaliMultiCropLoader.__init__, cfg.loader, ("source", "crops", "curriculum")))
    typer.echo("masking: " + (_resolved(MultiCropMaskGenerator.__init__, cfg.masking, ("crops", "curriculum"))
                              if cfg.masking else "(none)"))
    typer.echo("patch_masking: " + (_resolved(PatchMaskGenerator.__init__, cfg.patch_masking, ("crops",))
                                    if cfg.patch_masking else "(none)"))
    if cfg.curriculum is None:
        typer.echo("curriculum: (none)")
    else:
        ramps = [f"{f.name}: {getattr(cfg.curriculum, f.name)}" for f in dataclasses.fields(cfg.curriculum)
                 if getattr(cfg.curriculum, f.name) is not None]
        typer.echo("curriculum: " + "; ".join(ramps))


@app.command("check-data")
def check_data(
    folder: Path = typer.Argument(..., help="The image folder to scan (root/<class>/<images>, as the loader reads)."),
    min_size: int = typer.Option(96, "--min-size", help="Report images whose shorter side is below this (pixels); "
                                                       "e.g. the smallest crop.", show_default=True),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads. Default: every core."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write every finding to this JSON file."),
) -> None:
    """Scan a dataset for files that would stop training (unreadable, not images, truncated, unsupported) and
    awkward ones (tiny, grayscale, CMYK); exit code 1 when anything would fail training."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .badsamples.scan import FAILING, NOTED, check_files
    from .badsamples.validation import ValidatorUnavailable

    _positive("--min-size", min_size, 1)
    threads = _positive("--threads", threads) if threads is not None else visible_cores()
    try:
        files = FileList.from_folder(folder).files
    except ValueError as exc:
        _fail(str(exc))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("checking", total=2 * len(files))
        try:
            found = check_files(files, min_size=min_size, threads=threads, tick=lambda n: progress.advance(task, n))
        except ValidatorUnavailable as exc:
            _fail(str(exc))
    counts = found.counts()
    typer.echo(f"{found.files} files in {found.seconds:.1f} s ({found.files_per_s:,.0f} files/s, {threads} threads)")
    for category in FAILING + NOTED:
        mark = "FAIL" if category in FAILING and counts[category] else "    "
        typer.echo(f"{mark} {category:<12} {counts[category]}")
        for path, why in list(found.found[category].items())[:5]:
            typer.echo(f"       {why if category in FAILING else f'{path}: {why}'}")
        if counts[category] > 5:
            typer.echo(f"       ... {counts[category] - 5} more" + ("" if report else " (--report FILE lists all)"))
    if report is not None:
        found.write(report)
        typer.echo(f"report: {report}")
    if found.fails_training:
        typer.echo("training would stop on the files above: fix or remove them, or train with on_error='skip'")
        raise typer.Exit(code=1)


@app.command("index-shards")
def index_shards(
    shards: List[str] = typer.Argument(..., help="Tar shards: paths, brace patterns (train-{000000..000127}.tar) "
                                                 "or s3:// URLs."),
    out_dir: Optional[str] = typer.Option(None, "--out-dir", help="Write the index files here (a folder or an "
                                                                 "s3:// prefix). Default: beside each shard."),
    force: bool = typer.Option(False, "--force", help="Re-create index files that exist."),
) -> None:
    """Write DALI's index file for each WebDataset tar shard (train-000.tar -> train-000.idx), so loaders start
    without scanning the shards."""
    try:
        paths = expand_shards(shards)
        made = 0
        for shard in paths:
            target = index_path_for(shard, out_dir)
            if not force and s3.read_text_if_exists(target) is not None:
                typer.echo(f"kept    {target}")
                continue
            if out_dir and not s3.is_s3(out_dir):
                Path(out_dir).mkdir(parents=True, exist_ok=True)
            write_index(shard, target)
            made += 1
            typer.echo(f"indexed {shard} -> {target}")
    except (ValueError, ImportError) as exc:
        _fail(str(exc))
    typer.echo(f"{made} index file(s) written, {len(paths) - made} kept")


if __name__ == "__main__":  # pragma: no cover
    app()
