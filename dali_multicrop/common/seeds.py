"""Seeds derived from keys: the one rule behind every random stream of the package (epoch orders, a batch's
draws, a tar reader's shuffle, the masks)."""

from __future__ import annotations

import numpy as np

__all__ = ["derive_seed"]


def derive_seed(*keys: int) -> int:
    """A 31-bit seed derived from integer ``keys`` >= 0 of any size (a stable hash of all their bits, so
    ``seed=2**32`` and ``seed=0`` differ; independent streams for distinct keys)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)
