"""How busy the machine was around a benchmark run: figures taken on a loaded machine (other processes, a
hypervisor stealing CPU time) read low with nothing to say so, so the run records the load and the report warns.

Linux only (``/proc/loadavg``, ``/proc/stat``); elsewhere nothing is recorded and nothing is warned.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

__all__ = ["MachineLoad", "LoadWatch", "BUSY_BEFORE_WARN", "STEAL_WARN"]

BUSY_BEFORE_WARN = 0.25
"""Share of all cores busy just before the run (other processes' work) above which the report warns."""
STEAL_WARN = 0.05
"""Share of the CPU time stolen by the hypervisor during the run above which the report warns."""
_IDLE_SAMPLE_S = 0.5
"""Seconds the machine is watched before the run."""


def _stat(text: str) -> Optional[tuple[int, int, int]]:
    """``(total, idle, steal)`` jiffies of all cores from ``/proc/stat``'s ``cpu`` line (idle includes iowait;
    steal 0 where the kernel reports none)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            steal = values[7] if len(values) > 7 else 0
            return sum(values[:8]), idle, steal
    return None


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _busy(before: tuple[int, int, int], after: tuple[int, int, int]) -> tuple[float, float]:
    """(busy share, steal share) of all cores between two ``_stat`` readings."""
    total = after[0] - before[0]
    if total <= 0:
        return 0.0, 0.0
    return 1.0 - (after[1] - before[1]) / total, (after[2] - before[2]) / total


@dataclass(frozen=True)
class MachineLoad:
    """``load_average``: the 1-minute load average just before the run. ``busy_before``: the share of all cores
    busy in the half second before it (nothing of the run's own yet). ``steal_during``: the share of CPU time the
    hypervisor took during the run. ``cores``: the cores these shares are of."""

    load_average: float
    busy_before: float
    steal_during: float
    cores: int

    def warnings(self) -> list[str]:
        """What made the machine busy, each as one line for the report (empty on a quiet machine)."""
        out = []
        if self.busy_before > BUSY_BEFORE_WARN:
            out.append(f"the machine was busy before the run ({self.busy_before:.0%} of {self.cores} cores in use, "
                       f"load average {self.load_average:.2f}): the figures may read low")
        if self.steal_during > STEAL_WARN:
            out.append(f"the hypervisor took {self.steal_during:.0%} of the CPU time during the run (steal): the "
                       f"figures may read low")
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadWatch:
    """``start()`` before the run (watches the machine for half a second), ``stop()`` after it: the
    :class:`MachineLoad`, or None where ``/proc`` does not tell."""

    def __init__(self, cores: int) -> None:
        self.cores = cores
        self._start: Optional[tuple[int, int, int]] = None
        self._busy_before = 0.0
        self._load_average = 0.0

    def start(self) -> None:
        first = _stat(_read("/proc/stat") or "")
        loadavg = _read("/proc/loadavg")
        if first is None or loadavg is None:
            return
        self._load_average = float(loadavg.split()[0])
        time.sleep(_IDLE_SAMPLE_S)
        self._start = _stat(_read("/proc/stat") or "")
        if self._start is not None:
            self._busy_before = _busy(first, self._start)[0]

    def stop(self) -> Optional[MachineLoad]:
        end = _stat(_read("/proc/stat") or "")
        if self._start is None or end is None:
            return None
        return MachineLoad(load_average=self._load_average, busy_before=round(self._busy_before, 3),
                           steal_during=round(_busy(self._start, end)[1], 4), cores=self.cores)
