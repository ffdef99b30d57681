"""The GPU graph's colour kernels without a GPU: their arithmetic run in Numba's CUDA simulator equals the CPU graph's
(which equals torchvision on PIL: tests/test_pil_colour.py, tests/test_fidelity.py) value for value, over crops of
natural photographs and the rows the crop step draws; and they compile for an H100's instruction set (what the
GPU's own compile does, short of loading the code), so a kernel Numba's CUDA target refuses fails here, not on a lent
machine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SIMULATED = textwrap.dedent("""
    import numpy as np
    from dali_multicrop.graph import gpu_colour as kernels
    from dali_multicrop.step.draws import batch_keys, draw_batch, epoch_key
    from dali_multicrop.fidelity.table import natural_photos, photo_crops
    from dali_multicrop.pixels.crop_colour import colour_crop
    from dali_multicrop.pixels.pil_colour import ROW_SHIFT
    from dali_multicrop.recipes.presets import load_preset

    crops = photo_crops(natural_photos()[:4], sizes=(19, 24), seed=2)
    rows = draw_batch(load_preset("dino"), batch_keys(epoch_key(0, 0, 0), 0, 8)).colour.reshape(-1, 9)
    rows = rows[np.any(rows[:, :3] != 1, axis=1) | (rows[:, ROW_SHIFT] >= 0)][:24]  # jittered ones
    assert len(rows) >= 16 and len({tuple(r[4:8]) for r in rows}) >= 8  # many orders
    checked = 0
    for k, crop in enumerate(crops):
        for row in rows[k % 3::3]:
            want = np.empty_like(crop)
            colour_crop(want, crop, row)
            lum = np.zeros(crop.shape[:2], np.uint8)
            kernels.launch(kernels.luma_before_contrast, lum, crop, row, blocks=3, threads=32)
            total = np.array([[lum.astype(np.uint64).sum()]], dtype=np.uint64)
            out = np.zeros_like(crop)
            kernels.launch(kernels.colour_pixels, out, crop, row, total, blocks=3, threads=32)
            assert np.array_equal(out, want), (k, row)
            checked += 1
    print("checked", checked)
""")


def test_the_gpu_kernels_in_cudas_simulator_equal_the_cpu_graphs_colour():
    pytest.importorskip("skimage", reason="the natural photographs come with scikit-image")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", SIMULATED], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) >= 60


COMPILED = textwrap.dedent("""
    import types
    import numba.cuda.api
    import numba.cuda.dispatcher
    from numba import cuda
    from numba import types as nt
    from numba.cuda.cudadrv import nvvm

    try:
        nvvm.NVVM()
    except Exception as error:
        print("NO NVVM", error)
        raise SystemExit(0)
    # the compile asks the current device for its compute capability: here there is none, so it is an H100's
    h100 = lambda: types.SimpleNamespace(compute_capability=(9, 0), id=0)
    numba.cuda.api.get_current_device = h100
    if hasattr(numba.cuda.dispatcher, "get_current_device"):
        numba.cuda.dispatcher.get_current_device = h100
    from dali_multicrop.graph import gpu_colour as kernels

    image, plane = nt.Array(nt.uint8, 3, "C"), nt.Array(nt.uint8, 2, "C")
    row, total = nt.Array(nt.float32, 1, "C"), nt.Array(nt.uint64, 2, "C")
    for kernel, args in ((kernels.luma_before_contrast, (plane, image, row)),
                         (kernels.colour_pixels, (image, image, row, total))):
        ptx, _ = cuda.compile_ptx(kernel, args, cc=(9, 0))
        assert ".entry" in ptx and "sm_90" in ptx
        print(kernel.__name__, len(ptx))
""")


def test_the_gpu_kernels_compile_for_an_h100():
    proc = subprocess.run([sys.executable, "-c", COMPILED], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if proc.stdout.startswith("NO NVVM"):
        pytest.skip(f"CUDA's NVVM is not installed here: {proc.stdout.strip()}")
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names == ["luma_before_contrast", "colour_pixels"]


def test_the_sum_between_the_kernels_is_defined_as_dali_takes_it():
    """The GPU graph sums each crop's lumas with DALI's reduction between its two kernels; the same call on the CPU
    (DALI's schema is the device's both): uint8 in, uint64 out (DALI refuses int64 for uint8), one value a sample,
    exact at the largest crop's total."""
    import numpy as np
    from nvidia.dali import fn, pipeline_def

    from dali_multicrop.graph.gpu_colour import luma_total

    planes = [np.full((448, 448), 255, np.uint8), np.arange(12, dtype=np.uint8).reshape(3, 4)]

    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def sums():
        return luma_total(fn.external_source(source=lambda: planes, batch=True))

    pipe = sums()
    pipe.build()
    out = pipe.run()[0]
    assert [np.asarray(out.at(i)).tolist() for i in range(2)] == [[[255 * 448 * 448]], [[66]]]
    assert np.asarray(out.at(0)).dtype == np.uint64
