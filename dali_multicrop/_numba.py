"""Numba, for the project's compiled kernels (the crop step's windows and draws, the CPU's patch masks): imported
only by the modules that hold them, so that importing the package loads neither Numba nor LLVM."""

from __future__ import annotations

from typing import Any

import numba

__all__ = ["jit"]


def jit(function: Any) -> Any:
    """``function`` compiled by Numba (nopython) on first use, its machine code cached on disk (beside the module,
    else in the user's cache folder) where a folder is writable; elsewhere (a read-only install and home) compiled
    anew in every process."""
    try:
        return numba.njit(cache=True)(function)
    except RuntimeError:  # Numba found no writable cache folder
        return numba.njit(function)
