"""Runs backends one after another on the same data and recipe, and measures each the same way.

Per backend: build, ``warmup`` batches untimed, then ``batches`` timed batches. A batch's time is the wall
time between two consecutive batches being ready (device synchronised), so it includes everything the
backend does per batch, masks included when asked. A DALI backend's first batch of an epoch is left out (its
interval holds the epoch boundary, where DALI refills its prefetch queue) and one more batch is read in its
place; the result's ``reason`` says how many. Figures: images/s and crops/s over the counted batches, batch
time p50 and p99, peak host memory (process and workers), peak GPU memory, CPU utilisation (share of all
cores), and the masking time per batch (p50).

Where both decoders ran, ``decode``'s row notes its ratio to ``decode-cpu``, with a warning below ``DECODER_CHECK``
(the GPU decoder may not be doing its job; on a many-core host decoding small images a working one can also be that
close): a measured figure is reported as measured, never turned into a failure.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from .backends import BACKENDS, GPU_BACKENDS, PEER_BACKENDS, open_backend, skip_reason
from .monitor import ResourceMonitor
from .settings import BenchConfig, check_settings

__all__ = ["BACKENDS", "BenchConfig", "BackendResult", "check_settings", "run_benchmark", "DECODER_CHECK"]

DECODER_CHECK = 1.5
"""Below this ``decode`` / ``decode-cpu`` throughput ratio, ``decode``'s row carries a warning (not a failure)."""


@dataclass
class BackendResult:
    """What one backend measured; ``status`` is "ok", "skipped" or "failed" (then ``reason`` says why)."""

    backend: str
    status: str
    reason: str = ""
    images: int = 0
    seconds: Optional[float] = None
    images_per_s: Optional[float] = None
    crops_per_s: Optional[float] = None
    batch_ms_p50: Optional[float] = None
    batch_ms_p99: Optional[float] = None
    peak_host_mib: Optional[float] = None
    peak_gpu_mib: Optional[float] = None
    cpu_percent: Optional[float] = None
    masks_ms_p50: Optional[float] = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _mask_generator(cfg: BenchConfig, backend: str) -> tuple[Optional[Any], str]:
    if not cfg.masks:
        return None, ""
    if backend.startswith("decode"):
        return None, "masks not applicable to a decode-only backend"
    if backend in PEER_BACKENDS and cfg.masks == "cross_crop_prediction":
        return None, f"masks skipped: {backend} reports no crop boxes, which cross_crop_prediction needs"
    from ..masking import MultiCropMaskGenerator

    return MultiCropMaskGenerator(cfg.spec, patch_size=cfg.patch_size, strategy=cfg.masks, seed=cfg.seed), ""


def _masks_call(generator: Any, batch: Any) -> None:
    if isinstance(batch, list):  # a peer's DataLoader: crops only
        generator(batch_size=batch[0].shape[0], device=batch[0].device)
    else:
        generator(batch)


def measure_backend(name: str, cfg: BenchConfig, tick: Callable[[], None] = lambda: None) -> BackendResult:
    """Runs and measures one backend (see the module's notes)."""
    reason = skip_reason(name, cfg)
    if reason:
        return BackendResult(name, "skipped", reason)
    masks, note = _mask_generator(cfg, name)
    monitor = ResourceMonitor(gpu=name in GPU_BACKENDS or (name in PEER_BACKENDS and torch.cuda.is_available()))
    note = "; ".join(n for n in (note, monitor.note) if n)
    monitor.start()
    stream = None
    try:
        stream = open_backend(name, cfg)
        for _ in range(cfg.warmup):
            item = next(stream)
            if masks is not None:
                _masks_call(masks, item.batch)
            tick()
        _sync()
        monitor.begin_window()
        times, mask_times, images, boundaries = [], [], 0, 0
        previous = time.perf_counter()
        while len(times) < cfg.batches:
            n, batch, position, per_epoch = next(stream)
            if per_epoch is not None and per_epoch < 2:  # every batch would start an epoch: none could be timed
                raise ValueError(f"an epoch of this data is {per_epoch} batch of {cfg.batch_size}: every batch "
                                 f"starts an epoch, which the figures leave out; use more images or a smaller "
                                 f"--batch-size")
            if masks is not None:
                _sync()
                t = time.perf_counter()
                _masks_call(masks, batch)
                _sync()
                mask_times.append(time.perf_counter() - t)
            _sync()
            now = time.perf_counter()
            if position == 0 and (times or cfg.warmup):  # this interval holds an epoch boundary: not counted
                boundaries += 1
            else:
                times.append(now - previous)
                images += n
                tick()
            previous = now
        elapsed = float(np.sum(times))
        if boundaries:
            note = "; ".join(n for n in (note, f"{boundaries} batch(es) at epoch starts left out of the figures")
                             if n)
    except Exception as exc:  # a backend that breaks is reported, the others still run
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        return BackendResult(name, "failed", f"{type(exc).__name__}: {first}")
    finally:
        monitor.stop()
        if stream is not None and hasattr(stream, "close"):
            stream.close()
        stream = None
        gc.collect()  # a DALI backend's pipeline and threads go now: a peer's loader forks its workers next
    ms = np.array(times) * 1e3
    return BackendResult(
        name, "ok", note, images=images, seconds=round(elapsed, 4),
        images_per_s=round(images / elapsed, 2),
        crops_per_s=None if name.startswith("decode") else round(images * cfg.spec.num_crops / elapsed, 2),
        batch_ms_p50=round(float(np.percentile(ms, 50)), 3), batch_ms_p99=round(float(np.percentile(ms, 99)), 3),
        peak_host_mib=round(monitor.peak_host_mib, 1),
        peak_gpu_mib=round(monitor.peak_gpu_mib, 1) if monitor.peak_gpu_mib is not None else None,
        cpu_percent=round(monitor.cpu_percent, 1),
        masks_ms_p50=round(float(np.median(mask_times)) * 1e3, 3) if mask_times else None)


def _check_decoder(results: list[BackendResult]) -> None:
    """Notes on ``decode``'s row how it compares with ``decode-cpu`` (a warning below :data:`DECODER_CHECK`)."""
    by_name = {r.backend: r for r in results}
    gpu, cpu = by_name.get("decode"), by_name.get("decode-cpu")
    if not (gpu and cpu and gpu.status == cpu.status == "ok" and gpu.images_per_s and cpu.images_per_s):
        return
    ratio = gpu.images_per_s / cpu.images_per_s
    note = f"{ratio:.2f}x decode-cpu"
    if ratio < DECODER_CHECK:
        note = (f"warning: GPU decode is only {note} ({gpu.images_per_s:,.0f} against {cpu.images_per_s:,.0f} img/s): "
                f"either the hardware JPEG decoder is not doing its job or the host's cores decode these images "
                f"about as fast (many cores, small images); the JPEG engine's utilisation tells which")
    gpu.reason = f"{gpu.reason}; {note}" if gpu.reason else note


def run_benchmark(cfg: BenchConfig, backends: Sequence[str] = BACKENDS,
                  tick: Callable[[str], None] = lambda name: None) -> list[BackendResult]:
    """Measures each backend in turn; ``tick(name)`` is called after every batch (for a progress bar)."""
    results = [measure_backend(name, cfg, lambda n=name: tick(n)) for name in backends]
    _check_decoder(results)
    return results
