"""What this machine gives the GPU path, and what is wrong with it: ``dali-multicrop doctor``.

Whether the GPU path runs at all depends on a pairing no single library reports: the NVIDIA driver (the newest
CUDA it supports), the CUDA torch was built for, and the CUDA flavour of the installed DALI wheel
(``nvidia-dali-cuda120`` or ``nvidia-dali-cuda130``). A torch or DALI built for a newer CUDA than the driver's
cannot use the GPU. :func:`diagnose` reads the facts, :func:`problems` says what does not fit and the command
that fixes it; the loader's "no CUDA GPU" error carries the same lines.
"""

from __future__ import annotations

import ctypes
import platform
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .common.dali import DALI_CUDA
from .common.system import installed_version

__all__ = ["Environment", "diagnose", "problems", "report"]

HW_JPEG_GPUS = ("A100", "A30", "A800", "H100", "H200", "H800", "H20", "GH200", "B200", "B100", "GB200")
"""GPUs with a hardware JPEG decoder (NVJPG) that DALI's mixed decoder uses (``hw_decoder_load``)."""


def _driver_cuda() -> Optional[str]:
    """The newest CUDA the NVIDIA driver supports ("12.4"), from the driver library itself; None without one."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    value = ctypes.c_int(0)
    try:
        if lib.cuDriverGetVersion(ctypes.byref(value)) != 0 or value.value <= 0:
            return None
    except AttributeError:
        return None
    return f"{value.value // 1000}.{(value.value % 1000) // 10}"


def _major(version: Optional[str]) -> Optional[int]:
    try:
        return int(str(version).split(".")[0]) if version else None
    except ValueError:
        return None


@dataclass
class Environment:
    """The facts: versions (None where not installed), the driver's CUDA (None: no driver), what torch sees."""

    python: str
    torch: Optional[str]
    torch_cuda: Optional[str]
    dali: dict[str, str]
    driver_cuda: Optional[str]
    torch_sees_cuda: bool
    gpus: list[str] = field(default_factory=list)
    nvimgcodec: Optional[int] = None
    numba: Optional[str] = None
    opencv: Optional[str] = None

    @property
    def hardware_jpeg(self) -> list[bool]:
        """Per GPU, whether it has a hardware JPEG decoder (by model)."""
        return [any(model in name for model in HW_JPEG_GPUS) for name in self.gpus]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hardware_jpeg": self.hardware_jpeg}


def diagnose() -> Environment:
    """Reads the facts of this machine (starts no GPU work beyond torch's own device query)."""
    torch_version = torch_cuda = None
    sees, gpus = False, []
    try:
        import torch

        torch_version, torch_cuda = torch.__version__, torch.version.cuda
        sees = bool(torch.cuda.is_available())
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if sees else []
    except Exception:  # a broken torch is a fact too: reported as not seeing CUDA
        pass
    nvimgcodec = None
    try:
        from nvidia.dali import backend

        nvimgcodec = int(backend.GetNvimgcodecVersion())
    except Exception:
        pass
    dali = {name: v for name in DALI_CUDA if (v := installed_version(name)) is not None}
    opencv = installed_version("opencv-python-headless") or installed_version("opencv-python")
    return Environment(python=platform.python_version(), torch=torch_version, torch_cuda=torch_cuda, dali=dali,
                       driver_cuda=_driver_cuda(), torch_sees_cuda=sees, gpus=gpus, nvimgcodec=nvimgcodec,
                       numba=installed_version("numba"), opencv=opencv)


def problems(env: Environment) -> list[str]:
    """What keeps the GPU path (or any path) from running here, each line with its fix; empty where it all fits."""
    out = []
    if not env.dali:
        out.append("DALI is not installed: make install (CUDA 12 drivers), make install DALI=cuda13 (CUDA 13), or "
                   "pip install nvidia-dali-cuda120")
    elif len(env.dali) > 1:
        out.append(f"two DALI flavours are installed ({', '.join(env.dali)}): they shadow each other; keep the one "
                   f"for your driver (make install removes the other)")
    if env.numba is None:
        out.append("numba is not installed: the graph's crop step needs it (pip install numba)")
    driver = _major(env.driver_cuda)
    if driver is None:
        return out  # no NVIDIA driver: the CPU path is all there is, and nothing is wrong with that
    torch_major = _major(env.torch_cuda)
    if env.torch is not None and env.torch_cuda is None:
        out.append(f"torch {env.torch} is a CPU-only build: install a torch built for CUDA {driver} or older to use "
                   f"the GPU (the driver supports CUDA {env.driver_cuda})")
    elif torch_major is not None and torch_major > driver:
        out.append(f"torch was built for CUDA {env.torch_cuda}, newer than the {env.driver_cuda} the driver "
                   f"supports, so torch sees no GPU: install a torch built for CUDA {driver} (PyTorch's cu{driver}x "
                   f"wheels), or update the driver")
    for name in env.dali:
        if DALI_CUDA[name] > driver:
            fix = f"make install DALI=cuda{driver}" if driver in DALI_CUDA.values() else "update the driver"
            out.append(f"{name} is built for CUDA {DALI_CUDA[name]}, newer than the {env.driver_cuda} the "
                       f"driver supports: {fix}")
    if not out and not env.torch_sees_cuda:
        out.append(f"the driver supports CUDA {env.driver_cuda} and the builds fit it, yet torch sees no GPU "
                   f"(CUDA_VISIBLE_DEVICES set to nothing? a GPU in use by another container?)")
    return out


def report(env: Environment) -> list[str]:
    """The facts as ``name: value`` lines, for the command."""
    gpus = ", ".join(f"{name}{' (hardware JPEG decoder)' if hw else ''}"
                     for name, hw in zip(env.gpus, env.hardware_jpeg)) or "none that torch sees"
    return [f"python: {env.python}",
            f"torch: {env.torch or 'not installed'}" + (f" (built for CUDA {env.torch_cuda})" if env.torch_cuda
                                                        else " (CPU-only build)" if env.torch else ""),
            "DALI: " + (", ".join(f"{k} {v}" for k, v in env.dali.items()) or "not installed")
            + (f" (nvImageCodec {env.nvimgcodec})" if env.nvimgcodec is not None and env.nvimgcodec > 0 else ""),
            "NVIDIA driver: " + (f"supports CUDA {env.driver_cuda}" if env.driver_cuda else "none (CPU only)"),
            f"GPUs: {gpus}",
            f"numba: {env.numba or 'not installed'}; OpenCV: {env.opencv or 'not installed'}"]


if __name__ == "__main__":  # for the Makefile (DALI=auto), before anything else is installed: the driver's CUDA major
    import sys

    if sys.argv[1:] != ["--driver-cuda-major"]:
        raise SystemExit("usage: python -m dali_multicrop.doctor --driver-cuda-major (see dali-multicrop doctor)")
    print(_major(_driver_cuda()) or "")
