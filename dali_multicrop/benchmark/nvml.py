"""The GPU's engines busy while a benchmark runs, read from NVML (the driver's management library) through ctypes.

The one to watch for the GPU decoder is the JPEG engine (NVJPG, ``nvmlDeviceGetJpgUtilization``: A100, H100, H200
have one), which DALI's mixed decoder gives ``hw_decoder_load`` of the baseline JPEGs to. ``nvidia-smi``'s
``utilization.decoder`` is the *video* decoder (NVDEC), which JPEG decoding never touches: a 0 there says nothing
about the JPEG engine. nvidia-smi's name for the JPEG counter differs between drivers and an unknown field makes
it reject the whole query, so this module asks NVML itself. Only the standard library: it runs wherever the driver
is, and reports ``None`` (with the reason) where it is not.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

__all__ = ["ENGINES", "EngineReading", "EngineSampler", "open_nvml"]

ENGINES = ("gpu", "jpeg", "video_decoder")
"""What :class:`EngineSampler` reads, each a percentage of its sampling period (0-100): the SMs (``gpu``), the
JPEG engine and the video decoder."""

_NOT_SUPPORTED = 3  # NVML_ERROR_NOT_SUPPORTED


class _Utilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class Nvml:
    """One GPU's engine utilisations from a loaded NVML library (``lib``: a ``ctypes.CDLL`` or anything with the
    same functions, as the tests give)."""

    def __init__(self, lib: Any, index: int = 0) -> None:
        self.lib = lib
        self.handle = ctypes.c_void_p()
        self._call("nvmlInit_v2")
        self._call("nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(index), ctypes.byref(self.handle))
        self.unsupported: set[str] = set()

    def _call(self, name: str, *args: Any) -> int:
        status = getattr(self.lib, name)(*args)
        if status not in (0, _NOT_SUPPORTED):
            raise OSError(f"NVML {name} returned error {status}")
        return status

    def _engine(self, engine: str, name: str) -> Optional[int]:
        if engine in self.unsupported:
            return None
        value, period = ctypes.c_uint(), ctypes.c_uint()
        if self._call(name, self.handle, ctypes.byref(value), ctypes.byref(period)) == _NOT_SUPPORTED:
            self.unsupported.add(engine)
            return None
        return int(value.value)

    def read(self) -> dict[str, Optional[int]]:
        """Each of :data:`ENGINES` now, in percent; None where this GPU or driver has no such counter."""
        rates = _Utilization()
        gpu = None if self._call("nvmlDeviceGetUtilizationRates", self.handle, ctypes.byref(rates)) else rates.gpu
        return {"gpu": None if gpu is None else int(gpu),
                "jpeg": self._engine("jpeg", "nvmlDeviceGetJpgUtilization"),
                "video_decoder": self._engine("video_decoder", "nvmlDeviceGetDecoderUtilization")}

    def close(self) -> None:
        self.lib.nvmlShutdown()


def open_nvml(index: int = 0, loader: Callable[[str], Any] = ctypes.CDLL) -> tuple[Optional[Nvml], str]:
    """``(Nvml, "")`` for GPU ``index``, or ``(None, why not)`` where the driver's library is missing or fails."""
    try:
        return Nvml(loader("libnvidia-ml.so.1"), index), ""
    except (OSError, AttributeError) as exc:
        return None, f"NVML is not available ({exc})"


@dataclass
class EngineReading:
    """What :class:`EngineSampler` saw: per engine the highest and mean utilisation in percent over ``samples``
    readings (None: no such counter, or no NVML; ``note`` says which)."""

    samples: int = 0
    peak: dict[str, Optional[int]] = field(default_factory=dict)
    mean: dict[str, Optional[float]] = field(default_factory=dict)
    note: str = ""

    def summary(self) -> str:
        """One line: each engine's peak and mean, the JPEG engine first."""
        if not self.samples:
            return f"engine utilisation: no readings ({self.note or 'nothing sampled'})"
        parts = []
        for engine in ("jpeg", "gpu", "video_decoder"):
            if self.peak.get(engine) is None:
                parts.append(f"{engine} n/a")
            else:
                parts.append(f"{engine} max {self.peak[engine]}% mean {self.mean[engine]:.0f}%")
        line = f"engine utilisation over {self.samples} readings: " + ", ".join(parts)
        if self.peak.get("jpeg") == 0:
            line += "  <- the JPEG engine stayed idle: the hardware decoder took no image"
        return line


class EngineSampler:
    """Reads the engines every ``interval`` seconds (default 0.25) in a thread between ``with`` and its end;
    :attr:`reading` holds the result. Without NVML it reads nothing and says why."""

    def __init__(self, interval: float = 0.25, index: int = 0, loader: Callable[[str], Any] = ctypes.CDLL) -> None:
        self.interval = interval
        self.nvml, why = open_nvml(index, loader)
        self.reading = EngineReading(note=why)
        self._rows: list[dict[str, Optional[int]]] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._rows.append(self.nvml.read())  # type: ignore[union-attr]
            except OSError as exc:
                self.reading.note = str(exc)
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> "EngineSampler":
        if self.nvml is not None:
            self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.nvml.close()  # type: ignore[union-attr]
        rows = self._rows
        self.reading.samples = len(rows)
        for engine in ENGINES:
            values = [r[engine] for r in rows if r.get(engine) is not None]
            self.reading.peak[engine] = max(values) if values else None
            self.reading.mean[engine] = sum(values) / len(values) if values else None
        if rows and self.reading.peak.get("jpeg") is None and not self.reading.note:
            self.reading.note = "this GPU or driver has no JPEG engine counter"
