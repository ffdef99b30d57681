"""What on_error="skip" for tar shards would cost: DALI's webdataset reader against reading the same tar members
ourselves (a torch Dataset of their bytes at their offsets, the path where a bad sample can be replaced), on the
built-in sample data, alternating rounds.

    python bench/tar_skip.py [--images 1024] [--rounds 3] [--out bench/results/cpu-2core-tar-skip]

DALI's reader cannot leave a sample out or replace one, and its order (shards, shuffle buffer) is not known ahead,
so a skip mode must read the members itself; this measures that path's price.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tarfile
import time
from pathlib import Path

import numpy as np

from dali_multicrop import DaliMultiCropLoader, DatasetSource, FileList, TarShards
from dali_multicrop.benchmark.sources import cache_folder, write_tar_shards
from dali_multicrop.sample_data import ensure_sample_data


class TarMembers:
    """The image members of tar shards as a map-style dataset of ``(encoded bytes, label)``, read with ``pread``."""

    def __init__(self, shards: list[str]) -> None:
        self.items: list[tuple[str, int, int, int]] = []
        for shard in shards:
            with tarfile.open(shard) as tar:
                members = tar.getmembers()
            labels = {}
            for m in members:
                if m.name.endswith(".cls"):
                    with open(shard, "rb") as f:
                        f.seek(m.offset_data)
                        labels[m.name.rsplit(".", 1)[0]] = int(f.read(m.size))
            for m in members:
                if m.name.endswith(".jpg"):
                    self.items.append((shard, m.offset_data, m.size, labels.get(m.name.rsplit(".", 1)[0], 0)))
        self._fds: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[bytes, int]:
        shard, offset, size, label = self.items[i]
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(shard, os.O_RDONLY)
        return os.pread(fd, size, offset), label


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
    pattern = write_tar_shards(files, cache_folder() / f"tar-skip-{args.images}")
    shards = TarShards(pattern)
    members = TarMembers([str(p) for p in shards.paths])
    common = dict(crops=args.crops, batch_size=args.batch_size, device="cpu", seed=0)
    rates: dict[str, list[float]] = {"dali reader (tar)": [], "own reads (Dataset of members, skip works)": []}
    for _ in range(args.rounds):
        with DaliMultiCropLoader(shards, **common) as loader:
            rates["dali reader (tar)"].append(_epoch_rate(loader))
        with DaliMultiCropLoader(DatasetSource(members), on_error="skip", **common) as loader:
            rates["own reads (Dataset of members, skip works)"].append(_epoch_rate(loader))
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
