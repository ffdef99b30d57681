"""Crop curricula: the number of local crops and the crop scales, changed by epoch.

A :class:`Curriculum` turns the loader's spec (the most crops there will ever be) into the spec of one epoch.
The loader asks it at the start of every epoch (``set_epoch(e)`` or the next loop): the scales reach the
draws of that epoch's batches, and when the number of crops changes the graph is built again for the new
spec, so inactive crops cost nothing (they are not in the graph). :class:`MultiCropMaskGenerator` given the
same curriculum follows it in its ``set_epoch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from ..common.checks import check_int
from .spec import MultiCropSpec

__all__ = ["Ramp", "Curriculum"]


@dataclass(frozen=True)
class Ramp:
    """A value going linearly from ``start`` (at epoch ``first_epoch`` and before) to ``end`` (at epoch
    ``first_epoch + epochs`` and after)."""

    start: float
    end: float
    epochs: int
    first_epoch: int = 0

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"Ramp.{name} must be a number, got {value!r}")
        check_int("Ramp.epochs", self.epochs, 1)
        check_int("Ramp.first_epoch", self.first_epoch, 0)

    def at(self, epoch: int) -> float:
        """The value at ``epoch``."""
        t = min(1.0, max(0.0, (epoch - self.first_epoch) / self.epochs))
        return self.start + t * (self.end - self.start)

    @classmethod
    def of(cls, value: Any, name: str) -> "Ramp":
        """A ramp from a mapping ``{start, end, epochs[, first_epoch]}`` (a config's form) or a Ramp."""
        if isinstance(value, Ramp):
            return value
        if not isinstance(value, dict) or not {"start", "end", "epochs"} <= set(value) or \
                set(value) - {"start", "end", "epochs", "first_epoch"}:
            raise ValueError(f"{name}: expected a mapping of start, end, epochs (and first_epoch), got {value!r}")
        try:
            return cls(**value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class Curriculum:
    """What changes by epoch (each None: stays as the spec says).

    - ``local_crops``: how many local crops are active (rounded to the nearest whole number, at most the
      spec's; the spec must have one local group). E.g. ``Ramp(2, 6, epochs=30)``.
    - ``global_scale_min``: the lower end of the global crops' area range (fraction of the image's area).
      E.g. ``Ramp(0.6, 0.4, epochs=30)``.
    - ``local_scale_max``: the upper end of the local crops' area range.
    """

    local_crops: Optional[Ramp] = None
    global_scale_min: Optional[Ramp] = None
    local_scale_max: Optional[Ramp] = None

    @classmethod
    def from_mapping(cls, data: Any, origin: str = "curriculum") -> "Curriculum":
        """From a config's ``curriculum:`` section (keys as the fields, values ``{start, end, epochs}``)."""
        if not isinstance(data, dict):
            raise ValueError(f"{origin}: expected a mapping, got {data!r}")
        fields = ("local_crops", "global_scale_min", "local_scale_max")
        unknown = set(data) - set(fields)
        if unknown:
            raise ValueError(f"{origin}.{sorted(unknown)[0]}: unknown key (expected one of: {', '.join(fields)})")
        return cls(**{k: Ramp.of(v, f"{origin}.{k}") for k, v in data.items()})

    def spec_at(self, spec: MultiCropSpec, epoch: int) -> MultiCropSpec:
        """``spec`` as it is in ``epoch``; ``ValueError`` where the curriculum does not fit it."""
        groups = list(spec.groups)
        n = spec.num_global_groups
        if self.global_scale_min is not None:
            low = self.global_scale_min.at(epoch)
            groups[:n] = [g.replace(scale=(low, g.scale[1])) for g in groups[:n]]
        if self.local_scale_max is not None:
            high = self.local_scale_max.at(epoch)
            groups[n:] = [g.replace(scale=(g.scale[0], high)) for g in groups[n:]]
        if self.local_crops is not None:
            if len(groups) - n != 1:
                raise ValueError(f"a curriculum of local_crops needs a spec with exactly one local group, "
                                 f"'{spec}' has {len(groups) - n}")
            count = int(math.floor(self.local_crops.at(epoch) + 0.5))
            if not 0 <= count <= groups[n].count:
                raise ValueError(f"the curriculum asks for {count} local crops in epoch {epoch}; the spec "
                                 f"'{spec}' has at most {groups[n].count}")
            groups = groups[:n] + ([groups[n].replace(count=count)] if count else [])
        return MultiCropSpec(tuple(groups), n)

    def check(self, spec: MultiCropSpec, epochs: int = 1000) -> None:
        """Raises the ``ValueError`` of the first of ``epochs`` epochs that does not fit ``spec``."""
        for epoch in sorted({0, epochs} | {r.first_epoch + k for r in self._ramps() for k in (0, r.epochs)}):
            self.spec_at(spec, epoch)

    def _ramps(self) -> list[Ramp]:
        return [r for r in (self.local_crops, self.global_scale_min, self.local_scale_max) if r is not None]
