"""What machine and libraries a figure was measured with."""

from __future__ import annotations

import platform
import subprocess
from typing import Any

from ..common.system import installed_version, visible_cores

__all__ = ["describe_machine"]

_LIBRARIES = ("dali-multicrop", "nvidia-dali-cuda120", "nvidia-dali-cuda130", "torch", "torchvision", "albumentations",
              "opencv-python-headless", "numpy", "pillow")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> dict[str, Any]:
    try:
        import torch

        if not torch.cuda.is_available():
            return {"gpu": None}
        info: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "cuda_runtime": torch.version.cuda,
                                "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    except Exception as exc:  # a broken CUDA set-up is reported, not fatal
        return {"gpu": None, "gpu_error": str(exc)}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    return info


def describe_machine() -> dict[str, Any]:
    """CPU model and cores, GPU, driver, OS, Python and library versions."""
    cores = visible_cores()
    libraries = {name: version for name in _LIBRARIES if (version := installed_version(name)) is not None}
    return {"host": platform.node(), "cpu": _cpu_model(), "cores": cores, **_gpu(),
            "os": platform.platform(), "python": platform.python_version(), "libraries": libraries}
