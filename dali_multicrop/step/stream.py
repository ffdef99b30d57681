"""The counter-based random stream the compiled kernels draw from (:mod:`dali_multicrop.step`), compiled by Numba:
draw number ``counter`` of the stream of a 64-bit ``key`` is computed on its own, in any order, in any thread."""

from __future__ import annotations

import numpy as np

from ..common.compiled import jit

__all__ = ["batch_keys_into", "mix", "uniform", "unit", "word"]

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
def word(key: np.uint64, counter: np.uint64) -> np.uint64:
    """Word number ``counter`` of the stream ``key``: SplitMix64 at the counter's position (distinct counters of one
    key are distinct positions, the golden step being odd, and give distinct words, ``mix`` being a bijection)."""
    return mix(key + (counter + np.uint64(1)) * _GOLDEN)


@jit
def unit(key: np.uint64, counter: int) -> float:
    """Draw number ``counter`` (0 or more) of the stream ``key``: uniform in [0, 1) on 2**-53 steps (the top 53 bits
    of :func:`word`)."""
    return np.float64(word(key, np.uint64(counter)) >> np.uint64(11)) * _TO_UNIT


@jit
def uniform(key: np.uint64, counter: int, low: float, high: float) -> float:
    """Draw number ``counter`` of the stream ``key`` mapped to ``[low, high)``: ``low + (high - low) * u``."""
    return low + (high - low) * unit(key, counter)


@jit
def batch_keys_into(out: np.ndarray, epoch_key: np.uint64, batch: int) -> None:
    """Writes ``out`` (uint64 ``[B]``): the stream keys of batch ``batch``'s samples, words ``batch * 2**32 + i`` of
    the stream ``epoch_key`` (distinct for every sample of the epoch)."""
    first = np.uint64(batch) << np.uint64(32)
    for i in range(out.shape[0]):
        out[i] = word(epoch_key, first + np.uint64(i))
