"""A torch.profiler trace of the loader and the masks over a few batches, viewable in Perfetto.

    python -m dali_multicrop.benchmark.profile [--device auto] [--batches 8] [--out profiles/trace.json]

Each batch shows as a ``loader.next`` range (waiting for DALI) and a ``masks`` range (the generator's
torch ops, with CUDA kernels on a GPU). Open the JSON at https://ui.perfetto.dev or chrome://tracing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from ..common.choices import DEVICES
from ..loader.loader import DaliMultiCropLoader
from ..masking import MultiCropMaskGenerator
from ..sample_data import ensure_sample_data


def main() -> None:
    parser = argparse.ArgumentParser(description="torch.profiler trace of loader + masks")
    parser.add_argument("--crops", default="2x224,6x96")
    parser.add_argument("--data", type=Path, default=None, help="image folder (default: the built-in sample)")
    parser.add_argument("--device", default="auto", choices=list(DEVICES))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--strategy", default="global_only")
    parser.add_argument("--out", type=Path, default=Path("profiles/trace.json"))
    args = parser.parse_args()
    data = args.data if args.data is not None else ensure_sample_data()
    loader = DaliMultiCropLoader(data, crops=args.crops, batch_size=args.batch_size, device=args.device,
                                 shard_id=0, num_shards=1, drop_last=True)
    masks = MultiCropMaskGenerator(args.crops, strategy=args.strategy)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if loader.device == "gpu" else [])
    batches = iter(loader)
    next(batches)  # builds the pipeline outside the trace
    with profile(activities=activities, record_shapes=False) as prof:
        for _ in range(args.batches):
            with record_function("loader.next"):
                batch = next(batches)
            with record_function("masks"):
                masks(batch)
            if loader.device == "gpu":
                torch.cuda.synchronize()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    prof.export_chrome_trace(str(args.out))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=12))
    print(f"trace: {args.out} (open it at https://ui.perfetto.dev)")


if __name__ == "__main__":
    main()
