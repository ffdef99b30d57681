"""The commands about recipes and configs: ``presets``, ``crops`` (a spec's groups) and ``config`` (a resolved
training config)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Optional

import typer

from ..recipes.presets import list_presets, load_preset, load_preset_description
from ..recipes.spec import MultiCropSpec

from .common import (app, CROPS_HELP, _fail, _spec, _wide_console, _config)


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
    from ..recipes.config import _shipped, list_configs

    if list_:
        for name in list_configs():
            typer.echo(f"{name}: {_first_sentence((_shipped() / f'{name}.yaml').read_text())}")
        return
    if path is None:
        _fail("give a config (a YAML file or a shipped config's name), or --list")
    cfg = _config(path)  # a file, else a shipped config's name
    from ..loader.loader import DaliMultiCropLoader
    from ..masking import MultiCropMaskGenerator, PatchMaskGenerator

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


