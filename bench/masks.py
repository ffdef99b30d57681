"""Benchmark: MultiCropMaskGenerator vs a plain per-sample loop of the I-JEPA multi-block algorithm, and
PatchMaskGenerator vs DINOv2's per-sample masking loop.

    python bench/masks.py [--device cpu|cuda] [--batch 256] [--repeats 20] [--out bench/results]

The generator makes masks for all crops of 2x224,6x96 (patch 16, 3 levels, 4 targets); the loop makes
I-JEPA's masks for one 224 crop per image (1 context block, 4 targets), one sample at a time, in Python,
as I-JEPA's collator does. Reports the median of ``--repeats`` timed runs after warm-up, device synchronised,
and what one generator call dispatches: torch operators (on CUDA, each at most a kernel or two) and host
read-backs (waits for the GPU; 0 by design).

The patch masks (iBOT / DINOv2): ``PatchMaskGenerator`` for the two global crops of a batch (224 px, patch 14 and
16, DINOv2's defaults) against DINOv2's ``MaskingGenerator`` + collate loop as ``tests/dinov2_reference.py`` writes
it from DINOv2's code (one mask at a time, Python and NumPy), on the CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from pathlib import Path

import sys

import torch

from dali_multicrop import MultiCropMaskGenerator, PatchMaskGenerator
from dali_multicrop.benchmark.dispatch import DispatchCounter
from dali_multicrop.benchmark.environment import describe_machine


def ijepa_loop(batch_size: int, grid: int = 14, num_targets: int = 4, min_keep: int = 10,
               seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """I-JEPA's multi-block masks, one sample at a time (written for this benchmark; bounded retries)."""

    rng = random.Random(seed)

    def block(scale, aspect):
        s = rng.uniform(*scale)
        a = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
        area = s * grid * grid
        h = min(grid, max(1, round(math.sqrt(area / a))))
        w = min(grid, max(1, round(math.sqrt(area * a))))
        top, left = rng.randint(0, grid - h), rng.randint(0, grid - w)
        m = torch.zeros(grid, grid, dtype=torch.bool)
        m[top:top + h, left:left + w] = True
        return m.flatten()

    out = []
    for _ in range(batch_size):
        for _ in range(100):
            targets = torch.stack([block((0.15, 0.2), (0.75, 1.5)) for _ in range(num_targets)])
            context = block((0.85, 1.0), (1.0, 1.0)) & ~targets.any(0)
            if int(context.sum()) >= min_keep:
                break
        out.append((context.nonzero().squeeze(1), targets))
    return out


def timed(fn, device: str, repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def patch_masks(batch: int, device: str, repeats: int) -> list[dict]:
    """PatchMaskGenerator against DINOv2's loop (the reference in tests/), 2 global crops of 224 px."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from dinov2_reference import reference_masks

    rows = []
    for patch in (16, 14):
        gen = PatchMaskGenerator("2x224", patch_size=patch)
        ours = timed(lambda: gen(batch_size=batch, device=device), device, repeats)
        loop = timed(lambda: reference_masks(2 * batch, 224 // patch), "cpu", max(3, repeats // 4), warmup=1)
        with DispatchCounter() as counted:
            gen(batch_size=batch, device=device)
        rows.append({"patch_size": patch, "grid": gen.grid, "generator_ms": round(ours, 3),
                     "dinov2_loop_ms_cpu": round(loop, 3), "speedup": round(loop / ours, 2),
                     "operators_per_call": counted.ops, "host_read_backs_per_call": counted.read_backs,
                     "cuda_rounds": gen.rounds})
    return rows


def law_table(patch: int, device: str, batches: int = 16, batch: int = 256) -> list[dict]:
    """The masked-count distribution per target ratio, PatchMaskGenerator (on ``device``) against DINOv2's loop:
    ``batches`` batches of ``batch`` images (2 global crops of 224 px) each way, other seeds."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from dinov2_reference import reference_masks

    grid = 224 // patch
    n = grid * grid
    gen = PatchMaskGenerator("2x224", patch_size=patch, seed=11)
    ours = [gen(batch_size=batch, device=device) for _ in range(batches)]
    ours_masks = torch.cat([m.masks.flatten(0, 1).cpu() for m in ours])
    ours_targets = torch.cat([m.targets.flatten().cpu() for m in ours])
    ref = [reference_masks(2 * batch, grid, seed=s) for s in range(batches)]
    ref_masks, ref_targets = torch.cat([r[0] for r in ref]), torch.cat([r[1] for r in ref])
    rows = []
    for low, high in ((0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5 + 1e-9), (None, None)):
        row = {"patch_size": patch, "ratio": "unmasked" if low is None else f"{low:.1f}-{min(high, 0.5):.1f}"}
        for name, masks, targets in (("ours", ours_masks, ours_targets), ("dinov2", ref_masks, ref_targets)):
            ratio = targets.float() / n
            sel = targets == 0 if low is None else (targets > 0) & (ratio >= low) & (ratio < high)
            counts = masks[sel].sum(-1).float()
            short = counts < targets[sel].float()
            row[f"{name}_masks"] = int(sel.sum())
            row[f"{name}_mean"] = round(float(counts.mean()), 1)
            row[f"{name}_std"] = round(float(counts.std()), 1) if low is not None else 0.0
            row[f"{name}_short_share"] = round(float(short.float().mean()), 4)
            row[f"{name}_mean_shortfall"] = round(float((targets[sel].float() - counts).mean()), 3)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU here; nothing measured (use --device cpu)")
    gen = MultiCropMaskGenerator("2x224,6x96", patch_size=16, num_levels=3, num_targets=4)
    generator_ms = timed(lambda: gen(batch_size=args.batch, device=args.device), args.device, args.repeats)
    loop_ms = timed(lambda: ijepa_loop(args.batch), "cpu", max(3, args.repeats // 4), warmup=1)
    with DispatchCounter() as counted:
        gen(batch_size=args.batch, device=args.device)
    result = {
        "benchmark": "masks", "batch_size": args.batch, "crops": "2x224,6x96", "patch_size": 16, "levels": 3,
        "targets": 4, "device": args.device,
        "generator_ms_all_8_crops_3_levels": round(generator_ms, 3),
        "ijepa_loop_ms_one_crop_one_level_cpu": round(loop_ms, 3),
        "speedup": round(loop_ms / generator_ms, 2),
        "operators_per_call": counted.ops, "host_read_backs_per_call": counted.read_backs,
        "redraw_rounds": gen.rounds, "machine": describe_machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    result["patch_masks"] = patch_masks(args.batch, args.device, args.repeats)
    result["patch_mask_law"] = [row for patch in (16, 14) for row in law_table(patch, args.device)]
    print(json.dumps(result, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"masks-{args.device}.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out / name}")


if __name__ == "__main__":
    main()
