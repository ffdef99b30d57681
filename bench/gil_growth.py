"""How the loader's GIL time per batch grows with the batch size and the number of crops, against the bare loader's.

    python bench/gil_growth.py [--rounds 5] [--batches 100] [--measure gil,ready] [--out results/gil-growth.jsonl]

Each round measures, with :func:`dali_multicrop.benchmark.gil.measure_gil` (py-spy's GIL samples of the steady
loop) and :func:`~dali_multicrop.benchmark.gil.measure_ready` (the host ms of each call for a batch DALI already
holds, timed inside), tiny images, the training thread on a core of its own unless ``--no-isolate``:

- at batch ``--small`` and ``--large`` (crops ``2x224,6x96``): the loader, the bare DALI loader, the loader's head
  alone (``feed-decode``: its feed's paths through DALI's external source, read and decoded, no crops) and the bare
  loader running the loader's pixel operators per crop (``bare-pixels``: resize, colour map, normalisation, nothing
  drawn; as many outputs as the loader);
- at batch ``--small`` with few and many local crops (``2x224,2x96`` and ``2x224,10x96``): the loader, the bare
  loader with a plain resize per crop (``bare-crops``: as many outputs) and ``bare-pixels``.

The order of the cells turns by one each round, so that a drift of the machine does not always favour the same
cell. Printed: each cell's figure in every round and its median, and per round the paired growths (the same round's
large minus small batch, many minus few crops), whose spread is the measurement's.
One JSON line per measurement goes to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

from dali_multicrop.benchmark.gil import WARMUP, measure_gil, measure_ready, py_spy
from dali_multicrop.sample_data import ensure_tiny_data

FEW, MANY = "2x224,2x96", "2x224,10x96"


def cells(small: int, large: int) -> list[tuple[str, str, str, int]]:
    """``(name, kind, crops, batch size)`` of one round."""
    return [(f"loader {small}", "loader", "2x224,6x96", small), (f"loader {large}", "loader", "2x224,6x96", large),
            (f"bare {small}", "bare", "2x224,6x96", small), (f"bare {large}", "bare", "2x224,6x96", large),
            (f"feed-decode {small}", "feed-decode", "2x224,6x96", small),
            (f"feed-decode {large}", "feed-decode", "2x224,6x96", large),
            (f"bare-pixels {small}", "bare-pixels", "2x224,6x96", small),
            (f"bare-pixels {large}", "bare-pixels", "2x224,6x96", large),
            (f"loader {small} {FEW}", "loader", FEW, small), (f"loader {small} {MANY}", "loader", MANY, small),
            (f"bare-crops {small} {FEW}", "bare-crops", FEW, small),
            (f"bare-crops {small} {MANY}", "bare-crops", MANY, small),
            (f"bare-pixels {small} {FEW}", "bare-pixels", FEW, small),
            (f"bare-pixels {small} {MANY}", "bare-pixels", MANY, small)]


def measure(metric: str, kind: str, crops: str, data: str, batch: int, args: argparse.Namespace) -> dict:
    """One cell's measurement as a JSON-ready dict, its figure (ms per batch) under ``"ms"``."""
    common = dict(batch_size=batch, threads=args.threads, batches=args.batches, isolate=not args.no_isolate)
    if metric == "gil":
        result = dataclasses.asdict(measure_gil(kind, crops, data, **common))
        return {**result, "ms": result["gil_ms_per_batch"]}
    result = dataclasses.asdict(measure_ready(kind, crops, data, **common))
    return {**result, "ms": result["median_ms"]}


def report(found: dict[str, list[float]], small: int, large: int, title: str) -> None:
    """Prints the cells' figures and the paired growths (markdown tables)."""
    print(f"\n{title}\n\n| cell | ms per batch, each round | median |\n| --- | --- | --- |")
    for name, values in found.items():
        print(f"| {name} | {', '.join(f'{v:.3f}' for v in values)} | {statistics.median(values):.3f} |")

    def growth(low: str, high: str) -> list[float]:
        return [b - a for a, b in zip(found[low], found[high])]

    loader, bare = growth(f"loader {small}", f"loader {large}"), growth(f"bare {small}", f"bare {large}")
    head = growth(f"feed-decode {small}", f"feed-decode {large}")
    pixels = growth(f"bare-pixels {small}", f"bare-pixels {large}")
    crops, bare_crops, bare_pixels = (growth(f"{k} {small} {FEW}", f"{k} {small} {MANY}")
                                      for k in ("loader", "bare-crops", "bare-pixels"))
    rows = [(f"loader, batch {small} -> {large}", loader, large - small, "µs per sample"),
            (f"bare loader, batch {small} -> {large}", bare, large - small, "µs per sample"),
            ("loader's growth minus the bare loader's", [a - b for a, b in zip(loader, bare)], large - small,
             "µs per sample"),
            (f"the loader's head alone (feed-decode), batch {small} -> {large}", head, large - small, "µs per sample"),
            ("loader's growth minus its head's", [a - b for a, b in zip(loader, head)], large - small,
             "µs per sample"),
            (f"bare loader with the loader's pixel operators and outputs (bare-pixels), batch {small} -> {large}",
             pixels, large - small, "µs per sample"),
            ("loader's growth minus the bare-pixels loader's", [a - b for a, b in zip(loader, pixels)],
             large - small, "µs per sample"),
            (f"loader, {FEW} -> {MANY} (batch {small})", crops, 8 * small, "µs per crop"),
            (f"bare loader with a resize per crop, {FEW} -> {MANY}", bare_crops, 8 * small, "µs per crop"),
            ("loader's growth minus the bare-crops loader's", [a - b for a, b in zip(crops, bare_crops)], 8 * small,
             "µs per crop"),
            (f"bare loader with the loader's pixel operators per crop, {FEW} -> {MANY}", bare_pixels, 8 * small,
             "µs per crop"),
            ("loader's growth minus the bare-pixels loader's", [a - b for a, b in zip(crops, bare_pixels)],
             8 * small, "µs per crop")]
    print("\n| growth, same round | each round (ms) | median | per unit |\n| --- | --- | --- | --- |")
    for name, values, unit, label in rows:
        median = statistics.median(values)
        print(f"| {name} | {', '.join(f'{v:+.3f}' for v in values)} | {median:+.3f} | "
              f"{median / unit * 1e3:+.3f} {label} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=100, help="measured batches per cell")
    parser.add_argument("--small", type=int, default=128)
    parser.add_argument("--large", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2, help="DALI threads")
    parser.add_argument("--measure", default="gil,ready", help="gil (py-spy's samples), ready (host ms per "
                        "ready batch, timed inside), or both")
    parser.add_argument("--out", type=Path, default=Path("results/gil-growth.jsonl"))
    parser.add_argument("--no-isolate", action="store_true", help="leave the training thread's core shared")
    args = parser.parse_args(argv)
    metrics = [m for m in args.measure.split(",") if m]
    if not metrics or set(metrics) - {"gil", "ready"}:
        sys.exit(f"--measure takes gil, ready or both, got {args.measure!r}")
    if "gil" in metrics and py_spy() is None:
        sys.exit("py-spy is not installed (pip install 'dali-multicrop[bench]'); --measure ready needs none")
    data = str(ensure_tiny_data(max(65536, (WARMUP + args.batches + 8) * args.large)))
    grid = cells(args.small, args.large)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    found = {m: {name: [] for name, *_ in grid} for m in metrics}
    with args.out.open("a") as log:
        for r in range(args.rounds):
            for name, kind, crops, batch in grid[r % len(grid):] + grid[:r % len(grid)]:
                for metric in metrics:
                    result = measure(metric, kind, crops, data, batch, args)
                    found[metric][name].append(result["ms"])
                    log.write(json.dumps({"round": r, "cell": name, "metric": metric, **result}) + "\n")
                    log.flush()
                    print(f"round {r + 1}/{args.rounds} {name} {metric}: {result['ms']:.3f} ms", file=sys.stderr)
    titles = {"gil": "GIL ms per batch (py-spy)", "ready": "host ms per ready batch (timed inside)"}
    for metric in metrics:
        report(found[metric], args.small, args.large, titles[metric])

if __name__ == "__main__":
    main()
