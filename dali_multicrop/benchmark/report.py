"""Writes a benchmark's results: a table for the terminal, JSON, CSV and a PNG chart, naming the machine."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Optional, Sequence

from .harness import BackendResult

__all__ = ["COLUMNS", "OVERHEAD_COLUMNS", "render_table", "notes", "overhead_table", "write_results"]

COLUMNS = [("backend", "backend"), ("status", "status"), ("images_per_s", "images/s"), ("crops_per_s", "crops/s"),
           ("batch_ms_p50", "batch p50 ms"), ("batch_ms_p99", "batch p99 ms"), ("peak_host_mib", "host MiB"),
           ("peak_gpu_mib", "GPU MiB"), ("cpu_percent", "CPU %"), ("masks_ms_p50", "masks ms")]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


OVERHEAD_COLUMNS = ("recipe", "as measured", "crops", "CPU graph ops", "GPU graph ops cpu/mixed/gpu", "decode ms",
                    "full CPU graph ms", "full / decode", "GPU graph host ms", "host / decode", "pixel floor ms",
                    "floor / decode", "GIL ms")
"""The columns of ``dali-multicrop overhead``'s table (the GIL's is headed with the batch size it was measured at)."""


def overhead_table(results: Sequence[Any], gil: dict[str, Any], gil_batch_size: int, title: str = "") -> Any:
    """A rich Table of ``overhead``: a row per :class:`~dali_multicrop.benchmark.overhead.OverheadResult`, its GIL
    figure from ``gil[recipe]`` (a :class:`~dali_multicrop.benchmark.gil.GilResult`; "-" where none), and a row for
    the bare DALI loader where ``gil`` has ``"bare"``."""
    from rich.table import Table

    table = Table(title=title or None)
    for label in OVERHEAD_COLUMNS:
        shown = f"{label} (batch {gil_batch_size})" if label == "GIL ms" else label
        table.add_column(shown, justify="left" if label in ("recipe", "as measured") else "right")
    for r in results:
        g = r.operators_gpu_graph
        table.add_row(r.recipe, r.tiny_spec, str(r.num_crops), str(r.operators_cpu_graph["cpu"]),
                      f"{g['cpu']}/{g['mixed']}/{g['gpu']}", f"{r.ms_decode:.1f}", f"{r.ms_full:.1f}",
                      f"{r.ratio:.2f}", f"{r.ms_host:.1f}", f"{r.host_ratio:.2f}", f"{r.ms_floor:.1f}",
                      f"{r.floor_ratio:.2f}", f"{gil[r.recipe].gil_ms_per_batch:.2f}" if r.recipe in gil else "-")
    if "bare" in gil:
        table.add_row("bare DALI loader", "read + decode", *["-"] * (len(OVERHEAD_COLUMNS) - 3),
                      f"{gil['bare'].gil_ms_per_batch:.2f}")
    return table


def render_table(results: Sequence[BackendResult], title: str = "") -> Any:
    """A rich Table: one row per backend; reasons for skipped or failed ones are in :func:`notes`."""
    from rich.table import Table

    table = Table(title=title or None)
    for _, label in COLUMNS:
        table.add_column(label, justify="left" if label in ("backend", "status") else "right", no_wrap=True)
    for r in results:
        row = r.as_dict()
        table.add_row(*(_cell(row[key]) if r.status == "ok" or key in ("backend", "status") else "-"
                        for key, _ in COLUMNS))
    return table


def notes(results: Sequence[BackendResult]) -> list[str]:
    """One line per backend that was skipped, failed, or left something out, saying why."""
    return [f"{r.backend}: {r.status}: {r.reason}" if r.status != "ok" else f"{r.backend}: {r.reason}"
            for r in results if r.reason]


def _chart(results: Sequence[BackendResult], path: Path, title: str) -> bool:
    """Draws the bar chart; False (nothing written) where matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.backend for r in results]
    values = [r.images_per_s or 0.0 for r in results]
    # the scale is set by the backends that make crops; decode-only rows are ceilings, cut at the edge
    making = [v for r, v in zip(results, values) if not r.backend.startswith("decode")]
    limit = max((making or values) + [1.0]) * 1.6
    widths = [min(v, limit * 0.97) for v in values]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(results) + 1.8), dpi=100)
    bars = ax.barh(names, widths, color=["#76b900" if r.backend.startswith("dali") else
                                         "#cccccc" if r.backend.startswith("decode") else "#8888aa" for r in results])
    for bar, r, v, w in zip(bars, results, values, widths):
        if r.status != "ok":
            text = f"{r.status}: {r.reason[:60]}"
        elif r.backend.startswith("decode"):
            text = f"{v:,.0f} img/s: ceiling, decode only, no crops" + (" (bar cut)" if w < v else "")
        else:
            text = f"{v:,.0f} img/s"
        ax.text(min(bar.get_width(), limit * 0.45) if w < v else bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f"  {text}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images per second (higher is better)")
    ax.set_xlim(0, limit)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_results(results: Sequence[BackendResult], config: dict[str, Any], machine: dict[str, Any],
                  folder: Path, title: Optional[str] = None) -> dict[str, Path]:
    """Writes ``results.json``, ``results.csv`` and ``chart.png`` into ``folder``; returns their paths (without
    ``"png"`` where matplotlib is not installed)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "results.json", "csv": folder / "results.csv", "png": folder / "chart.png"}
    payload = {"machine": machine, "config": config, "results": [r.as_dict() for r in results]}
    paths["json"].write_text(json.dumps(payload, indent=2) + "\n")
    fields = list(results[0].as_dict()) if results else [k for k, _ in COLUMNS]
    machine_cols = {"host": machine.get("host"), "cpu": machine.get("cpu"), "cores": machine.get("cores"),
                    "gpu": machine.get("gpu"), "driver": machine.get("driver")}
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields + list(machine_cols))
        writer.writeheader()
        for r in results:
            writer.writerow({**r.as_dict(), **machine_cols})
    gpu = machine.get("gpu") or "no GPU"
    chart_title = title or (f"{config.get('spec')} batch {config.get('batch_size')} — {machine.get('cpu')} "
                            f"({machine.get('cores')} cores), {gpu}")
    libraries = machine.get("libraries") or {}
    shown = ("nvidia-dali-cuda120", "nvidia-dali-cuda130", "torch", "torchvision", "albumentations")
    versions = ", ".join(f"{name} {libraries[name]}" for name in shown if libraries.get(name))
    if versions:
        chart_title += f"\n{versions}"
    if not _chart(results, paths["png"], chart_title):
        del paths["png"]
    return paths
