"""Soak (marker ``slow``, run by ``make soak``): thousands of batches and dozens of loaders leave memory,
threads and open files where they were. Figures: bench/README.md ("Soak")."""

from __future__ import annotations

import pytest

from dali_multicrop.benchmark.soak import churn_loaders, soak_batches, tiny_source

pytestmark = pytest.mark.slow


def _steady(samples: list[dict]) -> None:
    """After warm-up (200 batches) resident memory stays within 5% of its first reading; threads and open files
    do not move at all."""
    warm = [s for s in samples if s["batch"] >= 200]
    reference = warm[0]
    for s in warm:
        assert s["rss_mib"] <= reference["rss_mib"] * 1.05, (reference, s)
        assert (s["threads"], s["fds"]) == (reference["threads"], reference["fds"]), (reference, s)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["folder", "tar"])
def test_2000_batches_hold_steady(kind):
    """2000 batches of 32 over 256 tiny images: 250 epoch boundaries (for tar shards, 250 pipelines built and
    torn down)."""
    _steady(soak_batches(2000, every=100, batch_size=32, source=tiny_source(kind)))


@pytest.mark.timeout(600)
def test_50_loaders_made_and_dropped_leak_nothing():
    churn = churn_loaders(50)
    before, after, trimmed = churn["before"], churn["after"], churn["after_trim"]
    assert (after["threads"], after["fds"]) == (before["threads"], before["fds"])  # freed by `del` alone
    assert after["rss_mib"] <= before["rss_mib"] * 1.05
    assert trimmed["rss_mib"] <= before["rss_mib"] * 1.01  # what remains is the heap's free space, not held
