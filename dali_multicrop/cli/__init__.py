"""The ``dali-multicrop`` command line (typer): ``bench`` (throughput of each backend), ``overhead`` (the graph's
fixed cost per batch and its GIL time), ``preview`` (a picture of the crops and masks), ``doctor`` (the install),
``presets``, ``crops`` (a spec's groups), ``config`` (a resolved training config), ``check-data`` (a dataset scanned
for bad files) and ``index-shards`` (tar shards' index files).

Every bad option ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import typer

from .. import __version__
from .common import app
from . import measure, look, recipes, data  # noqa: E402,F401  (each registers its commands, in this order)

__all__ = ["app"]


@app.callback(invoke_without_command=True)
def main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
