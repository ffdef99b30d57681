"""The loader's Python under the GIL, per batch: what it takes from a training thread that needs the GIL to launch
its kernels.

Measured from outside with py-spy's GIL sampling (``py-spy record --gil --nonblocking``: each sample is taken from
the thread holding the GIL, whichever it is — the training loop, DALI's threads running the feed or a Python step,
the loader's own threads — and none is taken while no thread holds it). A program (this module with ``--run``)
builds a loader over tiny images (``TINY_HW`` JPEGs, the crops shrunk as in :mod:`.overhead`; the device's default
graph), warms it up, then waits while py-spy attaches to
it, takes ``batches`` batches and exits at once: the samples over the batches are the GIL time of one steady batch
(start-up and warm-up are never sampled; a full garbage collection ends the warm-up, so that one start-up made due
does not land in the sampled batches). ``bare`` is the least a DALI loader of these files does:
``fn.readers.file`` -> ``fn.decoders.image`` -> ``DALIGenericIterator`` (two outputs).

:func:`measure_ready` times the same programs from inside, without py-spy: the wall time of each call for the next
batch when DALI already holds it (the loop sleeps between calls, long enough that DALI's queue is full), i.e. what
a training step pays the loader per batch on the host, GIL held or not; on an isolated core that is an upper bound
of the GIL time, and it moves by about ±0.1 ms between runs where py-spy's count moves by up to 1 ms (measured on a
2-core machine, ``bench/README.md``).

Isolated (the default where the process may run on two cores or more): the training thread gets a core of its own,
as on a many-core GPU host, and DALI's threads and py-spy share the others (:func:`core_split`). Without that, on a
machine whose cores DALI's threads fill, the OS preempts the training thread while it holds the GIL and py-spy
counts the preempted time as GIL time: on a 2-core machine that doubled the figure and made it grow with the
batch's wall time (``bench/README.md``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..common.checks import install_hint

__all__ = ["GilResult", "ReadyResult", "bare_pipeline", "core_split", "measure_gil", "measure_ready", "py_spy"]

WARMUP = 8
"""Batches the measured program takes before its steady loop."""

KINDS = ("loader", "parquet", "bare", "bare-crops", "bare-pixels", "feed-decode")
"""What is measured: the project's loader; the loader over the same images as one Parquet file
(:func:`~dali_multicrop.benchmark.sources.write_parquet`: the fetch threads' Python for each row counts); the bare
DALI loader of the same files (two outputs); the bare loader with one plain resize of the decoded image per crop of
``crops`` as outputs (``n + 1`` of them: DALI's own cost of handing over as many outputs as the loader);
``bare-pixels``, the bare loader running per crop the pixel operators of the loader's (a resize of a fixed window,
:mod:`dali_multicrop.graph.augment`'s own; a fixed colour map, DALI's ``fn.coord_transform``; the normalisation,
:mod:`dali_multicrop.graph.augment`'s), on the loader's executor, with nothing drawn: DALI's own cost of the crops'
operators, the reference for how the loader's own cost grows with the crops; or ``feed-decode``, the loader's own
head alone: its feed's paths through DALI's external source, read and decoded by the decode-only graph (``bench
--backend decode-cpu``'s), no crops: what feeding its own epoch plans costs, where in the bare loader a DALI reader
picks the samples itself."""


def core_split() -> Optional[tuple[int, set[int]]]:
    """``(training core, the other cores)`` of this process's affinity mask (the training thread takes the highest
    core), or None (then nothing is isolated) where it has fewer than two cores or the OS has no per-thread affinity
    masks (Linux has them)."""
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return cores[-1], set(cores[:-1])


def py_spy() -> Optional[str]:
    """The py-spy executable: on ``PATH``, or beside the running Python (a virtual environment's ``bin`` that is not
    on ``PATH``); None where it is not installed (the ``bench`` extra brings it)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None)


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
    isolated: bool = False
    """Whether the training thread had a core of its own (see the module)."""
    device: str = "cpu"
    """The loader's graph: ``cpu``, or ``gpu`` (its host side is what a GPU run pays per batch)."""


@dataclass
class ReadyResult:
    """Host milliseconds per call for a batch DALI already holds (:func:`measure_ready`): the median and the 10th
    and 90th percentiles over ``batches`` calls."""

    kind: str
    crops: str
    batch_size: int
    threads: int
    batches: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    isolated: bool
    device: str = "cpu"


def _count_samples(raw: Path) -> int:
    """Samples in py-spy's raw (collapsed stack) output: each line ends with its count."""
    total = 0
    for line in raw.read_text().splitlines():
        head, _, count = line.rpartition(" ")
        if head and count.isdigit():
            total += int(count)
    return total


def _record(args: list[str], rate: int, out: Path, others: Optional[set[int]]) -> int:
    """Samples py-spy takes of the measured program's steady loop: the program warms up, says so, and waits; py-spy
    attaches (on the ``others`` cores, where given); the program then runs its loop and exits at once (py-spy stops
    with it)."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError(f"py-spy is not installed ({install_hint('py-spy', 'bench')})")
    with subprocess.Popen([sys.executable, "-m", __name__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as program:
        try:
            assert program.stdout is not None and program.stdin is not None
            if program.stdout.readline().strip() != "warm":
                raise RuntimeError(f"the measured program failed to start (exit code {program.wait()})")
            with subprocess.Popen([exe, "record", "--pid", str(program.pid), "--gil", "--nonblocking", "--rate",
                                   str(rate), "--format", "raw", "-o", str(out)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as spy:
                if others is not None:  # off the training thread's core (py-spy samples from its own process)
                    os.sched_setaffinity(spy.pid, others)
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


def _program(kind: str, crops: str, data: str, batch_size: int, threads: int, batches: int,
             isolate: bool, device: str = "cpu") -> tuple[list[str], Optional[tuple[int, set[int]]]]:
    """The measured program's arguments for ``kind`` on ``device`` (both checked) and the core split it runs with
    (None: not isolated)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if device not in ("cpu", "gpu") or (device == "gpu" and kind not in ("loader", "parquet")):
        raise ValueError(f"device must be 'cpu', or 'gpu' for the loader (the bare references run on the CPU), got "
                         f"{device!r} for {kind!r}")
    split = core_split() if isolate else None
    args = ["--run", kind, "--crops", crops, "--data", data, "--batch-size", str(batch_size), "--threads",
            str(threads), "--batches", str(batches), "--device", device]
    if split is not None:
        args += ["--training-core", str(split[0])]
    return args, split


def measure_gil(kind: str, crops: str, data: str, batch_size: int = 256, threads: int = 2, batches: int = 40,
                rate: int = 1000, isolate: bool = True, device: str = "cpu") -> GilResult:
    """GIL ms per steady batch (see the module) of ``kind`` over the tiny images in ``data``; ``rate`` in samples per
    second; ``isolate``: the training thread on a core of its own where there are two or more (see the module);
    ``device``: the loader's graph, ``cpu`` or ``gpu`` (the bare references run on the CPU)."""
    args, split = _program(kind, crops, data, batch_size, threads, batches, isolate, device)
    with tempfile.TemporaryDirectory() as tmp:
        samples = _record(args, rate, Path(tmp) / "raw.txt", split[1] if split is not None else None)
    return GilResult(kind=kind, crops=crops, batch_size=batch_size, threads=threads, rate_hz=rate, batches=batches,
                     samples=samples, gil_ms_per_batch=round(samples / rate / batches * 1e3, 2),
                     isolated=split is not None, device=device)


def measure_ready(kind: str, crops: str, data: str, batch_size: int = 256, threads: int = 2, batches: int = 60,
                  isolate: bool = True, device: str = "cpu") -> ReadyResult:
    """Host ms per call for a batch that is ready (see the module) of ``kind`` over the tiny images in ``data``;
    ``isolate`` and ``device`` as for :func:`measure_gil`."""
    args, split = _program(kind, crops, data, batch_size, threads, batches, isolate, device)
    done = subprocess.run([sys.executable, "-m", __name__, *args, "--ready"], capture_output=True, text=True,
                          timeout=900)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the measured program failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    times = np.array(json.loads(lines[-1])) * 1e3
    p10, median, p90 = (round(float(np.percentile(times, q)), 3) for q in (10, 50, 90))
    return ReadyResult(kind=kind, crops=crops, batch_size=batch_size, threads=threads, batches=batches,
                       median_ms=median, p10_ms=p10, p90_ms=p90, isolated=split is not None, device=device)


def _ready_times(it: Any, batches: int) -> list[float]:
    """Seconds of each of ``batches`` calls ``next(it)``, each after a sleep of twice DALI's own time per batch, so
    that the batch asked for is ready. DALI's time is measured first: eight calls back to back, the last four
    timed (the first four empty the queue the warm-up left full)."""
    for _ in range(4):
        next(it)
    start = time.perf_counter()
    for _ in range(4):
        next(it)
    pace = (time.perf_counter() - start) / 4
    times = []
    for _ in range(batches):
        time.sleep(2.0 * pace)
        t = time.perf_counter()
        next(it)
        times.append(time.perf_counter() - t)
    return times


def _isolate(training_core: int) -> None:
    """Moves this process's main thread to ``training_core`` and every other thread of it (DALI's, and any a
    library started at import, such as a BLAS pool) to its other cores. Linux: a thread id is a valid ``pid`` for
    ``sched_setaffinity``, and ``/proc/self/task`` lists them."""
    main = threading.get_native_id()
    others = os.sched_getaffinity(0) - {training_core}
    for tid in (int(t) for t in os.listdir("/proc/self/task")):
        try:
            os.sched_setaffinity(tid, {training_core} if tid == main else others)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


_FIXED_COLOUR = [0.9, 0.1, 0.0, 4.0, 0.0, 1.1, 0.0, -3.0, 0.1, 0.0, 0.9, 2.0]
"""``bare-pixels``' colour map ``[M | T]``, 3x4 row by row (a constant: nothing drawn)."""


def bare_pipeline(kind: str, files: list[str], crops: str, batch_size: int, threads: int) -> tuple[Any, list[str]]:
    """The ``bare`` kinds' CPU pipeline over ``files`` (see :data:`KINDS`), not yet built, and its outputs' names
    (the last ``labels``, the reader being ``reader``)."""
    from nvidia.dali import fn, pipeline_def, types

    from ..graph import augment
    from ..recipes.presets import parse_crops
    from ..recipes.spec import IMAGENET_MEAN, IMAGENET_STD
    from .overhead import tiny_spec

    sizes = tiny_spec(parse_crops(crops)).sizes if kind != "bare" else ()
    pixels = kind == "bare-pixels"

    def crop(images: Any, i: int, size: int) -> Any:
        if not pixels:
            return fn.resize(images, size=[size, size])
        # a slightly different window per crop: identical operators would be merged into one by DALI
        out = fn.resize(images, roi_start=[0.01 * i, 0.0], roi_end=[1.0, 1.0], roi_relative=True, size=[size, size],
                        antialias=True)
        coloured = fn.coord_transform(out, MT=_FIXED_COLOUR, dtype=types.UINT8)
        return augment.normalize(coloured, IMAGENET_MEAN, IMAGENET_STD, types.FLOAT)

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, prefetch_queue_depth=2,
                  exec_dynamic=True if pixels else None)
    def bare() -> Any:
        encoded, labels = fn.readers.file(files=files, labels=list(range(len(files))), random_shuffle=True,
                                          name="reader")
        images = fn.decoders.image(encoded, device="cpu", output_type=types.RGB)
        if not sizes:
            return images, labels
        return (*(crop(images, i, size) for i, size in enumerate(sizes)), labels)

    names = [f"crop_{i}" for i in range(len(sizes))] if sizes else ["images"]
    return bare(), [*names, "labels"]


def _feed_decode(files: Any, batch_size: int, threads: int) -> Any:
    """The ``feed-decode`` kind's batches: one epoch of the decode-only graph over ``files`` (a FileList), fed by
    the project's :class:`~dali_multicrop.graph.feed.EpochFeed`, through ``DALIGenericIterator``."""
    from nvidia.dali.plugin.pytorch import DALIGenericIterator

    from ..graph.builder import GraphSettings, decode_only

    feed, plan, graph = decode_only(files, GraphSettings(device="cpu", batch_size=batch_size, num_threads=threads,
                                                         seed=0))
    feed.start(plan.epoch_plan(0))
    return iter(DALIGenericIterator(graph.pipeline, list(graph.names)))


def _run(kind: str, crops: str, data: str, batch_size: int, threads: int, batches: int,
         training_core: Optional[int] = None, ready: bool = False, device: str = "cpu") -> None:
    """The measured program: ``WARMUP`` batches, then (once told to go on stdin) ``batches`` more; ``data`` should
    hold enough images that the loop never reaches the end of an epoch. ``training_core``: after the warm-up, the
    main thread runs there alone (:func:`_isolate`). ``ready``: instead of waiting for py-spy, times ``batches``
    ready batches (:func:`_ready_times`) and prints the seconds as one JSON line. ``device``: the loader's graph
    (its default for that device)."""
    from ..sources import FileList

    files = FileList.from_folder(data)
    if kind.startswith("bare"):
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        pipeline, names = bare_pipeline(kind, list(files.files), crops, batch_size, threads)
        iterator = DALIGenericIterator(pipeline, names, reader_name="reader")

        def batches_of() -> Any:
            while True:
                yield from iterator
                iterator.reset()
        it = batches_of()
    elif kind == "feed-decode":
        it = _feed_decode(files, batch_size, threads)
    else:
        from ..loader.loader import DaliMultiCropLoader
        from ..recipes.presets import parse_crops
        from .overhead import tiny_spec

        # the loader as users get it: on the CPU its default graph (every pixel step an operator, the colour maps
        # compiled), on the GPU the GPU graph
        source: Any = files
        if kind == "parquet":
            from ..common.system import cache_dir
            from .sources import bench_source

            source = bench_source("parquet", files, cache_dir(), threads)
        loader = DaliMultiCropLoader(source, crops=tiny_spec(parse_crops(crops)), batch_size=batch_size,
                                     device=device, num_threads=threads, seed=0, drop_last=True)

        def batches_of() -> Any:
            while True:
                yield from loader
        it = batches_of()
    for _ in range(WARMUP):
        next(it)
    if training_core is not None:
        _isolate(training_core)
    # start the steady loop with the collector's counters at zero: a full collection that start-up's allocations
    # made due (about 0.1 s with torch imported) would otherwise fall into the few sampled batches by chance,
    # while the loop's own garbage (a few tracked objects per batch) still triggers what it triggers
    gc.collect()
    if ready:
        print(json.dumps(_ready_times(it, batches)), flush=True)
        os._exit(0)
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
    parser.add_argument("--training-core", type=int, default=None)
    parser.add_argument("--ready", action="store_true", help="time ready batches instead of waiting for py-spy")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="the loader's graph")
    args = parser.parse_args(argv)
    _run(args.run, args.crops, args.data, args.batch_size, args.threads, args.batches, args.training_core,
         args.ready, args.device)


if __name__ == "__main__":
    main()
