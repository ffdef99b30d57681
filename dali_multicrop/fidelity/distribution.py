"""The loader's crops against a method's own transform, in distribution: per-crop statistics and their KS distance.

Where :mod:`dali_multicrop.fidelity.table` compares operations at matched parameters, this compares what comes out: the
loader and the method's transform (e.g. DINO's ``DataAugmentationDINO``, run from its code) each make crops of the
same photographs, the same number of times, and for each crop position (DINO: two global crops, then the local ones,
pooled) and each statistic of a crop the two samples' Kolmogorov-Smirnov distance (the largest gap between their
distribution functions, 0-1) is reported beside what chance alone gives at those sample sizes (the critical distance
at p = 0.001). Statistics per crop (:data:`STATISTICS`), from its RGB code values (0-255): the mean luma, the luma's
spread (standard deviation), the mean HSV saturation, the hue (the mean chroma vector's angle, radians) and the
sharpness (the mean squared Laplacian of the luma: what the resize's filter and the blur change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..recipes.spec import MultiCropSpec

__all__ = ["KS_GOAL", "STATISTICS", "DistributionRow", "compare", "crop_statistics", "distribution_fidelity",
           "ks_critical", "ks_distance", "loader_statistics", "reference_statistics"]

STATISTICS = ("mean luma", "luma spread", "saturation", "hue", "sharpness")
"""What :func:`crop_statistics` measures of a crop, in its order."""
KS_GOAL = 0.05
"""The largest KS distance per statistic that issue #29 allows between the loader and the method's transform."""
_LUMA = np.array([0.299, 0.587, 0.114])


def crop_statistics(crop: np.ndarray) -> np.ndarray:
    """float64 ``[len(STATISTICS)]`` of one crop (uint8 HWC RGB)."""
    rgb = crop.astype(np.float64)
    luma = rgb @ _LUMA
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1.0), 0.0)
    a = rgb[..., 0] - 0.5 * (rgb[..., 1] + rgb[..., 2])
    b = math.sqrt(3) / 2 * (rgb[..., 1] - rgb[..., 2])
    laplacian = (4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:])
    return np.array([luma.mean(), luma.std(), saturation.mean(), math.atan2(b.sum(), a.sum()),
                     float((laplacian ** 2).mean())])


def ks_distance(first: np.ndarray, second: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov distance: the largest gap between the samples' distribution functions."""
    first, second = np.sort(first), np.sort(second)
    pooled = np.concatenate([first, second])
    gap = np.searchsorted(first, pooled, side="right") / len(first) - np.searchsorted(second, pooled,
                                                                                       side="right") / len(second)
    return float(np.abs(gap).max())


def ks_critical(n: int, m: int, p: float = 0.001) -> float:
    """The KS distance that two samples of ``n`` and ``m`` from one distribution exceed with probability ``p``."""
    return math.sqrt(-math.log(p / 2) / 2) * math.sqrt((n + m) / (n * m))


@dataclass(frozen=True)
class DistributionRow:
    """One statistic of one crop position: ``ks`` the distance between the loader's crops and the reference's,
    ``chance`` what two samples of these sizes from one law exceed with p = 0.001, ``crops`` per side, and the
    two samples' medians."""

    position: str
    statistic: str
    crops: int
    ks: float
    chance: float
    ours_median: float
    theirs_median: float


def _code_values(crop: Any) -> np.ndarray:
    """A crop as uint8 HWC: a PIL image, or a CHW tensor normalised with ImageNet's mean and std (the loader's and
    the methods' ``Normalize``: :func:`dali_multicrop.fidelity.table._code_values` undoes it)."""
    if hasattr(crop, "convert"):
        return np.asarray(crop.convert("RGB"))
    from .table import _code_values as code_values

    return code_values(crop.detach().cpu()).permute(1, 2, 0).numpy()


def loader_statistics(spec: MultiCropSpec, photos: Sequence[np.ndarray], rounds: int, device: str = "cpu",
                      seed: int = 0) -> list[np.ndarray]:
    """Per crop of ``spec`` (in its order), float64 ``[rounds * len(photos), len(STATISTICS)]``: the statistics of
    the loader's crops of every photograph, ``rounds`` times."""
    from .table import _batches

    found: list[list[np.ndarray]] = [[] for _ in range(spec.num_crops)]
    for _, _, (batch,) in _batches([spec], photos, device, rounds, seed, "loader_statistics"):
        for c, crops in enumerate(batch.crops):
            found[c].extend(crop_statistics(_code_values(crop)) for crop in crops)
    return [np.array(values) for values in found]


def reference_statistics(reference: Callable[[Any], Sequence[Any]], photos: Sequence[np.ndarray],
                         rounds: int) -> list[np.ndarray]:
    """The same for ``reference``: a callable taking a PIL image and returning its crops in the spec's order (PIL
    images, or CHW tensors normalised with ImageNet's mean and std, e.g. DINO's ``DataAugmentationDINO(...)``)."""
    from PIL import Image

    found: list[list[np.ndarray]] = []
    for _ in range(rounds):
        for photo in photos:
            crops = reference(Image.fromarray(photo))
            found = found or [[] for _ in crops]
            for c, crop in enumerate(crops):
                found[c].append(crop_statistics(_code_values(crop)))
    return [np.array(values) for values in found]


def compare(ours: Sequence[np.ndarray], theirs: Sequence[np.ndarray],
            positions: Sequence[tuple[str, Sequence[int]]]) -> list[DistributionRow]:
    """Per crop position (a name and the crop indices pooled under it, e.g. ``("global 1", [0])``) and statistic,
    one row (see the module)."""
    rows = []
    for name, indices in positions:
        mine = np.concatenate([ours[c] for c in indices])
        other = np.concatenate([theirs[c] for c in indices])
        for k, statistic in enumerate(STATISTICS):
            ks = round(ks_distance(mine[:, k], other[:, k]), 4)
            rows.append(DistributionRow(name, statistic, len(mine), ks, round(ks_critical(len(mine), len(other)), 4),
                                        round(float(np.median(mine[:, k])), 4),
                                        round(float(np.median(other[:, k])), 4)))
    return rows


def distribution_fidelity(spec: MultiCropSpec, photos: Sequence[np.ndarray],
                          reference: Callable[[Any], Sequence[Any]], rounds: int,
                          positions: Sequence[tuple[str, Sequence[int]]], device: str = "cpu",
                          seed: int = 0) -> list[DistributionRow]:
    """The loader (``spec`` on ``device``) and ``reference`` (see :func:`reference_statistics`) each make crops of
    every photograph ``rounds`` times, compared per crop position and statistic (:func:`compare`)."""
    ours = loader_statistics(spec, photos, rounds, device, seed)
    return compare(ours, reference_statistics(reference, photos, rounds), positions)
