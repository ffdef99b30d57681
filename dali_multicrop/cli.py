"""The ``dali-multicrop`` command line (typer)."""

from __future__ import annotations

import dataclasses

import typer

from . import __version__
from .spec import parse_crops

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Multi-crop views for self-supervised training, made by NVIDIA DALI.")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@app.callback(invoke_without_command=True)
def main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


@app.command()
def crops(spec: str = typer.Argument(..., help="Crop spec, COUNTxSIZE groups, e.g. 2x224,6x96.")) -> None:
    """Show the recipe a crop spec expands to, one line per group (first group global)."""
    try:
        parsed = parse_crops(spec)
    except ValueError as exc:
        _fail(str(exc))
    for i, group in enumerate(parsed.groups):
        kind = "global" if i == 0 else "local"
        fields = ", ".join(f"{f.name}={getattr(group, f.name)!r}" for f in dataclasses.fields(group)
                           if f.name not in ("count", "size"))
        typer.echo(f"{kind}: {group.count}x{group.size}  {fields}")


if __name__ == "__main__":  # pragma: no cover
    app()
