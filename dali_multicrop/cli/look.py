"""The commands that show what the crops are: ``preview`` (a picture of the crops and masks), ``fidelity`` (the crops
against torchvision on PIL images) and ``doctor`` (the install)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer


from .common import (app, DEFAULT_CROPS, CROPS_HELP, CONFIG_HELP, _fail, _spec, _spec_or_config, _positive,
                     _check_data_folder, _data, _strategy)


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
    from ..loader.loader import DaliMultiCropLoader
    from ..masking import MultiCropMaskGenerator, PatchMaskGenerator
    from ..masking.patches import PATCH_STRATEGIES
    from ..preview import preview_size, render_preview

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
    from ..fidelity.table import colour_fidelity, format_rows, natural_photos, resize_fidelity

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
    from ..doctor import diagnose, problems, report

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


