"""Counts what torch code asks of the device: operators dispatched (on CUDA, each launches at most one or
two kernels) and the calls that make the host wait for the GPU: values read back (``.item()``, ``int()``,
``bool()``, ``.tolist()``, ``.numpy()``, ``.cpu()``, and the operators whose output's shape depends on the values,
``nonzero``, ``masked_select``, ``unique``, indexing with a bool mask, which read a count back) and host data copied
to the device (``torch.tensor(...)``, ``torch.as_tensor`` of host data, ``.to(device)`` / ``.cuda()`` of a host
tensor), each of which, without ``non_blocking`` from pinned memory, waits for every kernel queued before it, the
training step's included."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["DispatchCounter"]

_READS = frozenset({"tolist", "numpy", "cpu"})
"""Tensor methods that bring a tensor's values to the host (on CUDA: a wait for the GPU)."""
_DATA_SHAPED = frozenset(op for op in (getattr(torch.ops.aten, name, None) for name in (
    "nonzero", "masked_select", "_unique2", "unique_consecutive", "unique_dim")) if op is not None)
"""Operators whose output's shape depends on the input's values: on CUDA each reads a count back."""
_UPLOADS = frozenset({"tensor"})
"""Factories that make a tensor from host data (on CUDA: a copy that waits for the GPU)."""


class _HostCalls(TorchFunctionMode):
    """The Python-level calls that read values to the host or copy host data in, counted by name (they do not all
    reach the dispatcher: ``.tolist()`` of a CPU tensor does not)."""

    def __init__(self, counter: "DispatchCounter") -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        target = _destination(name, args[1:], kwargs)
        if name in _READS or (target is not None and target.type == "cpu"):
            self.counter.read_backs += 1
            self.counter.calls.append(name)
        elif (name in _UPLOADS or (name == "as_tensor" and args and not isinstance(args[0], torch.Tensor))
              or (target is not None and isinstance(args[0], torch.Tensor) and args[0].device.type == "cpu")):
            self.counter.uploads += 1
            self.counter.calls.append(name)
        return func(*args, **kwargs)


def _destination(name: str, args: Any, kwargs: dict[str, Any]) -> Optional[torch.device]:
    """The device ``Tensor.to`` / ``Tensor.cuda`` moves a tensor to, where the call names one."""
    if name == "cuda":
        return torch.device("cuda")
    if name != "to":
        return None
    target = kwargs.get("device", args[0] if args else None)
    return torch.device(target) if isinstance(target, (str, torch.device)) else None


def _bool_indexed(func: Any, args: Any) -> bool:
    """``x[mask]`` / ``x[mask] = v`` with a bool mask: the selected count is read back."""
    if func.overloadpacket not in (torch.ops.aten.index, torch.ops.aten.index_put, torch.ops.aten.index_put_):
        return False
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)


class DispatchCounter(TorchDispatchMode):
    """``with DispatchCounter() as c: ...`` then ``c.ops`` (operators dispatched, by the tensors' device or
    not), ``c.read_backs`` (values copied to the host), ``c.uploads`` (host data made into tensors) and ``c.calls``
    (the names of those, in order). Works the same on the CPU, so a CPU run tells how a CUDA run would behave: a
    ``.tolist()`` or ``torch.tensor([...], device=device)`` that is free on the CPU is counted all the same.

    What it cannot see on the CPU is a tensor made on the host without naming a device and moved to the batch's
    device later (free there, a copy on CUDA); run the code under ``with torch.device("meta"):`` as well, where such
    a tensor lands on the meta device and any use of it beside the batch's tensors fails
    (``tests/test_masking_syncs.py``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.read_backs = 0
        self.uploads = 0
        self.calls: list[str] = []
        self._host_calls = _HostCalls(self)

    @property
    def host_waits(self) -> int:
        """Read-backs and uploads: the calls that would make the host wait for the GPU on CUDA."""
        return self.read_backs + self.uploads

    def __enter__(self) -> "DispatchCounter":
        self._host_calls.__enter__()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._host_calls.__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops += 1
        if func is torch.ops.aten._local_scalar_dense.default:
            self.read_backs += 1
            self.calls.append("item")
        elif func.overloadpacket in _DATA_SHAPED or _bool_indexed(func, args):
            self.read_backs += 1
            self.calls.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))
