"""The graphs' colour operations against torchvision's on PIL images, operation by operation, and what each costs.

    python bench/colour_ops.py [--per-crop 4] [--out bench/results/cpu-2core-fidelity]

Crops (96 and 224 px) of scikit-image's photographs; per crop and repeat, a colour row drawn as the crop step draws
it for DINO's recipe (``ColorJitter(0.4, 0.4, 0.2, 0.1)`` with its order drawn per crop; grayscale with p 0.2). Each
operation alone (the row's other operations left out), grayscale alone, and the whole row, applied two ways: by the
CPU graph's own kernel (``crop_colour.colour_crop``; the GPU graph's kernels do the same arithmetic,
tests/test_colour_kernel.py) and by torchvision's functions on the PIL image (``fidelity.torchvision_colour``, the
reference, as DINO applies them), with torchvision's tensor path beside it (its own noise). Prints and writes the
mean absolute difference per crop in code values (0-255), the worst crop's, and the kernel's time per crop (one
thread, milliseconds, median of 20).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dali_multicrop.benchmark.environment import describe_machine
from dali_multicrop.step.draws import batch_keys, draw_batch, epoch_key
from dali_multicrop.fidelity.table import natural_photos, photo_crops, torchvision_colour
from dali_multicrop.pixels.crop_colour import colour_crop
from dali_multicrop.pixels.pil_colour import ROW_GRAY, ROW_SHIFT
from dali_multicrop.recipes.presets import load_preset

OPS = ("brightness", "contrast", "saturation", "hue", "grayscale", "whole jitter")


def only(row: np.ndarray, op: str) -> np.ndarray:
    """``row`` with every operation but ``op`` left out (the whole row for "whole jitter")."""
    if op == "whole jitter":
        return row
    out = row.copy()
    out[:3], out[ROW_SHIFT], out[ROW_GRAY] = 1.0, -1.0, 0.0
    if op == "grayscale":
        out[ROW_GRAY] = 1.0
    elif op == "hue":
        out[ROW_SHIFT] = row[ROW_SHIFT]
    else:
        k = OPS.index(op)
        out[k] = row[k]
    return out


def kernel_ms(crop: np.ndarray, row: np.ndarray) -> float:
    out = np.empty_like(crop)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        colour_crop(out, crop, row)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-crop", type=int, default=4, help="colour rows per crop and operation")
    p.add_argument("--out", type=Path, default=Path("bench/results/cpu-2core-fidelity"))
    args = p.parse_args()
    crops = photo_crops(natural_photos())
    rows = draw_batch(load_preset("dino"), batch_keys(epoch_key(0, 0, 0), 0, 64)).colour.reshape(-1, 9)
    rows = rows[np.any(rows[:, :3] != 1, axis=1) & (rows[:, ROW_SHIFT] >= 0)]  # jittered (DINO's hue is on)
    found = {op: {"graph": [], "tensor": [], "ms": {96: [], 224: []}} for op in OPS}
    from PIL import Image
    import torchvision.transforms.functional as TF

    k = 0
    for crop in crops:
        for _ in range(args.per_crop):
            row, k = rows[k % len(rows)], k + 1
            for op in OPS:
                r = only(row, op)
                want = TF.pil_to_tensor(torchvision_colour(Image.fromarray(crop), r)).permute(1, 2, 0).numpy()
                mine = np.empty_like(crop)
                colour_crop(mine, crop, r)
                tensor = torchvision_colour(torch.from_numpy(crop.copy()).permute(2, 0, 1), r).permute(1, 2, 0)
                found[op]["graph"].append(float(np.abs(mine.astype(float) - want).mean()))
                found[op]["tensor"].append(float(np.abs(tensor.numpy().astype(float) - want).mean()))
                found[op]["ms"][crop.shape[0]].append(kernel_ms(crop, r))
    table = {op: {"crops": len(v["graph"]), "graph_mean": round(float(np.mean(v["graph"])), 3),
                  "graph_worst": round(float(np.max(v["graph"])), 3),
                  "torchvision_tensor_mean": round(float(np.mean(v["tensor"])), 3),
                  **{f"kernel_ms_{s}": round(float(np.median(t)), 3) for s, t in v["ms"].items()}}
             for op, v in found.items()}
    print(f"{len(crops)} crops x {args.per_crop} rows; mean |difference| per crop against torchvision on PIL, code "
          f"values (0-255); the CPU kernel's time per crop (one thread)")
    for op, t in table.items():
        print(f"  {op:<13} graphs' kernel {t['graph_mean']:.3f} (worst crop {t['graph_worst']:.3f}), torchvision "
              f"tensor {t['torchvision_tensor_mean']:.3f}; {t['kernel_ms_96']:.3f} ms at 96 px, "
              f"{t['kernel_ms_224']:.3f} ms at 224 px")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "colour-ops-exact.json").write_text(json.dumps({"rows": table, "machine": describe_machine()},
                                                               indent=1))


if __name__ == "__main__":
    main()
