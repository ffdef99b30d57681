"""The dino preset against DINO's own augmentation in distribution (issue #29): per crop position and statistic of a
crop (mean luma, luma spread, saturation, hue, sharpness), the KS distance between the loader's crops and those of
DINO's composition (tests/dino_reference.py) on natural photographs. At the sizes a test can afford the check is
"no difference beyond chance" (p = 0.001); bench/dino_distribution.py measures the distances against DINO's own code
at larger sizes. A reference that differs (no colour jitter) is told apart, so the check has teeth."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torchvision")
pytest.importorskip("skimage", reason="the natural photographs come with scikit-image")

from dino_reference import dino_augmentation  # noqa: E402
from dali_multicrop.fidelity.distribution import (compare, crop_statistics, ks_critical, ks_distance,  # noqa: E402
                                            loader_statistics, reference_statistics)
from dali_multicrop.fidelity.table import natural_photos  # noqa: E402
from dali_multicrop.recipes.presets import load_preset  # noqa: E402

POSITIONS = (("global 1", [0]), ("global 2", [1]), ("locals", list(range(2, 10))))
ROUNDS = 30


def test_the_ks_distance_is_kolmogorov_smirnovs():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=400), rng.normal(size=300)
    stats = pytest.importorskip("scipy.stats")
    assert ks_distance(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert ks_distance(a, a) == 0.0 and ks_distance(a, a + 10) == 1.0
    assert ks_critical(1000, 1000) == pytest.approx(1.9495 * np.sqrt(2 / 1000), rel=1e-3)
    flat = np.full((8, 8, 3), 100, np.uint8)
    mean, spread, saturation, _, sharpness = crop_statistics(flat)
    assert (mean, spread, saturation, sharpness) == pytest.approx((100, 0, 0, 0))


@pytest.fixture(scope="module")
def loader_side():
    return loader_statistics(load_preset("dino"), natural_photos(), ROUNDS)


def test_the_dino_preset_is_dinos_augmentation_in_distribution(loader_side):
    import random

    import torch

    random.seed(0)
    torch.manual_seed(0)
    theirs = reference_statistics(dino_augmentation(), natural_photos(), ROUNDS)
    rows = compare(loader_side, theirs, POSITIONS)
    assert len(rows) == 15 and {r.crops for r in rows} == {ROUNDS * 8, ROUNDS * 8 * 8}
    for r in rows:
        assert r.ks <= r.chance, r


def test_a_transform_without_colour_jitter_is_told_apart(loader_side):
    import random

    random.seed(1)
    theirs = reference_statistics(dino_augmentation(jitter_probability=0.0), natural_photos(), ROUNDS)
    rows = compare(loader_side, theirs, POSITIONS)
    assert any(r.ks > r.chance for r in rows if r.statistic in ("luma spread", "saturation")), rows
