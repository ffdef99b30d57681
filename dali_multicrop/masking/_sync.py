"""Where a mask generator may read a value back to the host: one policy for both generators.

On the CPU a read-back is free, so the generators take the paths that look at values (stop drawing when every mask
is done, grow masks in a compiled kernel). On CUDA a read-back waits for every kernel queued before it, the training
step's included, so there they run a fixed set of kernels and read nothing back. Tests switch the CPU to the CUDA
paths by patching :func:`reads_back_freely` here (``tests/test_masking_syncs.py``).
"""

from __future__ import annotations

import torch

__all__ = ["reads_back_freely"]


def reads_back_freely(device: torch.device) -> bool:
    """Whether checking a tensor's value on the host is free on ``device`` (True on the CPU; on CUDA it waits for the
    GPU)."""
    return device.type == "cpu"
