"""Counts what torch code asks of the device: operators dispatched (on CUDA, each launches at most one or
two kernels) and host read-backs (``.item()``, ``int()``, ``bool()`` of a tensor: each one a wait for the GPU)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["DispatchCounter"]


class DispatchCounter(TorchDispatchMode):
    """``with DispatchCounter() as c: ...`` then ``c.ops`` (operators dispatched, by the tensors' device or
    not) and ``c.read_backs`` (values copied to the host). Works the same on the CPU, so a CPU run tells how
    a CUDA run would behave."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.read_backs = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops += 1
        if func is torch.ops.aten._local_scalar_dense.default:
            self.read_backs += 1
        return func(*args, **(kwargs or {}))
