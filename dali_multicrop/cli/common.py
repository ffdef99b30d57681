"""What every command of the ``dali-multicrop`` command line shares: the typer app, the options' help texts, and
the checks that turn a bad option into one line on stderr and exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn, Optional, Union

import typer

from ..common.system import cache_dir
from ..recipes.presets import parse_crops
from ..sources import FileList
from ..recipes.spec import MultiCropSpec


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
    from ..recipes.config import load_config

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
    from ..sample_data import ensure_sample_data

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
    from ..masking import STRATEGIES

    if masks is not None and masks not in STRATEGIES:
        _fail(f"{option} must be one of {', '.join(STRATEGIES + also)}, got '{masks}'")
    return masks


