"""The loader's Python under the GIL, per batch: what it takes from a training thread that needs the GIL to launch
its kernels.

Measured from outside with py-spy's GIL sampling (``py-spy record --gil --nonblocking``: each sample is taken from
the thread holding the GIL, whichever it is — the training loop, DALI's threads running the feed or a Python step,
the loader's own threads — and none is taken while no thread holds it). A program (this module with ``--run``)
builds a loader over tiny images (``TINY_HW`` JPEGs, the crops shrunk as in :mod:`.overhead`; the colour map as the
GPU graph runs it, an operator, not the CPU graph's OpenCV step), warms it up, then waits while py-spy attaches to
it, takes ``batches`` batches and exits at once: the samples over the batches are the GIL time of one steady batch
(start-up and warm-up are never sampled; a full garbage collection ends the warm-up, so that one start-up made due
does not land in the sampled batches). ``bare`` is the least a DALI loader of these files does:
``fn.readers.file`` -> ``fn.decoders.image`` -> ``DALIGenericIterator`` (two outputs).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

__all__ = ["GilResult", "measure_gil", "py_spy"]

WARMUP = 8
"""Batches the measured program takes before its steady loop."""

KINDS = ("loader", "bare")
"""What is measured: the project's loader, or the bare DALI loader of the same files."""


def py_spy() -> Optional[str]:
    """The py-spy executable, or None where it is not installed (the ``bench`` extra brings it)."""
    return shutil.which("py-spy")


@dataclass
class GilResult:
    """GIL milliseconds per steady batch of ``kind`` (see :data:`KINDS`) with ``crops`` (tiny) and ``batch_size``."""

    kind: str
    crops: str
    batch_size: int
    threads: int
    rate_hz: int
    batches: int
    samples: int
    gil_ms_per_batch: float


def _count_samples(raw: Path) -> int:
    """Samples in py-spy's raw (collapsed stack) output: each line ends with its count."""
    total = 0
    for line in raw.read_text().splitlines():
        head, _, count = line.rpartition(" ")
        if head and count.isdigit():
            total += int(count)
    return total


def _record(args: list[str], rate: int, out: Path) -> int:
    """Samples py-spy takes of the measured program's steady loop: the program warms up, says so, and waits; py-spy
    attaches; the program then runs its loop and exits at once (py-spy stops with it)."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install 'dali-multicrop[bench]')")
    with subprocess.Popen([sys.executable, "-m", __name__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as program:
        try:
            assert program.stdout is not None and program.stdin is not None
            if program.stdout.readline().strip() != "warm":
                raise RuntimeError(f"the measured program failed to start (exit code {program.wait()})")
            with subprocess.Popen([exe, "record", "--pid", str(program.pid), "--gil", "--nonblocking", "--rate",
                                   str(rate), "--format", "raw", "-o", str(out)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as spy:
                time.sleep(3.0)  # py-spy attaching; the program waits on its stdin meanwhile, holding no GIL
                program.stdin.write("go\n")
                program.stdin.flush()
                program.wait(timeout=600)
                log, _ = spy.communicate(timeout=60)
            if spy.returncode != 0 or not out.exists():
                raise RuntimeError(f"py-spy failed ({spy.returncode}): {log.strip()[-500:]}")
        finally:
            if program.poll() is None:
                program.kill()
    return _count_samples(out)


def measure_gil(kind: str, crops: str, data: str, batch_size: int = 256, threads: int = 2, batches: int = 40,
                rate: int = 1000) -> GilResult:
    """GIL ms per steady batch (see the module) of ``kind`` over the tiny images in ``data``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--run", kind, "--crops", crops, "--data", data, "--batch-size", str(batch_size),
                "--threads", str(threads), "--batches", str(batches)]
        samples = _record(args, rate, Path(tmp) / "raw.txt")
    return GilResult(kind=kind, crops=crops, batch_size=batch_size, threads=threads, rate_hz=rate, batches=batches,
                     samples=samples, gil_ms_per_batch=round(samples / rate / batches * 1e3, 2))


def _run(kind: str, crops: str, data: str, batch_size: int, threads: int, batches: int) -> None:
    """The measured program: ``WARMUP`` batches, then (once told to go on stdin) ``batches`` more; ``data`` should
    hold enough images that the loop never reaches the end of an epoch."""
    from ..sources import FileList

    files = FileList.from_folder(data)
    if kind == "bare":
        from nvidia.dali import fn, pipeline_def, types
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, prefetch_queue_depth=2)
        def bare():
            encoded, labels = fn.readers.file(files=list(files.files), labels=list(range(len(files))),
                                              random_shuffle=True, name="reader")
            return fn.decoders.image(encoded, device="cpu", output_type=types.RGB), labels

        iterator = DALIGenericIterator(bare(), ["images", "labels"], reader_name="reader")

        def batches_of() -> Any:
            while True:
                yield from iterator
                iterator.reset()
        it = batches_of()
    else:
        from ..loader import DaliMultiCropLoader
        from ..presets import parse_crops
        from .overhead import tiny_spec

        loader = DaliMultiCropLoader(files, crops=tiny_spec(parse_crops(crops)), batch_size=batch_size,
                                     device="cpu", num_threads=threads, seed=0, drop_last=True)
        # the GPU graph's Python is what is priced: its resizes and colour maps are operators, not the CPU graph's
        # OpenCV step
        loader.settings = dataclasses.replace(loader.settings, cpu_kernel="dali")

        def batches_of() -> Any:
            while True:
                yield from loader
        it = batches_of()
    for _ in range(WARMUP):
        next(it)
    # start the steady loop with the collector's counters at zero: a full collection that start-up's allocations
    # made due (about 0.1 s with torch imported) would otherwise fall into the few sampled batches by chance,
    # while the loop's own garbage (a few tracked objects per batch) still triggers what it triggers
    gc.collect()
    print("warm", flush=True)
    sys.stdin.readline()  # py-spy attaches meanwhile
    for _ in range(batches):
        next(it)
    os._exit(0)  # no shutdown work in the samples


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="the program measure_gil samples (see the module)")
    parser.add_argument("--run", choices=KINDS, required=True)
    parser.add_argument("--crops", default="2x224,6x96")
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args(argv)
    _run(args.run, args.crops, args.data, args.batch_size, args.threads, args.batches)


if __name__ == "__main__":
    main()
