"""The backends a benchmark compares. Each yields :class:`Item` without end.

``Item.batch`` is a :class:`MultiCropBatch` (DALI backends), a list of crop tensors (torchvision) or None
(decode-only backends, whose outputs are not crops). DALI backends say where each batch sits in its epoch
(an epoch boundary refills DALI's prefetch queue, so the harness keeps it out of the timed window).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Optional, Sequence

import torch

from ..common.choices import torch_dtype
from ..graph.executor import executor_settings

if TYPE_CHECKING:
    from .settings import BenchConfig

__all__ = ["BACKENDS", "DALI_BACKENDS", "GPU_BACKENDS", "PEER_BACKENDS", "Item", "bench_rows", "row_name", "skip_reason",
           "split_name", "open_backend"]


class Item(NamedTuple):
    """One batch of a backend: ``images`` in it; ``position`` its index in the epoch and ``per_epoch`` the
    batches of an epoch (both None where epochs run into each other without a pause, as torchvision's)."""

    images: int
    batch: Any
    position: Optional[int] = None
    per_epoch: Optional[int] = None

BACKENDS = ("dali-gpu", "dali-cpu", "torchvision", "albumentations", "decode", "decode-cpu")
"""dali-gpu / dali-cpu: the multi-crop graph on each device. torchvision: PIL + torchvision transforms in a
DataLoader with one worker per thread. albumentations: OpenCV decode + albumentations (OpenCV kernels), the same
way; the CPU peer to beat. decode: the graph's read + GPU decode alone (the ceiling dali-gpu is
measured against). decode-cpu: the same on the CPU (the ceiling of dali-cpu)."""
GPU_BACKENDS = ("dali-gpu", "decode")
DALI_BACKENDS = ("dali-gpu", "dali-cpu")
"""The multi-crop loader's backends: they read any source kind (``dali-cpu@tar``)."""
PEER_BACKENDS = ("torchvision", "albumentations")
"""The peers' DataLoaders: their batches are lists of crops (no boxes); their crops go to the GPU where there is one."""


def _dali_missing() -> Optional[str]:
    try:
        from ..common.dali import dali_modules

        dali_modules()
    except ImportError as exc:
        return str(exc)
    return None


def skip_reason(name: str, cfg: "BenchConfig") -> Optional[str]:
    """Why ``name`` cannot run here, or None."""
    name = split_name(name)[0]
    if name in GPU_BACKENDS and not torch.cuda.is_available():
        return "no CUDA GPU visible to torch"
    if name.startswith(("dali", "decode")):
        return _dali_missing()
    if name == "albumentations":
        from .albumentations_baseline import albumentations_missing

        return albumentations_missing()
    if name == "torchvision":
        try:
            import torchvision  # noqa: F401
            from torchvision.transforms import v2  # noqa: F401
        except Exception as exc:
            return f"torchvision does not import ({exc}); make install brings it"
    return None


def _decoder(cfg: "BenchConfig") -> Any:
    from ..graph.builder import DecoderSettings

    return DecoderSettings.for_threads(cfg.threads, cfg.hw_decoder_load)


def _dali_multicrop(cfg: "BenchConfig", device: str, source: str = "folder") -> Iterator[Item]:
    from ..loader.loader import DaliMultiCropLoader
    from ..common.system import cache_dir
    from .sources import bench_source

    data = bench_source(source, cfg.data, cache_dir(), cfg.threads)
    loader = DaliMultiCropLoader(data, crops=cfg.spec, batch_size=cfg.batch_size, device=device,
                                 num_threads=cfg.threads, dtype=cfg.dtype, seed=cfg.seed, drop_last=True,
                                 shard_id=0, num_shards=1, device_id=0, hw_decoder_load=cfg.hw_decoder_load,
                                 executor=cfg.executor or None)
    while True:
        for position, batch in enumerate(loader):
            yield Item(batch.batch_size, batch, position, len(loader))


def _decode_only(cfg: "BenchConfig", device: str) -> Iterator[Item]:
    from ..graph.builder import GraphSettings, decode_only

    feed, plan, graph = decode_only(cfg.data, GraphSettings(
        device=device, batch_size=cfg.batch_size, num_threads=cfg.threads, seed=cfg.seed, decoder=_decoder(cfg),
        executor=executor_settings(cfg.executor)))
    pipe = graph.pipeline
    epoch = 0
    while True:
        feed.start(plan.epoch_plan(epoch))
        if epoch:
            pipe.reset()
        else:
            pipe.build()
        for position in range(len(plan)):
            images, _indices = pipe.run()  # host-synchronous: the batch is decoded when this returns
            yield Item(len(images), None, position, len(plan))
        try:
            pipe.run()  # meets the end of the epoch so that reset() is allowed
        except StopIteration:
            pass
        epoch += 1


def _dataloader_backend(cfg: "BenchConfig", make_loader: Any) -> Iterator[Item]:
    """A peer's DataLoader (``torchvision_loader`` or ``albumentations_loader``) as a backend."""
    from ..recipes.spec import IMAGENET_MEAN, IMAGENET_STD

    cuda = torch.cuda.is_available()
    dtype = torch_dtype(cfg.dtype)
    # enough batches for warm-up and measurement; the sampler chains epochs
    loader = make_loader(cfg.data, cfg.spec, cfg.batch_size, cfg.threads, cfg.warmup + cfg.batches + 1,
                         IMAGENET_MEAN, IMAGENET_STD, dtype, seed=cfg.seed, pin_memory=cuda)
    for crops, labels, _indices in loader:
        if cuda:  # where the GPU trains, the crops go there, as a training loop would move them
            crops = [c.cuda(non_blocking=True) for c in crops]
        yield Item(len(labels), crops)


def split_name(name: str) -> tuple[str, str]:
    """``(backend, source)`` of a row name: ``dali-cpu@tar`` is dali-cpu reading the tar-shard source; a name
    without ``@`` reads the folder. The inverse of :func:`row_name`."""
    backend, _, source = name.partition("@")
    return backend, source or "folder"


def row_name(backend: str, source: str = "folder") -> str:
    """The row name of ``backend`` reading ``source``: ``dali-cpu@tar``; the folder needs no suffix. The inverse
    of :func:`split_name`."""
    return backend if source == "folder" else f"{backend}@{source}"


def bench_rows(backends: Optional[Sequence[str]] = None, sources: Optional[Sequence[str]] = None) -> list[str]:
    """The rows a benchmark runs, in order: each of ``backends`` (default all of :data:`BACKENDS`), the DALI ones
    once per source kind of ``sources`` (default the folder; see :data:`~dali_multicrop.benchmark.sources.SOURCES`),
    the others on the folder. ``ValueError`` naming an unknown backend or source."""
    from .sources import SOURCES

    chosen = list(backends) if backends else list(BACKENDS)
    for name in chosen:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend '{name}' (choose from {', '.join(BACKENDS)})")
    kinds = list(dict.fromkeys(sources or ["folder"]))
    for kind in kinds:
        if kind not in SOURCES:
            raise ValueError(f"unknown --source '{kind}' (choose from {', '.join(SOURCES)})")
    return [row_name(name, kind) for name in chosen for kind in (kinds if name in DALI_BACKENDS else ["folder"])]


def open_backend(name: str, cfg: "BenchConfig") -> Iterator[Item]:
    """An endless stream of batches from backend ``name`` (``dali-gpu`` and ``dali-cpu`` take ``@SOURCE``)."""
    name, source = split_name(name)
    if name == "dali-gpu":
        return _dali_multicrop(cfg, "gpu", source)
    if name == "dali-cpu":
        return _dali_multicrop(cfg, "cpu", source)
    if name == "decode":
        return _decode_only(cfg, "gpu")
    if name == "decode-cpu":
        return _decode_only(cfg, "cpu")
    if name == "torchvision":
        from .torchvision_baseline import torchvision_loader

        return _dataloader_backend(cfg, torchvision_loader)
    if name == "albumentations":
        from .albumentations_baseline import albumentations_loader

        return _dataloader_backend(cfg, albumentations_loader)
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
