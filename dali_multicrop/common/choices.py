"""The choice lists the loader's arguments take, and their conversions: one owner for each (imported by the config
reader and the CLI without torch or DALI)."""

from __future__ import annotations

from typing import Any

__all__ = ["DEVICES", "DTYPES", "dali_dtype", "torch_dtype"]

DEVICES = ("gpu", "cpu", "auto")
"""Where the graph runs: the GPU, CPU threads, or the GPU where torch sees CUDA."""
DTYPES = ("float32", "float16")
"""The crops' dtypes."""


def torch_dtype(name: str) -> Any:
    """The torch dtype of crops of dtype ``name`` (one of :data:`DTYPES`)."""
    import torch

    return {"float32": torch.float32, "float16": torch.float16}[name]


def dali_dtype(name: str) -> Any:
    """DALI's type for crops of dtype ``name`` (one of :data:`DTYPES`)."""
    from .dali import dali_modules

    _, _, types = dali_modules()
    return {"float32": types.FLOAT, "float16": types.FLOAT16}[name]
