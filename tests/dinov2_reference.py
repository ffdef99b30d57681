"""DINOv2's block-wise masking as its paper's code describes it (``dinov2/data/masking.py::MaskingGenerator``
and the mask part of ``dinov2/data/collate.py::collate_data_and_cast``), written here from that description as
the reference the vectorised generator is compared with: a Python loop per mask, NumPy, ``random``."""

from __future__ import annotations

import math
import random

import numpy as np
import torch


class ReferenceMaskingGenerator:
    """One mask per call: blocks added until ``num_masking_patches`` are masked or 10 tries in a row fail."""

    def __init__(self, grid: int, max_num_patches: float, min_num_patches: float = 4, min_aspect: float = 0.3,
                 max_aspect: float | None = None, rng: random.Random | None = None) -> None:
        self.height = self.width = grid
        self.min_num_patches, self.max_num_patches = min_num_patches, max_num_patches
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.rng = rng or random.Random(0)
        self.blocks_last_call = 0

    def _mask(self, mask: np.ndarray, max_mask_patches: float) -> int:
        delta = 0
        for _ in range(10):
            target_area = self.rng.uniform(self.min_num_patches, max_mask_patches)
            aspect_ratio = math.exp(self.rng.uniform(*self.log_aspect_ratio))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < self.width and h < self.height:
                top = self.rng.randint(0, self.height - h)
                left = self.rng.randint(0, self.width - w)
                num_masked = mask[top:top + h, left:left + w].sum()
                if 0 < h * w - num_masked <= max_mask_patches:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if mask[i, j] == 0:
                                mask[i, j] = 1
                                delta += 1
                if delta > 0:
                    break
        return delta

    def __call__(self, num_masking_patches: int = 0) -> np.ndarray:
        mask = np.zeros((self.height, self.width), dtype=bool)
        count, self.blocks_last_call = 0, 0
        while count < num_masking_patches:
            delta = self._mask(mask, min(num_masking_patches - count, self.max_num_patches))
            if delta == 0:
                break
            count += delta
            self.blocks_last_call += 1
        return mask


def reference_masks(total: int, grid: int, ratio=(0.1, 0.5), probability: float = 0.5, seed: int = 0,
                    **kwargs) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``collate_data_and_cast``'s masks for ``total`` global crops: bool ``[total, N]``, the target counts (in
    the shuffled order) and the upperbound."""
    rng = random.Random(seed)
    n = grid * grid
    gen = ReferenceMaskingGenerator(grid, kwargs.pop("max_num_patches", 0.5 * n), rng=rng, **kwargs)
    masked = int(total * probability)
    probs = torch.linspace(*ratio, masked + 1)
    upperbound, rows = 0, []
    for i in range(masked):
        target = int(n * (probs[i] + (probs[i + 1] - probs[i]) * rng.random()))
        rows.append((gen(target), target))
        upperbound += int(n * probs[i + 1])
    rows += [(gen(0), 0) for _ in range(masked, total)]
    rng.shuffle(rows)
    masks = torch.stack([torch.from_numpy(m).flatten() for m, _ in rows])
    return masks, torch.tensor([t for _, t in rows]), upperbound
