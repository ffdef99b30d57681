"""`dali-multicrop doctor` and the pairing it checks: the driver's CUDA against torch's and DALI's builds."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dali_multicrop.doctor import Environment, problems


def env(**changes) -> Environment:
    base = dict(python="3.12.0", torch="2.11.0+cu130", torch_cuda="13.0", dali={"nvidia-dali-cuda130": "2.4.0"},
                driver_cuda="13.0", torch_sees_cuda=True, gpus=["NVIDIA H100 80GB HBM3"], numba="0.68.1",
                opencv="5.0.0")
    return Environment(**{**base, **changes})


def test_a_fitting_pairing_has_no_problem_and_names_the_hardware_decoder():
    assert problems(env()) == []
    assert env().hardware_jpeg == [True] and env(gpus=["NVIDIA GeForce RTX 4090"]).hardware_jpeg == [False]
    assert problems(env(driver_cuda=None, torch_sees_cuda=False, gpus=[])) == []  # no driver: the CPU path


def test_torch_built_for_a_newer_cuda_than_the_driver_is_named_with_the_fix():
    found = problems(env(driver_cuda="12.4", torch_sees_cuda=False, gpus=[], dali={"nvidia-dali-cuda120": "2.4.0"}))
    assert len(found) == 1
    assert "torch was built for CUDA 13.0, newer than the 12.4 the driver supports" in found[0]
    assert "torch built for CUDA 12 (PyTorch's cu12x wheels)" in found[0]


def test_dali_built_for_a_newer_cuda_than_the_driver_is_named_with_the_fix():
    found = problems(env(driver_cuda="12.4", torch="2.5.0+cu124", torch_cuda="12.4"))
    assert found == ["nvidia-dali-cuda130 is built for CUDA 13, newer than the 12.4 the driver supports: "
                     "make install DALI=cuda12"]


@pytest.mark.parametrize("changes,words", [
    ({"dali": {}}, "DALI is not installed"),
    ({"dali": {"nvidia-dali-cuda120": "2.4.0", "nvidia-dali-cuda130": "2.4.0"}}, "two DALI flavours are installed"),
    ({"numba": None}, "numba is not installed"),
    ({"torch": "2.11.0+cpu", "torch_cuda": None, "torch_sees_cuda": False}, "is a CPU-only build"),
    ({"torch_sees_cuda": False, "gpus": []}, "yet torch sees no GPU"),
])
def test_each_misfit_says_what_to_do(changes, words):
    assert any(words in line for line in problems(env(**changes))), problems(env(**changes))


def test_doctor_command_on_this_machine():
    proc = subprocess.run([sys.executable, "-m", "dali_multicrop", "doctor"], capture_output=True, text=True,
                          timeout=120)
    import torch

    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:6]] == ["python", "torch", "DALI", "NVIDIA driver", "GPUs",
                                                          "numba"]
    ok, found = "\nok: " in proc.stdout, "\nproblem: " in proc.stdout
    assert ok != found and proc.returncode == (1 if found else 0)
    if ok and not torch.cuda.is_available():
        assert "ok: no NVIDIA driver" in proc.stdout


def test_the_loaders_no_gpu_error_carries_the_diagnosis(monkeypatch, tmp_path):
    import torch

    from dali_multicrop import DaliMultiCropLoader, doctor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(doctor, "diagnose", lambda: env(driver_cuda="12.4", torch_sees_cuda=False, gpus=[],
                                                        dali={"nvidia-dali-cuda120": "2.4.0"}))
    with pytest.raises(ValueError, match=r"(?s)torch sees no CUDA GPU here.*torch is built for CUDA 13.0, the driver "
                                         r"supports CUDA 12.4, DALI installed: nvidia-dali-cuda120.*torch was built "
                                         r"for CUDA 13.0, newer than the 12.4.*cu12x wheels.*dali-multicrop doctor"):
        DaliMultiCropLoader(str(tmp_path), device="gpu")
