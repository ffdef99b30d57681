"""bench/device_check.py, the checks prepared for a lent GPU: every call fits one device call, the figures that
matter most come first, the sizes time no epoch boundary, what a call needs is checked before it starts, and the
gpu-marked tests are collected whatever the machine lacks."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "bench" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_check"] = module
    spec.loader.exec_module(module)
    return module


def test_every_call_fits_one_device_call(check):
    """Each call's step timeouts, with the import check and (call 1) the kit's last part, stay within the
    budget; the device allows 600 s a call, so a call that runs to every limit still returns its results."""
    assert check.CALL_BUDGET_S <= 540
    plans = check.calls(check.Sizes())
    assert sorted(plans) == [1, 2, 3, 4]
    for call, steps in plans.items():
        assert check.call_seconds(call, steps) <= check.CALL_BUDGET_S, (call, check.call_seconds(call, steps))
        assert all(0 < s.timeout <= 150 for s in steps)
    assert check.call_seconds(1, plans[1]) >= sum(s.timeout for s in plans[1]) + check.KIT_S


def test_the_first_call_brings_the_figures_that_matter_most(check):
    first = check.calls(check.Sizes())[1]
    text = [" ".join(s.argv) for s in first]
    assert any("dali_multicrop doctor" in t for t in text)
    assert any("pytest -q -m gpu" in t for t in text)
    decode = next(s for s in first if "--backend decode " in " ".join(s.argv) + " ")
    assert decode.engines and "decode-cpu" in decode.argv
    main = next(t for t in text if "dali-gpu" in t)
    assert all(f"--backend {b}" in main for b in ("dali-gpu", "dali-cpu", "torchvision"))


def test_the_ab_call_runs_each_executor_setting_and_decoder_load_with_the_default_first_and_last(check):
    steps = check.calls(check.Sizes())[2]
    executors = [s.argv[s.argv.index("--executor") + 1] for s in steps if "--executor" in s.argv]
    assert executors[0] == executors[-1] == "" and len(executors) == len(check.EXECUTOR_AB) + 1
    for part in ("concurrency=full", "stream_policy=per_operator", "resize_batch=batch"):
        assert part in executors
    from dali_multicrop.graph.executor import ExecutorSettings

    for text in executors:
        ExecutorSettings.parse(text)  # every one valid
    loads = [s.argv[s.argv.index("--hw-decoder-load") + 1] for s in steps if "--hw-decoder-load" in s.argv]
    assert loads == ["0", "1"]


def test_the_sizes_time_no_epoch_boundary(check):
    assert check.Sizes().fits_one_epoch and check.Sizes(256, 16, 4).fits_one_epoch
    assert not check.Sizes(4096, 128, 30).fits_one_epoch  # 33 batches in an epoch of 32
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "device_check.py"), "--plan", "--batches", "30"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "an epoch boundary would be timed" in proc.stderr


def test_every_command_a_step_runs_exists(check):
    from typer.main import get_command

    from dali_multicrop.cli import app

    commands = set(get_command(app).commands)
    for steps in check.calls(check.Sizes()).values():
        for step in steps:
            argv = list(step.argv)
            if argv[1:3] == ["-m", "dali_multicrop"]:
                assert argv[3] in commands, argv
            for arg in argv:
                if arg.endswith(".py") and "/" in arg:
                    assert (ROOT / arg).is_file(), arg


def hidden(tmp_path: Path, *names: str) -> dict[str, str]:
    """An environment in which ``names`` cannot be imported (each a package that raises ModuleNotFoundError)."""
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n")
    outer = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not a worker of this run's pytest
    return {**outer, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}


def test_a_call_refuses_to_start_with_one_line_when_numba_is_missing(tmp_path):
    out = tmp_path / "out"
    env = {**hidden(tmp_path, "numba"), "OUT": str(out)}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "device_check.py"), "--call", "2"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "call 2 cannot start: numba (ModuleNotFoundError" in lines[0]
    assert "make-dali-kit.sh" in lines[0] and (out / "call-2" / "summary.txt").read_text().strip() == lines[0]


def test_the_gpu_tests_are_collected_without_hypothesis_or_pytest_timeout(tmp_path):
    """On a machine without either, collection used to stop with an error and no gpu test ran."""
    env = hidden(tmp_path, "hypothesis")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "--collect-only", "-p", "no:timeout",
                           "-p", "no:hypothesispytest", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:]
    collected = [line for line in proc.stdout.splitlines() if "::" in line]
    assert len(collected) >= 25 and "error" not in proc.stdout.splitlines()[-1]


def test_the_gpu_test_summary_says_how_many_ran(check):
    assert check.gpu_test_count("....\n29 passed, 506 deselected in 80.1s\n") == [
        "gpu tests: 29 ran (29 passed, 0 failed, 0 errors), 0 skipped"]
    assert check.gpu_test_count("2 failed, 25 passed, 2 skipped, 506 deselected in 9s") == [
        "gpu tests: 27 ran (25 passed, 2 failed, 0 errors), 2 skipped"]
    assert "none ran" in check.gpu_test_count("29 skipped, 506 deselected in 4s")[0]
    assert "NO SUMMARY LINE" in check.gpu_test_count("ERROR collecting tests/test_x.py\nInterrupted")[0]


def test_the_driver_itself_needs_only_the_standard_library(tmp_path):
    """It runs under the device's own Python before the kit is on its path: neither the package nor torch nor
    numba is imported by the driver (the steps import them, in processes of their own); NVML is read by a module
    loaded by its path."""
    env = hidden(tmp_path, "torch", "numba", "numpy")
    code = ("import sys; sys.path.insert(0, 'bench'); import device_check as d; d.main(['--plan']); "
            "print(d._nvml().EngineSampler().reading.summary()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numba', 'numpy', 'dali_multicrop')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "call 1: at most" in proc.stdout and "engine utilisation" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_numba_is_pointed_at_the_kits_nvvm_only_where_the_machine_has_none(check, tmp_path):
    """The GPU graph's colour kernels are compiled by Numba's CUDA target, which looks for NVVM under CUDA_HOME:
    the kit's copy (the nvidia-nvvm wheel) is linked in that layout, unless the system has its own."""
    site, home, system = tmp_path / "site", tmp_path / "home", tmp_path / "cuda"
    assert check.nvvm_home(site, home, system) is None  # no NVVM in the kit
    for name in check.KIT_NVVM:
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(b"x")
    folder = check.nvvm_home(site, home, system)
    assert (folder / "nvvm/lib64/libnvvm.so").resolve() == (site / check.KIT_NVVM[0]).resolve()
    assert (folder / "nvvm/libdevice/libdevice.10.bc").resolve() == (site / check.KIT_NVVM[1]).resolve()
    assert check.nvvm_home(site, home, system) == folder  # a second call finds the links made
    (system / "nvvm" / "lib64").mkdir(parents=True)
    assert check.nvvm_home(site, home, system) is None  # the machine's own comes first
