"""DINOv2's block-wise masks grown on the CPU, compiled by Numba: each mask block by block, as DINOv2's
``MaskingGenerator`` grows it (see :mod:`dali_multicrop.masking.patches` for the law), without Python per block.
:class:`~dali_multicrop.PatchMaskGenerator` uses it for CPU batches; CUDA batches take the vectorised rounds."""

from __future__ import annotations

import math

import numpy as np

from ..common.compiled import jit

__all__ = ["grow_masks"]


@jit
def grow_masks(targets: np.ndarray, grid: int, min_num_patches: float, max_num_patches: float, log_aspect_low: float,
               log_aspect_high: float, tries: int, seed: int) -> np.ndarray:
    """Masks bool ``[M, grid, grid]`` grown to ``targets`` (int64 ``[M]``, patches): while a mask is below its target,
    a block of area ``U(min_num_patches, min(remaining, max_num_patches))`` and aspect ``exp(U(log_aspect_low,
    log_aspect_high))`` (``h = round(sqrt(area * aspect))``, ``w = round(sqrt(area / aspect))``, both in
    ``1..grid-1``) at a uniform place is added if it masks at least one new patch and at most the remaining count;
    ``tries`` tries per block, and a mask whose tries all fail stops short. ``seed`` seeds the draws (Numba's
    generator, per calling thread): the same seed, the same masks."""
    np.random.seed(seed)
    count_masks = targets.shape[0]
    out = np.zeros((count_masks, grid, grid), dtype=np.bool_)
    for m in range(count_masks):
        mask = out[m]
        target = targets[m]
        count = 0
        while count < target:
            budget = min(float(target - count), max_num_patches)
            added = 0
            for _ in range(tries):
                area = min_num_patches + (budget - min_num_patches) * np.random.random()
                aspect = math.exp(log_aspect_low + (log_aspect_high - log_aspect_low) * np.random.random())
                h = int(np.rint(math.sqrt(area * aspect)))  # round half to even, as Python's round() in DINOv2
                w = int(np.rint(math.sqrt(area / aspect)))
                if not (0 < h < grid and 0 < w < grid):
                    continue
                top = np.random.randint(0, grid - h + 1)  # uniform over the rows where the block fits
                left = np.random.randint(0, grid - w + 1)
                new = 0
                for r in range(top, top + h):
                    for c in range(left, left + w):
                        if not mask[r, c]:
                            new += 1
                if 0 < new <= budget:
                    mask[top:top + h, left:left + w] = True
                    added = new
                    break
            if added == 0:
                break
            count += added
    return out
