"""``dali-multicrop probe DATA``: is the loader fast enough on *your* data? A few dozen batches of the loader over the
folder, beside the decode-only ceiling on the same files (the graph's read and decode, no crops), and how many GPUs
that rate feeds at a model's throughput (issue #30, item 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..sources import FileList
from ..recipes.spec import MultiCropSpec

__all__ = ["ProbeResult", "probe"]


@dataclass(frozen=True)
class ProbeResult:
    """What a probe measured: images per second of the loader (``loader_img_s``) and of the decode-only graph
    (``decode_img_s``) on ``device``'s graph, over ``batches`` timed batches of ``batch_size`` after ``warmup``;
    ``model_img_s``: the images per second one GPU's training step takes, where given."""

    data: str
    images: int
    spec: str
    device: str
    batch_size: int
    threads: int
    warmup: int
    batches: int
    loader_img_s: float
    decode_img_s: float
    model_img_s: Optional[float] = None

    @property
    def ceiling_share(self) -> float:
        """The loader's rate as a share of the decode-only ceiling."""
        return self.loader_img_s / self.decode_img_s if self.decode_img_s else 0.0

    @property
    def gpus_fed(self) -> Optional[float]:
        """How many GPUs training at ``model_img_s`` each this loader's rate keeps busy (None without it)."""
        return self.loader_img_s / self.model_img_s if self.model_img_s else None

    def lines(self) -> list[str]:
        out = [f"probe: {self.data} ({self.images:,} images), crops {self.spec}, the {self.device} graph, batch "
               f"{self.batch_size}, {self.threads} threads, {self.batches} batches after {self.warmup} warm-up",
               f"  loader        {self.loader_img_s:>10,.1f} img/s",
               f"  decode only   {self.decode_img_s:>10,.1f} img/s  (read + decode, no crops: the ceiling on this data)",
               f"  the loader makes {100 * self.ceiling_share:.0f}% of the decode ceiling"]
        if self.gpus_fed is not None:
            out.append(f"  at {self.model_img_s:,.0f} img/s per GPU (--model-img-s), this rate feeds "
                       f"{self.gpus_fed:.2f} GPUs" + (": the loader is the bottleneck" if self.gpus_fed < 1 else ""))
        return out


def probe(files: FileList, data: str, spec: MultiCropSpec, device: str, batch_size: int, threads: int,
          warmup: int = 3, batches: int = 30, model_img_s: Optional[float] = None,
          tick: Callable[[str], None] = lambda name: None) -> ProbeResult:
    """The loader (``spec`` on ``device``: "cpu" or "gpu") and the decode-only graph over ``files``, each for
    ``warmup`` + ``batches`` batches of ``batch_size`` (at most the number of files); ``ValueError`` with the
    backend's own reason where one could not run."""
    from .harness import BenchConfig, run_benchmark

    batch_size = min(batch_size, len(files))
    cfg = BenchConfig(spec=spec, data=files, data_path=data, batch_size=batch_size, threads=threads, warmup=warmup,
                      batches=batches)
    names = ("dali-gpu", "decode") if device == "gpu" else ("dali-cpu", "decode-cpu")
    loader, decode = run_benchmark(cfg, names, tick=tick)
    for result in (loader, decode):
        if result.status != "ok":
            raise ValueError(f"probe: {result.backend} {result.status}: {result.reason}")
    return ProbeResult(data, len(files), str(spec), device, batch_size, threads, warmup, batches,
                       round(loader.images_per_s, 1), round(decode.images_per_s, 1), model_img_s)
