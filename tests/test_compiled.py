"""The package's compiled DALI operators (the crop step, the CPU graph's crop operator) are Numba C functions cached
on disk: a fresh process loads them instead of compiling (dali_multicrop.common.compiled)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

from conftest import COMPILED_AT_IMPORT

_RECORD = """
from numba.core import event
from dali_multicrop import DaliMultiCropLoader
from dali_multicrop.sample_data import ensure_tiny_data
folder = ensure_tiny_data(32)
with event.install_recorder("numba:compile") as recorder:
    loader = DaliMultiCropLoader(folder, crops="2x32,6x16", batch_size=8, device="cpu", seed=1)
    batch = next(iter(loader))
print(len(recorder.buffer), tuple(batch.crops[0].shape))
"""


def test_a_fresh_process_compiles_nothing_to_build_and_run_the_cpu_graph(tmp_path):
    """With the cache written (importing the kernel modules compiles their C functions, as the first process after
    an install does), a new process's CPU loader makes its graph and first batch without one Numba compilation
    (DALI's own numba_function wrapper compiled both operators in every process: 88 compilations, 7 s here)."""
    for module in COMPILED_AT_IMPORT:
        importlib.import_module(module)  # writes the cache where it is cold

    done = subprocess.run([sys.executable, "-c", _RECORD], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "0", done.stdout
    assert "(8, 3, 32, 32)" in done.stdout


def test_a_c_function_compiles_in_the_process_where_no_cache_folder_is_writable(tmp_path):
    """A read-only install and home (forced as in test_windows): the C function compiles in the process, uncached,
    and DALI's calling convention reads its outputs' shapes and data as written."""
    code = """
import ctypes
import numpy as np
from numba import carray
from dali_multicrop.common.compiled import RUN_SIGNATURE, c_function, data, shape

@c_function(RUN_SIGNATURE)
def run(outs, out_shapes, out_ndims, num_outs, ins, in_shapes, in_ndims, num_ins):
    size = shape(in_shapes, 0, 2)
    source = carray(data(ins, 0), (size[0], size[1]), dtype=np.float32)
    out = carray(data(outs, 0), (size[0], size[1]), dtype=np.float32)
    out[:] = 2 * source

source = np.arange(6, dtype=np.float32).reshape(2, 3)
out = np.zeros_like(source)
table = lambda *arrays: np.array([a.ctypes.data for a in arrays], dtype=np.uint64)
dims = np.array([2, 3], dtype=np.int64)
outs, ins, shapes = table(out), table(source), table(dims)
ndims = np.array([2], dtype=np.int32)
call = ctypes.CFUNCTYPE(None, *([ctypes.c_uint64] * 3 + [ctypes.c_int32]) * 2)(run.address)
call(outs.ctypes.data, shapes.ctypes.data, ndims.ctypes.data, 1, ins.ctypes.data, shapes.ctypes.data,
     ndims.ctypes.data, 1)
print(type(run._cache).__name__, out.tolist())
"""
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "_IPythonCacheLocator"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "NullCache"
    assert "[[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]]" in done.stdout
