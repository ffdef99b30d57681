"""Imports DALI on first use, with an install hint instead of a bare ImportError."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .system import installed_version

DALI_CUDA = {"nvidia-dali-cuda120": 12, "nvidia-dali-cuda130": 13}
"""DALI's wheels, by the CUDA major version each is built for."""
DALI_DISTRIBUTIONS = tuple(DALI_CUDA)
INSTALL_HINT = ("install DALI with the project: pip install 'dali-multicrop[cuda12]' (CUDA 12 drivers and CPU-only "
                "machines) or 'dali-multicrop[cuda13]' (CUDA 13 drivers)")


def installed_dali_distributions() -> list[str]:
    """Which of the DALI wheels this environment holds."""
    return [name for name in DALI_DISTRIBUTIONS if installed_version(name) is not None]


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
