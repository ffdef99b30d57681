"""The resize filters side by side against torchvision on PIL images, on the same windows of natural photographs.

    python bench/resize_filters.py [--crops-per-image 20] [--out bench/results/cpu-2core-fidelity]

For each of scikit-image's photographs, ``--crops-per-image`` windows per size (224 px at area (0.4, 1), 96 px at
(0.05, 0.4), torchvision's ``RandomResizedCrop.get_params``, seeded), resized by: torchvision on PIL (the reference,
bilinear and bicubic, antialiased), torchvision's tensor path (its own noise), DALI's ``fn.resize`` on the CPU
(linear and cubic, antialiased: what the GPU graph runs), the CPU graph's own resize (Pillow's arithmetic,
``dali_multicrop.pixels.pil_resize``, through ``augment.resized_crop`` on the CPU) and OpenCV as the CPU graph resized
before issue #29 (``INTER_AREA`` where the window shrinks both ways, else ``INTER_LINEAR``). Prints and writes the mean
absolute difference per crop in code values (0-255), averaged over the crops.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dali_multicrop.benchmark.environment import describe_machine
from dali_multicrop.fidelity.table import natural_photos


def windows(photos: list[np.ndarray], per_image: int, seed: int = 0) -> list[tuple[int, int, int, int, int, int]]:
    from PIL import Image
    from torchvision.transforms import v2

    torch.manual_seed(seed)
    out = []
    for k, photo in enumerate(photos):
        pil = Image.fromarray(photo)
        for size, scale in ((224, (0.4, 1.0)), (96, (0.05, 0.4))):
            for _ in range(per_image):
                out.append((k, *v2.RandomResizedCrop.get_params(pil, scale, (3 / 4, 4 / 3)), size))
    return out


def torchvision_crops(photos, jobs, mode: str, tensor: bool) -> list[np.ndarray]:
    import torchvision.transforms.functional as TF
    from PIL import Image
    from torchvision.transforms import InterpolationMode

    out = []
    for k, i, j, h, w, s in jobs:
        src = torch.from_numpy(photos[k].copy()).permute(2, 0, 1) if tensor else Image.fromarray(photos[k])
        crop = TF.resized_crop(src, i, j, h, w, [s, s], InterpolationMode(mode), antialias=True)
        out.append(crop.permute(1, 2, 0).numpy() if tensor else np.asarray(crop))
    return out


def dali_crops(photos, jobs, mode: str, own: bool = False) -> list[np.ndarray]:
    """DALI's ``fn.resize`` (the GPU graph's), or with ``own`` the CPU graph's resize, run on the CPU."""
    from nvidia.dali import fn, pipeline_def, types

    from dali_multicrop.graph.augment import resized_crop

    found = {}
    for size in sorted({job[-1] for job in jobs}):
        chosen = [job for job in jobs if job[-1] == size]

        @pipeline_def(batch_size=len(chosen), num_threads=2, device_id=None)
        def resize():
            image = fn.external_source(source=lambda: [photos[q[0]] for q in chosen], batch=True, layout="HWC")
            start = fn.external_source(source=lambda: [np.float32([q[1], q[2]]) for q in chosen], batch=True)
            end = fn.external_source(source=lambda: [np.float32([q[1] + q[3], q[2] + q[4]]) for q in chosen],
                                     batch=True)
            if own:
                return resized_crop(image, start, end, size, mode)  # the CPU graph's
            return fn.resize(image, roi_start=start, roi_end=end, size=[size, size], antialias=True,
                             interp_type=types.INTERP_LINEAR if mode == "bilinear" else types.INTERP_CUBIC)

        pipe = resize()
        pipe.build()
        out = pipe.run()[0]
        found.update({q: np.asarray(out[n]) for n, q in enumerate(chosen)})
    return [found[q] for q in jobs]


def opencv_crops(photos, jobs) -> list[np.ndarray]:
    import cv2

    out = []
    for k, i, j, h, w, s in jobs:
        shrink = h >= s and w >= s
        out.append(cv2.resize(photos[k][i:i + h, j:j + w], (s, s),
                              interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR))
    return out


def mad(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return round(float(np.mean([np.abs(x.astype(np.float64) - y.astype(np.float64)).mean() for x, y in zip(a, b)])), 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crops-per-image", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path("bench/results/cpu-2core-fidelity"))
    args = p.parse_args()
    photos = natural_photos()
    jobs = windows(photos, args.crops_per_image)
    ref = {m: torchvision_crops(photos, jobs, m, tensor=False) for m in ("bilinear", "bicubic")}
    rows = {}
    for m in ("bilinear", "bicubic"):
        rows[m] = {"torchvision tensor": mad(torchvision_crops(photos, jobs, m, tensor=True), ref[m]),
                   "DALI linear, antialiased": mad(dali_crops(photos, jobs, "bilinear"), ref[m]),
                   "DALI cubic, antialiased": mad(dali_crops(photos, jobs, "bicubic"), ref[m]),
                   "the CPU graph's (Pillow's arithmetic), same filter": mad(dali_crops(photos, jobs, m, own=True),
                                                                            ref[m]),
                   "OpenCV area / linear (the CPU graph before)": mad(opencv_crops(photos, jobs), ref[m])}
    print(f"{len(jobs)} crops of {len(photos)} photographs; mean |difference| per crop, code values (0-255), "
          f"against torchvision on PIL")
    for m, row in rows.items():
        print(f"  against PIL {m}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "resize-filters.json").write_text(json.dumps(
        {"crops": len(jobs), "photos": len(photos), "against_pil": rows, "machine": describe_machine()}, indent=1))


if __name__ == "__main__":
    main()
