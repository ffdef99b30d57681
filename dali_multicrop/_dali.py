"""Imports DALI on first use, with an install hint instead of a bare ImportError."""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata
from typing import Any

DALI_DISTRIBUTIONS = ("nvidia-dali-cuda120", "nvidia-dali-cuda130")
INSTALL_HINT = ("install DALI with the project: pip install 'dali-multicrop[cuda12]' (CUDA 12 drivers and CPU-only "
                "machines) or 'dali-multicrop[cuda13]' (CUDA 13 drivers)")


def installed_dali_distributions() -> list[str]:
    """Which of the DALI wheels this environment holds."""
    found = []
    for name in DALI_DISTRIBUTIONS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


@lru_cache(maxsize=None)
def dali_modules() -> tuple[Any, Any, Any]:
    """``(nvidia.dali, nvidia.dali.fn, nvidia.dali.types)``; raises ImportError with an install hint."""
    found = installed_dali_distributions()
    if len(found) > 1:
        raise ImportError(f"both {' and '.join(found)} are installed; they overwrite each other's files. "
                          f"Uninstall both, then {INSTALL_HINT}")
    try:
        import nvidia.dali as dali
        from nvidia.dali import fn, types
    except ImportError as exc:
        raise ImportError(f"NVIDIA DALI is not importable ({exc}); {INSTALL_HINT}") from exc
    return dali, fn, types
