"""Long-run checks: host memory, threads and open files over thousands of batches, and over many loaders made
and dropped. ``make soak`` runs them as tests (``tests/test_soak.py``, marker ``slow``);
``python -m dali_multicrop.benchmark.soak --out DIR`` writes the figures as JSON.

Measured on tiny images (:func:`~dali_multicrop.sample_data.ensure_tiny_data`, 256 per epoch) so that the run
crosses an epoch boundary every few batches: the loader's own state, not image decoding, is what is soaked.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

__all__ = ["Usage", "usage", "soak_batches", "churn_loaders", "tiny_source"]

CROPS = "2x32,4x16"


@dataclass(frozen=True)
class Usage:
    """What the process holds: resident memory (MiB), threads (DALI's native ones included), open files."""

    rss_mib: float
    threads: int
    fds: int


def usage() -> Usage:
    """This process's :class:`Usage` now (Linux ``/proc``)."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return Usage(rss_mib=int(fields["VmRSS"].split()[0]) / 1024, threads=int(fields["Threads"]),
                 fds=len(os.listdir("/proc/self/fd")))


def _loader(folder: str, batch_size: int, device: str = "cpu"):
    from ..loader.loader import DaliMultiCropLoader

    return DaliMultiCropLoader(folder, crops=CROPS, batch_size=batch_size, device=device, num_threads=2, seed=1)


def tiny_source(kind: str = "folder", images: int = 256) -> str:
    """The tiny images as a ``folder`` or as ``tar`` shards (64 per shard: the tar loader builds a pipeline
    per epoch, so a tar soak also soaks that)."""
    from ..common.system import cache_dir
    from ..sample_data import ensure_tiny_data
    from ..sources import FileList
    from .sources import write_tar_shards

    folder = ensure_tiny_data(images)
    if kind == "folder":
        return str(folder)
    return write_tar_shards(FileList.from_folder(folder), cache_dir() / f"soak-shards-{images}", 64)


def soak_batches(batches: int = 2000, every: int = 100, batch_size: int = 32, source: Optional[str] = None,
                 ) -> list[dict]:
    """Runs ``batches`` batches, epoch after epoch, through one loader over ``source`` (default the tiny
    folder); a :class:`Usage` sample (with the batch count and seconds) every ``every`` batches, the first after
    the first batch."""
    loader = _loader(source or tiny_source(), batch_size)
    samples, done, start = [], 0, time.perf_counter()
    while done < batches:
        for _ in loader:
            done += 1
            if done == 1 or done % every == 0:
                samples.append({"batch": done, "seconds": round(time.perf_counter() - start, 2),
                                **asdict(usage())})
            if done >= batches:
                break
    loader.close()
    return samples


def churn_loaders(count: int = 50, warmup: int = 10, batch_size: int = 16, images: int = 256,
                  folder: Optional[str] = None) -> dict:
    """Makes, uses (one batch) and drops ``count`` loaders after ``warmup`` ones; :class:`Usage` before and
    after the ``count`` (no ``gc.collect()`` between them: reference counting alone must free each), and after a
    collection and handing the C heap's freed memory back to the OS (``after_trim``: what is left is held, not
    garbage or fragments)."""
    from ..common.system import release_freed_memory
    from ..sample_data import ensure_tiny_data

    folder = folder or str(ensure_tiny_data(images))

    def one() -> None:
        loader = _loader(folder, batch_size)
        next(iter(loader))

    for _ in range(warmup):
        one()
    gc.collect()
    release_freed_memory()
    before = usage()
    gc.disable()
    try:
        for _ in range(count):
            one()
        after = usage()
    finally:
        gc.enable()
    from ..common.system import release_freed_memory

    gc.collect()
    release_freed_memory()
    return {"loaders": count, "warmup": warmup, "before": asdict(before), "after": asdict(after),
            "after_trim": asdict(usage())}


def main() -> None:  # pragma: no cover - a measurement, run by hand or by `make soak`
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--loaders", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("results/soak"))
    args = parser.parse_args()
    from .environment import describe_machine

    result = {"machine": describe_machine(), "crops": CROPS, "batches": soak_batches(args.batches),
              "tar_batches": soak_batches(args.batches, source=tiny_source("tar")),
              "churn": churn_loaders(args.loaders)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    for key in ("batches", "tar_batches"):
        first, last = result[key][1], result[key][-1]
        print(f"{key} {first['batch']}->{last['batch']}: RSS {first['rss_mib']:.1f}->{last['rss_mib']:.1f} MiB, "
              f"threads {first['threads']}->{last['threads']}, fds {first['fds']}->{last['fds']}")
    churn = result["churn"]
    print(f"{churn['loaders']} loaders: {churn['before']} -> {churn['after']}")


if __name__ == "__main__":  # pragma: no cover
    main()
