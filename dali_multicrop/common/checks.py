"""Argument checks shared by every constructor: a ValueError naming the argument and echoing the value."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

__all__ = ["check_int", "check_probability", "check_range", "check_rgb", "install_hint", "rgb_expectation"]


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or ValueError unless it is an integer (not a bool) >= ``minimum``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_probability(name: str, value: Any) -> float:
    """``value`` as a float, or ValueError unless it is a number in [0, 1]."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def rgb_expectation(value: Any, positive: bool) -> Optional[str]:
    """What an RGB triple in [0, 1] units (a normalisation mean, ``positive=False``, or std, ``positive=True``)
    must be, when ``value`` is not one (with the division by 255 that a 0-255 triple needs); None when it is."""
    try:
        triple = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        triple = ()
    if len(triple) != 3 or (positive and min(triple) <= 0) or any(v != v for v in triple) or \
            any(isinstance(v, bool) for v in value):
        return f"three {'positive ' if positive else ''}numbers (R, G, B in [0, 1] units)"
    if max(abs(v) for v in triple) > 1:
        scaled = ", ".join(f"{v / 255:.3f}" for v in triple)
        return f"in [0, 1] units (R, G, B): values in 0-255 units? divide by 255: ({scaled})"
    return None


def check_rgb(name: str, value: Any, positive: bool) -> tuple[float, float, float]:
    """``value`` as three floats, or ValueError unless it is an RGB triple in [0, 1] units (see
    :func:`rgb_expectation`)."""
    expected = rgb_expectation(value, positive)
    if expected is not None:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    r, g, b = (float(v) for v in value)
    return r, g, b


def check_range(name: str, value: Any, *, low: float, high: float, low_open: bool = False,
                form: str = "") -> tuple[float, float]:
    """A ``(min, max)`` pair inside ``[low, high]`` (``(low, high]`` when ``low_open``) with min <= max."""
    bound = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (min, max) in {bound}{form}, got {value!r}") from None
    below = lo <= low if low_open else lo < low
    if below or hi > high or math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"{name} must lie in {bound}{form}, got {value!r}")
    if lo > hi:
        raise ValueError(f"{name} must have min <= max, got {value!r}")
    return lo, hi


def install_hint(packages: str, extra: str) -> str:
    """How to install what an optional feature needs: the packages themselves (the package is not on an index, so
    ``pip install 'dali-multicrop[extra]'`` cannot work), or the project's extra from a checkout."""
    return f"pip install {packages}, or in the project's checkout: pip install -e '.[{extra}]'"
