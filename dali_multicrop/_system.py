"""Facts about the machine the code runs on."""

from __future__ import annotations

import os

__all__ = ["visible_cores"]


def visible_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else every core), >= 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
