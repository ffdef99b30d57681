"""Samples the process tree's memory and CPU time, and the GPU's memory, while a backend runs."""

from __future__ import annotations

import resource
import threading
import time
from typing import Any, Optional

from ..common.system import visible_cores

try:
    import psutil
except ImportError:  # the bench degrades: this process only, no worker processes
    psutil = None

__all__ = ["ResourceMonitor"]


class ResourceMonitor:
    """Background sampler, every ``interval`` seconds (default 0.2: walking the process tree every 50 ms cost
    dali-cpu ~8% of its throughput on 2 cores), between :meth:`start` and :meth:`stop`.

    Start it before the backend is built (so memory peaks cover building and warm-up) and call
    :meth:`begin_window` where the measured batches start.

    - ``peak_host_mib``: the highest resident memory of this process plus its children (data-loader workers).
    - ``cpu_percent``: CPU time of the tree from :meth:`begin_window` to :meth:`stop`, as a share of all
      visible cores (0-100).
    - ``peak_gpu_mib``: the highest device memory in use minus what was in use at :meth:`start`
      (``torch.cuda.mem_get_info``: it sees DALI's pools too), None without CUDA.

    Without ``psutil`` both host figures cover this process only (its peak resident memory from
    ``getrusage``), and :attr:`note` says so.
    """

    note = "" if psutil is not None else ("psutil is not installed: host memory and CPU % cover this process only, "
                                          "not worker processes")

    def __init__(self, interval: float = 0.2, gpu: bool = False) -> None:
        self.interval = interval
        self.gpu = gpu
        self.peak_host_mib = 0.0
        self.peak_gpu_mib: Optional[float] = None
        self.cpu_percent = 0.0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._proc = psutil.Process() if psutil is not None else None

    def _tree(self) -> list[Any]:
        if self._proc is None:
            return []
        try:
            return [self._proc, *self._proc.children(recursive=True)]
        except psutil.Error:
            return [self._proc]

    def _cpu_seconds(self) -> float:
        """CPU time of this process (every thread, nanosecond clock) plus its children (10 ms ticks)."""
        total = time.process_time()
        for p in self._tree()[1:]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
        return total

    def _gpu_used_mib(self) -> float:
        import torch

        free, total = torch.cuda.mem_get_info()
        return (total - free) / 2**20

    def _sample(self) -> None:
        rss = 0
        for p in self._tree():
            try:
                rss += p.memory_info().rss
            except psutil.Error:
                continue
        if self._proc is None:  # Linux reports the peak in KiB
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak_host_mib = max(self.peak_host_mib, rss / 2**20)
        if self.gpu:
            used = self._gpu_used_mib() - self._gpu_base
            self.peak_gpu_mib = max(self.peak_gpu_mib or 0.0, used)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self._gpu_base = self._gpu_used_mib() if self.gpu else 0.0
        self.begin_window()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="bench-monitor", daemon=True)
        self._thread.start()

    def begin_window(self) -> None:
        """Marks where CPU utilisation starts being counted."""
        self._cpu0, self._t0 = self._cpu_seconds(), time.perf_counter()

    def stop(self) -> None:
        cpu, elapsed = self._cpu_seconds() - self._cpu0, time.perf_counter() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        cores = visible_cores()
        # children's CPU times come in 10 ms clock ticks: a window of a few ticks can read a little over the
        # physical limit of cores x elapsed, which is what the figure is capped at
        self.cpu_percent = min(100.0, 100.0 * cpu / max(elapsed, 1e-9) / cores)
