"""The graphs' colour map against torchvision's ColorJitter on PIL images, operation by operation, at matched factors.

    python bench/colour_ops.py [--per-crop 4] [--out bench/results/cpu-2core-fidelity]

Crops (96 and 224 px) of scikit-image's photographs; per crop and repeat, factors drawn from DINO's strengths
(brightness and contrast (0.6, 1.4), saturation (0.8, 1.2), hue (-0.1, 0.1)). Each operation alone (the others
neutral), grayscale alone, and the whole jitter in a random order per crop (then grayscale with p 0.2), three ways:
torchvision on PIL (the reference, as DINO applies it); the graphs' colour map (the crop step's ``[M | T]`` block of
those factors, ``draws.colour_blocks``, applied by the CPU graph's own kernel, ``_colour_kernel.map_pixels``: within
one code value of the GPU graph's ``fn.coord_transform``, tests/test_loader_colour.py); and torchvision's tensor
path (its own noise). Prints and writes the mean absolute difference per crop in code values (0-255), averaged, and the worst crop's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dali_multicrop.benchmark.environment import describe_machine
from dali_multicrop.draws import ColourFactors, colour_blocks
from dali_multicrop._colour_kernel import map_pixels
from dali_multicrop.fidelity import natural_photos, photo_crops

OPS = ("brightness", "contrast", "saturation", "hue", "grayscale", "whole jitter")
RANGES = {"brightness": (0.6, 1.4), "contrast": (0.6, 1.4), "saturation": (0.8, 1.2), "hue": (-0.1, 0.1)}


def reference(crop: np.ndarray, f: dict, order: list[int], gray: bool, tensor: bool) -> np.ndarray:
    import torchvision.transforms.functional as F
    from PIL import Image

    img = torch.from_numpy(crop.copy()).permute(2, 0, 1) if tensor else Image.fromarray(crop)
    calls = [lambda i: F.adjust_brightness(i, f["brightness"]), lambda i: F.adjust_contrast(i, f["contrast"]),
             lambda i: F.adjust_saturation(i, f["saturation"]), lambda i: F.adjust_hue(i, f["hue"])]
    for op in order:
        if op < 3 and f[OPS[op]] != 1.0 or op == 3 and f["hue"] != 0.0:
            img = calls[op](img)
    if gray:
        img = F.rgb_to_grayscale(img, 3)
    return img.permute(1, 2, 0).numpy() if tensor else np.asarray(img)


def graph_map(crop: np.ndarray, f: dict, order: list[int], gray: bool) -> np.ndarray:
    brightness_last = order.index(0) > order.index(1)
    factors = ColourFactors(*(np.array([v]) for v in (f["brightness"], f["contrast"], f["saturation"], f["hue"])),
                            brightness_last=np.array([brightness_last]), gray=np.array([gray]))
    out = np.empty_like(crop)
    map_pixels(out, crop, colour_blocks(factors)[0].astype(np.float32))  # the CPU graph's own kernel
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-crop", type=int, default=4, help="factor draws per crop and operation")
    p.add_argument("--out", type=Path, default=Path("bench/results/cpu-2core-fidelity"))
    args = p.parse_args()
    rng = np.random.default_rng(0)
    crops = photo_crops(natural_photos())
    found: dict[str, dict[str, list[float]]] = {op: {"graph": [], "tensor": []} for op in OPS}
    for crop in crops:
        for _ in range(args.per_crop):
            drawn = {k: float(rng.uniform(*r)) for k, r in RANGES.items()}
            for op in OPS:
                neutral = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}
                f = drawn if op == "whole jitter" else {**neutral, **({op: drawn[op]} if op in drawn else {})}
                order = list(rng.permutation(4)) if op == "whole jitter" else [0, 1, 2, 3]
                gray = op == "grayscale" or (op == "whole jitter" and rng.random() < 0.2)
                want = reference(crop, f, order, gray, tensor=False).astype(np.float64)
                found[op]["graph"].append(float(np.abs(graph_map(crop, f, order, gray) - want).mean()))
                found[op]["tensor"].append(float(np.abs(reference(crop, f, order, gray, tensor=True) - want).mean()))
    rows = {op: {"crops": len(v["graph"]), "graph_mean": round(float(np.mean(v["graph"])), 3),
                 "graph_worst": round(float(np.max(v["graph"])), 3),
                 "torchvision_tensor_mean": round(float(np.mean(v["tensor"])), 3)} for op, v in found.items()}
    print(f"{len(crops)} crops x {args.per_crop} draws; mean |difference| per crop against torchvision on PIL, "
          f"code values (0-255)")
    for op, row in rows.items():
        print(f"  {op:<13} graphs' map {row['graph_mean']:.3f} (worst crop {row['graph_worst']:.3f}), "
              f"torchvision tensor {row['torchvision_tensor_mean']:.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "colour-ops.json").write_text(json.dumps({"rows": rows, "machine": describe_machine()}, indent=1))


if __name__ == "__main__":
    main()
