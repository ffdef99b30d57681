"""The counter-based random stream the compiled kernels draw from (:mod:`dali_multicrop.step`), compiled by Numba:
draw number ``counter`` of the stream of a 64-bit ``key`` is computed on its own, in any order, in any thread."""

from __future__ import annotations

import numpy as np

from ._numba import jit

__all__ = ["mix", "unit"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@jit
def mix(x: np.uint64) -> np.uint64:
    """SplitMix64's output function: a bijection of 64-bit words that scrambles every input bit into every output
    bit (Steele, Lea and Flood, 2014)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@jit
def unit(key: np.uint64, counter: int) -> float:
    """Draw number ``counter`` (0 or more) of the stream ``key``: uniform in [0, 1) on 2**-53 steps (SplitMix64 at
    the counter's position: distinct counters of one key are distinct positions, the golden step being odd)."""
    return np.float64(mix(key + np.uint64(counter + 1) * _GOLDEN) >> np.uint64(11)) * _TO_UNIT
