"""What on_error="skip" costs over tar shards: DALI's webdataset reader (on_error="raise") against the loader
reading the same members itself (on_error="skip": ``TarMembers``, ``os.pread`` at the index files' offsets, the
path where a bad sample can be replaced), on the built-in sample data, alternating rounds, one epoch each.

    python bench/tar_skip.py [--images 1024] [--rounds 3] [--out bench/results/cpu-2core-tar-skip]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from dali_multicrop import DaliMultiCropLoader, FileList, TarShards
from dali_multicrop.common.system import cache_dir
from dali_multicrop.benchmark.sources import write_tar_shards
from dali_multicrop.sample_data import ensure_sample_data


def _epoch_rate(loader: DaliMultiCropLoader) -> float:
    it = iter(loader)
    next(it)  # the first batch pays for building the graph
    start, images = time.perf_counter(), 0
    for batch in it:
        images += batch.batch_size
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--crops", default="2x224,6x96")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    files = FileList.from_folder(ensure_sample_data(args.images))
    pattern = write_tar_shards(files, cache_dir() / f"tar-skip-{args.images}")
    shards = TarShards(pattern)
    common = dict(crops=args.crops, batch_size=args.batch_size, device="cpu", seed=0)
    rates: dict[str, list[float]] = {"raise: DALI's reader": [], "skip: the loader's own reads": []}
    for _ in range(args.rounds):
        with DaliMultiCropLoader(shards, **common) as loader:
            rates["raise: DALI's reader"].append(_epoch_rate(loader))
        with DaliMultiCropLoader(shards, on_error="skip", **common) as loader:
            rates["skip: the loader's own reads"].append(_epoch_rate(loader))
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "images": args.images, "crops": args.crops, "batch_size": args.batch_size,
              "img_per_s": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
              "median": {k: round(float(np.median(vs)), 1) for k, vs in rates.items()}}
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tar_skip.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
