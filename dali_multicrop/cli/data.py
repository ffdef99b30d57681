"""The commands about datasets: ``check-data`` (a dataset scanned for bad files) and ``index-shards`` (tar shards'
index files)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..common.system import visible_cores
from ..sources import FileList, s3
from ..sources.tar import expand_shards
from ..sources.tar_index import index_path_for, write_index

from .common import (app, _fail, _positive)


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

    from ..badsamples.scan import FAILING, NOTED, check_files
    from ..badsamples.validation import ValidatorUnavailable

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
