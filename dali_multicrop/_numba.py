"""Numba, for the project's compiled kernels (the crop step's windows and draws, the CPU's patch masks): imported
only by the modules that hold them, so that importing the package loads neither Numba nor LLVM."""

from __future__ import annotations

import threading
from typing import Any, Callable

import numba

__all__ = ["jit", "operator_once"]


def jit(function: Any) -> Any:
    """``function`` compiled by Numba (nopython) on first use, its machine code cached on disk (beside the module,
    else in the user's cache folder) where a folder is writable; elsewhere (a read-only install and home) compiled
    anew in every process."""
    try:
        return numba.njit(cache=True)(function)
    except RuntimeError:  # Numba found no writable cache folder
        return numba.njit(function)


_LOCK = threading.Lock()
_OPERATORS: dict[str, Any] = {}


def operator_once(name: str, make: Callable[[], Any]) -> Any:
    """The DALI ``numba_function`` operator ``name``, made by ``make()`` (its compilation) the first time it is asked
    for in this process and shared by every graph after that; ``make`` runs with this module's lock held."""
    with _LOCK:
        if name not in _OPERATORS:
            _OPERATORS[name] = make()
        return _OPERATORS[name]
