"""The graph's fixed cost per batch: operators by device, and the graph against its decode-only head on tiny
images.

On tiny images (``TINY_HW`` JPEGs) with crops shrunk to ``TINY_GLOBAL`` / ``TINY_LOCAL`` pixels, pixel work
nearly vanishes and what is left of a batch's time is the graph's fixed cost: its operators' scheduling and
per-sample setup, and the feed's Python. The recipe (groups, counts, probabilities) is kept, only the sizes
shrink. Three graphs run the same way (``Pipeline.run`` on the same endless feed, the same threads), one after
the other for ``rounds`` rounds; each figure is the median batch time over all rounds:

* ``decode``: the head alone (feed, file reads, decode);
* ``full``: the whole CPU graph, every crop's pixel work included (DALI's CPU operators cost a few
  microseconds per sample each even on tiny images: a resize per crop alone is about a decode's worth);
* ``host``: what the GPU graph runs on the host, ahead of its kernels (feed, reads, decode, the window
  function, the parameter splits; the CPU decoder stands in for the GPU's, whose host part it resembles);
* ``floor``: the head, then per crop only a resize of a fixed window and the normalisation: the least pixel
  work any CPU multi-crop graph of the recipe does, the floor under ``full``.

Operator counts need no GPU: the GPU variant's graph is defined (not built) here, which also checks that
every operator accepts the device of its inputs.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ..graph.feed import AnySource, EpochFeed
from ..graph.builder import GraphSettings, build_decode_pipeline, build_floor_pipeline, build_pipeline
from ..sources.epochs import EpochPlan, ShardPlan
from ..sources import FileList
from ..recipes.spec import MultiCropSpec

__all__ = ["TINY_GLOBAL", "TINY_LOCAL", "OverheadResult", "host_to_gpu_copies", "operator_counts", "tiny_spec",
           "measure_overhead"]

TINY_GLOBAL = 32
"""Side of the global crops in the tiny measurement, pixels."""
TINY_LOCAL = 16
"""Side of the local crops in the tiny measurement, pixels."""


def tiny_spec(spec: MultiCropSpec) -> MultiCropSpec:
    """``spec`` with every global group's crops at ``TINY_GLOBAL`` px and every local group's at ``TINY_LOCAL``."""
    n = spec.num_global_groups
    return MultiCropSpec(tuple(g.replace(size=TINY_GLOBAL if i < n else TINY_LOCAL)
                               for i, g in enumerate(spec.groups)), n)


def operator_counts(spec: MultiCropSpec, device: str, source: Optional[AnySource] = None) -> dict[str, int]:
    """Operators the graph for ``device`` ("cpu" or "gpu") runs per batch, by where they run: ``cpu`` (one at a
    time, on the host), ``mixed`` (CPU in, GPU out: the GPU decoder, and each copy of a host node to the GPU, which
    DALI adds as a mixed operator when it builds) and ``gpu``. ``source`` chooses the graph's head (default: a file
    list). Defined, not built: no GPU needed."""
    source = source if source is not None else FileList(("unused.jpg",), (0,))
    feed = EpochFeed(source, spec)
    pipe = build_pipeline(feed, spec, GraphSettings(device=device, batch_size=1, num_threads=1, seed=0)).pipeline
    pipe._build_graph()  # DALI's graph definition step; build() would also need the device
    counts = Counter(op._op.device for op in pipe._ops)
    counts["mixed"] += len(host_to_gpu_copies(pipe))
    return {where: counts.get(where, 0) for where in ("cpu", "mixed", "gpu")}


def host_to_gpu_copies(pipe: Any) -> set[str]:
    """Names of the host nodes a defined pipeline moves to the GPU (``.gpu()``, as an input of an operator or as an
    output): DALI runs one mixed copy operator for each."""
    nodes = [node for op in pipe._ops for node in op.inputs] + list(pipe._graph_out)
    return {node.name for node in nodes
            if node.device == "gpu" and node.source is not None and node.source._op.device == "cpu"}


@dataclass
class OverheadResult:
    """One recipe's fixed cost. ``ms_full`` / ``ms_host`` / ``ms_floor`` / ``ms_decode``: median ms per batch on
    tiny images of the full CPU graph, of the GPU graph's host stage, of the pixel floor and of the decode-only
    head; each ``*ratio`` is that figure over ``ms_decode``."""

    recipe: str
    tiny_spec: str
    num_crops: int
    operators_cpu_graph: dict[str, int]
    operators_gpu_graph: dict[str, int]
    batch_size: int
    threads: int
    ms_full: float
    ms_host: float
    ms_floor: float
    ms_decode: float
    ratio: float
    host_ratio: float
    floor_ratio: float


def _batch_times(build: Callable[[EpochFeed, GraphSettings], Any], feed: EpochFeed, files: FileList,
                 settings: GraphSettings, warmup: int, batches: int) -> list[float]:
    """Seconds per ``pipe.run()`` over ``batches`` batches after ``warmup``, on an endless feed."""
    plan = ShardPlan(len(files), settings.batch_size, drop_last=True)
    needed = warmup + batches + settings.prefetch + 1
    order = [b for epoch in range(-(-needed // len(plan))) for b in plan.batches(epoch)]
    feed.start(EpochPlan.of(order))
    pipe = build(feed, settings).pipeline
    pipe.build()
    for _ in range(warmup):
        pipe.run()
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        pipe.run()
        times.append(time.perf_counter() - start)
    del pipe
    return times


def measure_overhead(recipe: str, spec: MultiCropSpec, files: FileList, batch_size: int = 128, threads: int = 2,
                     warmup: int = 5, batches: int = 30, rounds: int = 3,
                     tick: Optional[Callable[[], None]] = None) -> OverheadResult:
    """Measures ``spec``'s fixed cost on ``files`` (tiny images; see the module's notes)."""
    small = tiny_spec(spec)
    settings = GraphSettings(device="cpu", batch_size=batch_size, num_threads=threads, seed=0)
    full: list[float] = []
    host: list[float] = []
    floor: list[float] = []
    decode: list[float] = []
    for _ in range(rounds):
        decode += _batch_times(build_decode_pipeline, EpochFeed(files), files, settings, warmup, batches)
        full += _batch_times(lambda feed, s: build_pipeline(feed, small, s), EpochFeed(files, small), files,
                             settings, warmup, batches)
        host += _batch_times(lambda feed, s: build_pipeline(feed, small, s, host_stage=True),
                             EpochFeed(files, small), files, settings, warmup, batches)
        floor += _batch_times(lambda feed, s: build_floor_pipeline(feed, small, s), EpochFeed(files), files,
                              settings, warmup, batches)
        if tick is not None:
            tick()
    # the times as written (ms, to the microsecond), and the ratios of those, so that the record agrees with itself
    ms_full, ms_host, ms_floor, ms_decode = (round(float(np.median(t)) * 1e3, 3) for t in (full, host, floor, decode))
    return OverheadResult(recipe=recipe, tiny_spec=str(small), num_crops=spec.num_crops,
                          operators_cpu_graph=operator_counts(small, "cpu"),
                          operators_gpu_graph=operator_counts(small, "gpu"), batch_size=batch_size, threads=threads,
                          ms_full=ms_full, ms_host=ms_host, ms_floor=ms_floor, ms_decode=ms_decode,
                          ratio=round(ms_full / ms_decode, 2), host_ratio=round(ms_host / ms_decode, 2),
                          floor_ratio=round(ms_floor / ms_decode, 2))
