"""How the loader's GIL time per batch grows with the batch size and the number of crops, against the bare loader's.

    python bench/gil_growth.py [--rounds 5] [--batches 100] [--out results/gil-growth.jsonl] [--no-isolate]

Each round measures, with :func:`dali_multicrop.benchmark.gil.measure_gil` (py-spy's GIL samples of the steady
loop, tiny images, the training thread on a core of its own unless ``--no-isolate``), the loader and the bare DALI
loader at batch ``--small`` and ``--large`` (crops ``2x224,6x96``), and the loader and the bare loader with a plain
resize per crop (``bare-crops``: as many outputs) at batch ``--small`` with few and many local crops (``2x224,2x96``
and ``2x224,10x96``); the order of the cells turns by one each round, so that a drift
of the machine does not always favour the same cell. Printed: each cell's median and range over the rounds, and per
round the paired growths (the same round's large minus small batch, many minus few crops), whose spread is the
measurement's. One JSON line per measurement goes to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

from dali_multicrop.benchmark.gil import WARMUP, measure_gil, py_spy
from dali_multicrop.sample_data import ensure_tiny_data

FEW, MANY = "2x224,2x96", "2x224,10x96"


def cells(small: int, large: int) -> list[tuple[str, str, str, int]]:
    """``(name, kind, crops, batch size)`` of one round."""
    return [(f"loader {small}", "loader", "2x224,6x96", small), (f"loader {large}", "loader", "2x224,6x96", large),
            (f"bare {small}", "bare", "2x224,6x96", small), (f"bare {large}", "bare", "2x224,6x96", large),
            (f"loader {small} {FEW}", "loader", FEW, small), (f"loader {small} {MANY}", "loader", MANY, small),
            (f"bare-crops {small} {FEW}", "bare-crops", FEW, small),
            (f"bare-crops {small} {MANY}", "bare-crops", MANY, small)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=100, help="sampled batches per measurement")
    parser.add_argument("--small", type=int, default=128)
    parser.add_argument("--large", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2, help="DALI threads")
    parser.add_argument("--out", type=Path, default=Path("results/gil-growth.jsonl"))
    parser.add_argument("--no-isolate", action="store_true", help="leave the training thread's core shared")
    args = parser.parse_args(argv)
    if py_spy() is None:
        sys.exit("py-spy is not installed (pip install 'dali-multicrop[bench]')")
    data = str(ensure_tiny_data(max(65536, (WARMUP + args.batches + 2) * args.large)))
    grid = cells(args.small, args.large)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    found: dict[str, list[float]] = {name: [] for name, *_ in grid}
    with args.out.open("a") as log:
        for r in range(args.rounds):
            for name, kind, crops, batch in grid[r % len(grid):] + grid[:r % len(grid)]:
                result = measure_gil(kind, crops, data, batch_size=batch, threads=args.threads,
                                     batches=args.batches, isolate=not args.no_isolate)
                found[name].append(result.gil_ms_per_batch)
                log.write(json.dumps({"round": r, "cell": name, **dataclasses.asdict(result)}) + "\n")
                log.flush()
                print(f"round {r + 1}/{args.rounds} {name}: {result.gil_ms_per_batch:.2f} ms", file=sys.stderr)
    print("| cell | GIL ms per batch, each round | median |\n| --- | --- | --- |")
    for name, values in found.items():
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {statistics.median(values):.2f} |")
    s, la = args.small, args.large

    def growth(low: str, high: str) -> list[float]:
        return [b - a for a, b in zip(found[low], found[high])]

    loader, bare = growth(f"loader {s}", f"loader {la}"), growth(f"bare {s}", f"bare {la}")
    rows = [(f"loader, batch {s} -> {la}", loader, la - s, "µs per sample"),
            (f"bare loader, batch {s} -> {la}", bare, la - s, "µs per sample"),
            ("loader's growth minus the bare loader's", [a - b for a, b in zip(loader, bare)], la - s,
             "µs per sample"),
            (f"loader, {FEW} -> {MANY} (batch {s})", growth(f"loader {s} {FEW}", f"loader {s} {MANY}"), 8 * s,
             "µs per crop"),
            (f"bare loader with a resize per crop, {FEW} -> {MANY}", growth(f"bare-crops {s} {FEW}",
                                                                            f"bare-crops {s} {MANY}"), 8 * s,
             "µs per crop")]
    print("\n| growth, same round | each round (ms) | median | per unit |\n| --- | --- | --- | --- |")
    for name, values, unit, label in rows:
        median = statistics.median(values)
        print(f"| {name} | {', '.join(f'{v:+.2f}' for v in values)} | {median:+.2f} | "
              f"{median / unit * 1e3:+.3f} {label} |")

if __name__ == "__main__":
    main()
