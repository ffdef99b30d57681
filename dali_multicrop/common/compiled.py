"""Numba, for the project's compiled kernels (the crop step's windows and draws, the CPU graph's crops, the CPU's
patch masks): imported only by the modules that hold them, so that importing the package loads neither Numba nor
LLVM.

DALI's ``numba_function`` operators are made here from C functions of the package's own, compiled by Numba and
cached on disk like every kernel (:func:`c_function`, :func:`operator_class`; on the GPU the setups, the kernels
being compiled for the device by DALI's plugin): the plugin would otherwise compile its wrapper of each operator's
Python functions in every process, uncached (about 3.5 s an operator on a 2-core x86
machine; a fresh process's first CPU batch took 7 s, most of it these compilations). The C functions follow the
plugin's calling convention (``RUN_SIGNATURE``, ``SETUP_SIGNATURE``): every argument an address or a count, the
outputs' and inputs' data and shapes read with :func:`data` and :func:`shape`."""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

import numba
import numpy as np
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["RUN_SIGNATURE", "SETUP_SIGNATURE", "c_function", "cpu_operator", "data", "jit", "operator_class",
           "operator_once", "shape"]

RUN_SIGNATURE = types.void(types.uint64, types.uint64, types.uint64, types.int32,
                           types.uint64, types.uint64, types.uint64, types.int32)
"""DALI's per-sample run function: the outputs' data addresses, their shapes' addresses, their dimension counts
(int32 each), the number of outputs; then the same four for the inputs."""

SETUP_SIGNATURE = types.void(types.uint64, types.uint64, types.int32,
                             types.uint64, types.uint64, types.int32, types.int32)
"""DALI's setup function (the outputs' shapes, to be written): the outputs' shapes' addresses (``[outputs,
samples]``), their dimension counts, the number of outputs; the same three for the inputs; the number of samples."""


def _cached(decorator: Callable[..., Any], function: Any) -> Any:
    """``function`` through Numba's ``decorator(cache=True)`` where Numba finds a writable cache folder (beside the
    module, else in the user's cache folder); elsewhere (a read-only install and home) uncached, compiled anew in
    every process."""
    try:
        return decorator(cache=True)(function)
    except RuntimeError:  # Numba found no writable cache folder
        return decorator()(function)


def jit(function: Any) -> Any:
    """``function`` compiled by Numba (nopython) on first use, its machine code cached on disk (:func:`_cached`)."""
    return _cached(numba.njit, function)


def c_function(signature: Any) -> Callable[[Any], Any]:
    """A decorator: the function compiled by Numba now as a C function of ``signature``, cached on disk as
    :func:`jit` caches."""
    return lambda function: _cached(lambda **cache: numba.cfunc(signature, **cache), function)


@intrinsic
def _pointer(typingctx: Any, address: Any) -> Any:
    """The untyped pointer at integer ``address`` (for Numba's ``carray``)."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@jit
def data(addresses: np.uint64, k: int) -> Any:
    """The data pointer of output or input ``k``, from the run function's table of ``addresses``."""
    return _pointer(carray(_pointer(addresses), k + 1, dtype=np.uint64)[k])


@jit
def shape(shapes: np.uint64, k: int, ndim: int, sample: int = 0, samples: int = 1) -> np.ndarray:
    """int64 ``[ndim]``: the shape of output or input ``k`` of ``sample`` (of ``samples``), from the table of shape
    addresses ``shapes`` (``[outputs or inputs, samples]``); writable, for the setup function's outputs."""
    row = carray(_pointer(shapes), (k + 1) * samples, dtype=np.uint64)[k * samples + sample]
    return carray(_pointer(row), ndim, dtype=np.int64)


@functools.lru_cache(maxsize=None)
def operator_class() -> Any:
    """DALI's ``NumbaFunction`` taking C functions of :func:`c_function` where it would compile Python ones: the
    setup (:data:`SETUP_SIGNATURE`) on both devices, the per-sample run (:data:`RUN_SIGNATURE`) on the CPU. A GPU
    operator's run stays a CUDA kernel, which DALI's plugin compiles for the device."""
    from nvidia.dali.plugin.numba.experimental import NumbaFunction

    class Compiled(NumbaFunction):
        def _get_run_fn_cpu(self, run_fn: Any, *args: Any) -> int:
            return run_fn.address

        def _get_setup_fn_cpu(self, setup_fn: Any) -> int:
            return setup_fn.address

    return Compiled


def cpu_operator(run: Any, setup: Any, out_types: list[Any], in_types: list[Any], outs_ndim: list[int],
                 ins_ndim: list[int]) -> Any:
    """DALI's CPU ``numba_function`` operator calling the C functions ``run`` (:data:`RUN_SIGNATURE`, per sample)
    and ``setup`` (:data:`SETUP_SIGNATURE`), both from :func:`c_function`: nothing compiled here."""
    return operator_class()(run_fn=run, setup_fn=setup, out_types=out_types, in_types=in_types,
                            outs_ndim=outs_ndim, ins_ndim=ins_ndim, device="cpu")


_LOCK = threading.Lock()
_OPERATORS: dict[str, Any] = {}


def operator_once(name: str, make: Callable[[], Any]) -> Any:
    """The DALI ``numba_function`` operator ``name``, made by ``make()`` (its compilation) the first time it is asked
    for in this process and shared by every graph after that; ``make`` runs with this module's lock held."""
    with _LOCK:
        if name not in _OPERATORS:
            _OPERATORS[name] = make()
        return _OPERATORS[name]
