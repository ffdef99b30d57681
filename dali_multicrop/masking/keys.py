"""The keyed random stream every mask generator draws from: one owner for the (seed, epoch, step, rank) key, the
step count and its resume state."""

from __future__ import annotations

from typing import Optional

import torch

from ..common.checks import check_int
from ..common.seeds import derive_seed
from ..sources.epochs import ResumePoint, distributed_defaults

__all__ = ["KeyedSteps"]


class KeyedSteps(torch.nn.Module):
    """A ``torch.nn.Module`` whose calls draw from a stream keyed on ``(seed, epoch, step, rank, *salt)``: each call
    is the next step (:meth:`next_step`), :meth:`set_epoch` restarts the count, :meth:`state_dict` /
    :meth:`load_state_dict` resume it. ``rank`` defaults to ``RANK``."""

    def __init__(self, seed: int = 0, rank: Optional[int] = None) -> None:
        super().__init__()
        self.seed = check_int("seed", seed, 0)
        self.rank = distributed_defaults()[0] if rank is None else check_int("rank", rank, 0)
        self.epoch = 0
        self.step = 0
        self._resume = ResumePoint()  # the step a loaded state holds until the next call
        self._generators: dict[torch.device, torch.Generator] = {}

    def next_step(self, step: Optional[int]) -> int:
        """The step a call draws for: ``step`` where given, else the call count since :meth:`set_epoch` (counted)."""
        self._resume.drop()
        if step is None:
            step = self.step
            self.step += 1
        return check_int("step", step, 0)

    def key(self, step: int, *salt: int) -> int:
        """The seed of ``step`` of this epoch on this rank (``salt``: another stream of the same key)."""
        return derive_seed(self.seed, self.epoch, step, self.rank, *salt)

    def generator(self, device: torch.device, step: int, *salt: int) -> torch.Generator:
        """This device's generator (reused call after call), seeded with :meth:`key`."""
        gen = self._generators.get(device)
        if gen is None:
            gen = self._generators[device] = torch.Generator(device=device)
        return gen.manual_seed(self.key(step, *salt))

    def set_epoch(self, epoch: int) -> None:
        """Keys the following calls on ``epoch`` and restarts their step count at 0; right after
        :meth:`load_state_dict`, ``set_epoch`` of the state's epoch keeps its step instead, as the loader keeps its
        position (the usual loop, ``set_epoch(e)`` at the top of each epoch, resumes exactly)."""
        self.epoch = check_int("epoch", epoch, 0)
        self.step = self._resume.take(self.epoch)

    def state_dict(self) -> dict[str, int]:  # type: ignore[override]
        """The key of the next call (``epoch``, ``step``) and the ``seed``; with :meth:`load_state_dict`, a resumed
        run draws the same masks from there on. (``torch.nn.Module.state_dict`` holds tensors; this holds none.)"""
        return {"epoch": self.epoch, "step": self.step, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int], strict: bool = True) -> None:  # type: ignore[override]
        """Resumes at the key in ``state`` (from :meth:`state_dict`); ``ValueError`` if it was saved with another
        seed. ``strict`` is accepted for ``torch.nn.Module`` callers and changes nothing."""
        if not isinstance(state, dict) or "epoch" not in state or "step" not in state:
            raise ValueError(f"state must be a dict from {type(self).__name__}.state_dict(), got {state!r}")
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"state was saved with seed={state['seed']!r}, this generator has seed={self.seed!r}")
        self.epoch = check_int("state['epoch']", state["epoch"], 0)
        self.step = check_int("state['step']", state["step"], 0)
        self._resume.hold(self.epoch, self.step)
