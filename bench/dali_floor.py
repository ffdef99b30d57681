"""DALI's own host cost per sample, for any loader built on it: what a batch's inputs and outputs cost the calling
thread as the batch grows, with no image work at all.

    python bench/dali_floor.py [--small 128] [--large 512] [--outputs 9] [--calls 300] [--rounds 3]

Timed apart on the dynamic executor (the loader's), CPU only, mean ms per batch:

- ``feed_input``: DALI taking a batch from the calling thread (``Pipeline.feed_input``, what an external source does
  with what its callback returns), dense arrays: two inputs, the paths (uint8 ``[B, 64]``) and the keys (uint64
  ``[B, 1]``), as the loader handed them until its feed put each key in its path's row; then that one input
  (uint8 ``[B, 73]``, :func:`dali_multicrop.graph.feed.keyed_paths`);
- ``as_tensor``, ``from_dlpack``: what ``DALIGenericIterator`` does to each output of a ready batch, for
  ``--outputs`` outputs (the loader's ``2x224,6x96``: 8 crops and the windows), tiny float32 samples ``[3, 16, 16]``.

Printed: each figure at both batch sizes per round and its growth, in µs per sample: the floor under the loader's
growth with the batch that no change inside this project removes (``bench/gil_growth.py`` measures the rest).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np


def _outputs_graph(batch: int, outputs: int) -> Any:
    """A built pipeline with ``outputs`` outputs, each its one input times a constant (distinct, so that DALI does
    not merge them)."""
    from nvidia.dali import fn, pipeline_def

    data = np.zeros((batch, 3, 16, 16), np.float32)

    @pipeline_def(batch_size=batch, num_threads=2, device_id=None, exec_dynamic=True, prefetch_queue_depth=1)
    def graph() -> Any:
        x = fn.external_source(source=lambda: data, batch=True)
        return tuple(x * float(i + 1) for i in range(outputs))

    pipe = graph()
    pipe.build()
    return pipe


def _inputs_graph(batch: int, names: dict[str, Any]) -> Any:
    """A built pipeline with one input per entry of ``names`` (name: DALI type), fed by ``feed_input``, as its
    outputs."""
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=batch, num_threads=2, device_id=None, exec_dynamic=True, prefetch_queue_depth=1)
    def graph() -> Any:
        return tuple(fn.external_source(name=name, dtype=dtype, ndim=1) for name, dtype in names.items())

    pipe = graph()
    pipe.build()
    return pipe


def measure(batch: int, outputs: int, calls: int) -> dict[str, float]:
    """Mean ms per batch at ``batch`` samples: ``feed_input`` of the paths and keys as two inputs and as one,
    ``as_tensor`` and ``from_dlpack`` (``outputs`` outputs)."""
    import torch
    from nvidia.dali import types

    from dali_multicrop.graph.feed import keyed_paths

    paths, keys = np.full((batch, 64), 47, np.uint8), np.arange(batch, dtype=np.uint64)
    found = {}
    for label, arrays in (("two inputs", {"paths": paths, "keys": keys.reshape(-1, 1)}),
                          ("one input", {"keyed_paths": keyed_paths(paths, keys)})):
        pipe = _inputs_graph(batch, {name: types.UINT8 if a.dtype == np.uint8 else types.UINT64
                                     for name, a in arrays.items()})
        feed = 0.0
        for _ in range(calls):
            start = time.perf_counter()
            for name, array in arrays.items():
                pipe.feed_input(name, array)
            feed += time.perf_counter() - start
            pipe.run()
        del pipe
        found[f"feed_input, {label}"] = feed / calls * 1e3
    pipe = _outputs_graph(batch, outputs)
    convert = dlpack = 0.0
    for _ in range(calls):
        out = pipe.run()  # the batch is ready: only the conversions are timed
        start = time.perf_counter()
        tensors = [o.as_tensor() for o in out]
        middle = time.perf_counter()
        torched = [torch.from_dlpack(t) for t in tensors]
        convert += middle - start
        dlpack += time.perf_counter() - middle
        del torched, tensors, out
    return {**found, f"as_tensor, {outputs} outputs": convert / calls * 1e3,
            f"from_dlpack, {outputs} outputs": dlpack / calls * 1e3}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=128)
    parser.add_argument("--large", type=int, default=512)
    parser.add_argument("--outputs", type=int, default=9, help="outputs converted per batch")
    parser.add_argument("--calls", type=int, default=300, help="batches measured per cell")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"| figure | round | batch {args.small} (ms) | batch {args.large} (ms) | growth, µs per sample |\n"
          "| --- | --- | --- | --- | --- |")
    for r in range(args.rounds):
        small, large = measure(args.small, args.outputs, args.calls), measure(args.large, args.outputs, args.calls)
        for name in small:
            growth = (large[name] - small[name]) / (args.large - args.small) * 1e3
            print(f"| {name} | {r + 1} | {small[name]:.3f} | {large[name]:.3f} | {growth:+.3f} |")


if __name__ == "__main__":
    main()
