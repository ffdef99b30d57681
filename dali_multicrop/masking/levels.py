"""Per-level block settings of the hierarchical masks (H-JEPA) and the I-JEPA setting, and the strategies' names:
what a training config may name (:mod:`dali_multicrop.recipes.config` reads them from here).

All scales are fractions of a crop's patch grid; aspects are width / height (log-uniform).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..common.checks import check_int, check_range

__all__ = ["MaskLevel", "IJEPA_LEVEL", "STRATEGIES", "hierarchical_levels"]

STRATEGIES = ("global_only", "global_with_local_context", "cross_crop_prediction")
"""Available strategies; see :class:`~dali_multicrop.masking.generator.MultiCropMasks` for what each one fills in."""


@dataclass(frozen=True)
class MaskLevel:
    """Blocks of one level: ``num_targets`` target blocks and one context block per crop.

    - ``target_scale`` / ``target_aspect``: area fraction and w/h range of each target block.
    - ``context_scale`` / ``context_aspect``: the same for the context block (I-JEPA: (0.85, 1.0), (1, 1)).
    """

    target_scale: tuple[float, float]
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("target_scale", "context_scale"):
            object.__setattr__(self, name, check_range(f"MaskLevel.{name}", getattr(self, name), low=0.0,
                                                        high=1.0, low_open=True, form=" (a fraction of the grid)"))
        for name in ("target_aspect", "context_aspect"):
            object.__setattr__(self, name, check_range(f"MaskLevel.{name}", getattr(self, name), low=0.0,
                                                        high=float("inf"), low_open=True, form=" (width / height)"))


IJEPA_LEVEL = MaskLevel(target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5), context_scale=(0.85, 1.0),
                        context_aspect=(1.0, 1.0))
"""I-JEPA's multi-block setting (use with ``num_levels=1``, ``num_targets=4``, ``min_keep=10``)."""


def hierarchical_levels(num_levels: int, base: tuple[float, float] = (0.05, 0.15), growth: float = 2.0,
                        **common: tuple[float, float]) -> tuple[MaskLevel, ...]:
    """H-JEPA's default: level ``l`` has target scale ``base * growth**l`` (clipped to 1), other settings
    shared (``common`` forwards ``target_aspect``, ``context_scale``, ``context_aspect``)."""
    num_levels = check_int("num_levels", num_levels, 1)
    low, high = check_range("base", base, low=0.0, high=1.0, low_open=True, form=" (a fraction of the grid)")
    if (not isinstance(growth, (int, float)) or isinstance(growth, bool) or not math.isfinite(growth)
            or growth <= 0):
        raise ValueError(f"growth must be a finite number > 0 (the target scale's factor per level), got {growth!r}")
    levels = []
    for _ in range(num_levels):  # capped at each step: the same as capping base * growth**l, without overflow
        levels.append(MaskLevel(target_scale=(min(1.0, low), min(1.0, high)), **common))
        low, high = min(1.0, low) * growth, min(1.0, high) * growth
    return tuple(levels)
