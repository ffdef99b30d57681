"""``DaliMultiCropLoader``: multi-crop batches from a DALI graph, as torch tensors, sharded per rank."""

from __future__ import annotations

import os
from typing import Any, Iterator, Optional, Sequence

import torch

from ..common.checks import check_int, check_probability, check_rgb
from ..common.dali import dali_modules
from ..common.seeds import derive_seed
from ..common.system import visible_cores
from ..badsamples.policy import BadSamples, check_on_error
from .batch import MultiCropBatch
from ..common.choices import DEVICES, DTYPES
from ..recipes.config import ConfigLike, load_config
from ..recipes.curriculum import Curriculum
from ..sources.epochs import EpochPlan, ResumePoint, ShardPlan, distributed_defaults
from ..graph.executor import ExecutorLike, executor_settings
from ..graph.builder import HW_DECODER_LOAD, DecoderSettings, GraphSettings
from ..recipes.presets import parse_crops
from .runner import GraphRunner
from ..sources import AnySource, ArraySource, DatasetSource, FileList, SourceLike, TarShards, resolve_source
from ..sources.tar import TarMembers
from ..recipes.spec import IMAGENET_MEAN, IMAGENET_STD, CropsLike, MultiCropSpec
from .stats import LoaderStats, StatsClock

__all__ = ["DaliMultiCropLoader", "IMAGENET_MEAN", "IMAGENET_STD"]


def _default_threads() -> int:
    """CPU threads per rank: the machine's cores shared among the ranks of this node."""
    cores = visible_cores()
    per_node = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, cores // per_node)


def _resolve_device(device: Any) -> tuple[str, Optional[int]]:
    """``(graph device, CUDA index or None)`` for a device name: "gpu", "cpu", "auto", or torch's spellings
    "cuda", "cuda:N" and ``torch.device``."""
    if isinstance(device, torch.device):
        device = str(device)
    given = device
    index: Optional[int] = None
    if isinstance(device, str) and device.startswith("cuda"):
        rest = device[len("cuda"):]
        if rest and not (rest[0] == ":" and rest[1:].isdigit()):
            raise ValueError(f"device {device!r} is not a CUDA device name (expected 'cuda' or 'cuda:N')")
        index = int(rest[1:]) if rest else None
        device = "gpu"
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (or torch's 'cuda', 'cuda:N'), got {device!r}")
    has_cuda = torch.cuda.is_available()
    if device == "auto":
        return ("gpu" if has_cuda else "cpu"), None
    if device == "gpu" and not has_cuda:
        from ..doctor import diagnose, problems

        env = diagnose()
        if env.driver_cuda:  # a driver: say the whole pairing, then what does not fit
            facts = [f"torch is built for CUDA {env.torch_cuda or '(none: a CPU-only build)'}, the driver supports "
                     f"CUDA {env.driver_cuda}, DALI installed: {', '.join(env.dali) or 'none'}"]
        else:
            facts = ["there is no NVIDIA driver on this machine"]
        raise ValueError(f"device={given!r} but torch sees no CUDA GPU here; use device='cpu' (same augmentations) "
                         "or device='auto'" + "".join(f"\n  {line}" for line in facts + problems(env))
                         + "\n  (dali-multicrop doctor prints the whole pairing)")
    return device, index


class DaliMultiCropLoader:
    """Iterates over a dataset in multi-crop batches made by one DALI graph (README "Use"; ``docs/``).

    Args:
        source: an image-folder path (``root/<class>/<images>``, classes sorted as torchvision's
            ``ImageFolder``; local or ``s3://``), a :class:`~dali_multicrop.FileList`, a list of ``(path, label)``
            pairs, decoded images in memory (:class:`~dali_multicrop.ArraySource`, uint8 ``[N, H, W, 3]`` with
            labels), ``"cifar10:PATH"`` / ``"cifar100:PATH"`` (the python-pickle layout; ``ArraySource.cifar`` for
            the test split), WebDataset tar shards (a ``.tar`` path or brace pattern, or a
            :class:`~dali_multicrop.TarShards`) or a map-style torch ``Dataset`` of ``(image, label)`` (or a
            :class:`~dali_multicrop.DatasetSource`): see :mod:`dali_multicrop.sources` and ``docs/sources.md``.
        crops: a crop spec such as ``"2x224,6x96"`` (first group global), a preset name (``"dino"``, see
            ``pipelines/``) or recipe YAML path, or a :class:`~dali_multicrop.MultiCropSpec` for full control
            of each group's recipe.
        batch_size: images per batch on this rank (each with all its crops).
        device: "gpu" (decode and augment on the GPU, tensors on ``cuda:device_id``), "cpu" (the same graph
            on CPU threads, CPU tensors) or "auto" (gpu where torch sees CUDA). Default "auto".
        seed: seeds the shuffle (same on every rank) and the augmentations (a distinct stream per rank, keyed on
            epoch and batch too: a run resumed at an epoch repeats its crops).
        shard_id, num_shards: this rank's share of every epoch; default torchrun's ``RANK``/``WORLD_SIZE``.
        device_id: CUDA device for device="gpu"; default torchrun's ``LOCAL_RANK`` (0 outside torchrun).
        num_threads: DALI CPU threads; default the visible cores divided by ``LOCAL_WORLD_SIZE``.
        shuffle: draw a new order of the whole dataset each epoch (keyed on seed and epoch). Default True.
        drop_last: skip the tail of each epoch that does not fill a batch on every rank. Default False
            (every sample exactly once per epoch; see :mod:`dali_multicrop.sources.epochs` for the table).
        dtype: "float32" or "float16" crops. mean, std: RGB normalisation in [0, 1] units (ImageNet's).
        prefetch: batches DALI computes ahead of the training step. Default 2.
        curriculum: a :class:`~dali_multicrop.Curriculum` changing the number of local crops and the crop scales
            by epoch (``crops`` is then the most there will be); each epoch's batches have that epoch's crops.
        hw_decoder_load: share of the JPEG decoding (0-1) that device="gpu" gives to the GPU's hardware JPEG
            decoder where it has one (A100, H100, H200), the rest to CUDA decoding. Default: DALI's own
            (``HW_DECODER_LOAD``); measure per card (``dali-multicrop bench --hw-decoder-load``).

        on_error: what a bad sample does: a file missing, unreadable, not an image, truncated or of a format
            DALI does not read; a Dataset item that raises or is not an image; a tar sample that does not decode.
            "raise" (default) stops the loop with an error naming it and what is wrong with it; "skip" replaces it,
            in its batch, by another image of that batch (its own crops; ``indices`` -1 for that slot, so the good
            samples are still each seen once per epoch), warns once per sample (``BadImageWarning``) and lists it in
            :attr:`skipped`. Local tar shards are then read by the loader itself (DALI's reader cannot leave a
            sample out; the folder's epoch rules apply, ``docs/sources.md``); arrays are pixels and cannot be bad.
        validate: decode each image file once, alone, in worker processes (one per DALI thread) before the graph
            first reads it; bad files then take the ``on_error`` path without reaching DALI's batch decoder, which
            can crash the whole process on some corrupt JPEGs (DALI 2.4, see
            :mod:`dali_multicrop.badsamples.validation`). The workers are programs of their own: any kind of user
            program works (no main guard needed). Costs one more decode per file in the first epoch only (measured
            on 2 CPU cores: 217-222 vs 240 img/s in that epoch). Image folders and file lists; default: True with
            ``on_error="skip"`` (a run that must not stop), else False.
        executor: how DALI schedules the graph: operator concurrency, CUDA stream policy, samples per resize
            launch (:class:`~dali_multicrop.graph.executor.ExecutorSettings` or its text, ``"concurrency=full"``);
            default DALI's own. Scheduling only: the crops are the same (``dali-multicrop bench --executor``
            measures it).

    One ``for`` loop is one epoch; each new loop starts the next epoch unless :meth:`set_epoch` says which.
    """

    def __init__(self, source: SourceLike, crops: CropsLike = "2x224,6x96", batch_size: int = 64, *,
                 device: str = "auto", seed: int = 0, shard_id: Optional[int] = None,
                 num_shards: Optional[int] = None, device_id: Optional[int] = None,
                 num_threads: Optional[int] = None, shuffle: bool = True, drop_last: bool = False,
                 dtype: str = "float32", mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, prefetch: int = 2,
                 hw_decoder_load: float = HW_DECODER_LOAD, curriculum: Optional[Curriculum] = None,
                 on_error: str = "raise", validate: Optional[bool] = None, executor: ExecutorLike = None) -> None:
        self.spec: MultiCropSpec = parse_crops(crops)
        if curriculum is not None:
            if not isinstance(curriculum, Curriculum):
                raise ValueError(f"curriculum must be a Curriculum, got {curriculum!r}")
            curriculum.check(self.spec)
        self.curriculum = curriculum
        batch_size = check_int("batch_size", batch_size, 1)
        seed = check_int("seed", seed, 0)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.mean = check_rgb("mean", mean, positive=False)
        self.std = check_rgb("std", std, positive=True)
        self.prefetch = check_int("prefetch", prefetch, 1)
        self.hw_decoder_load = check_probability("hw_decoder_load", hw_decoder_load)
        self.num_threads = check_int("num_threads", num_threads, 1) if num_threads is not None else _default_threads()
        rank, world, local_rank = distributed_defaults()
        num_shards = world if num_shards is None else check_int("num_shards", num_shards, 1)
        shard_id = rank if shard_id is None else check_int("shard_id", shard_id, 0)
        self.device, cuda_index = _resolve_device(device)
        if cuda_index is not None and device_id is not None and check_int("device_id", device_id, 0) != cuda_index:
            raise ValueError(f"device={device!r} and device_id={device_id} name different GPUs; give one of them")
        if cuda_index is not None:
            device_id = cuda_index
        self.device_id = local_rank if device_id is None else check_int("device_id", device_id, 0)
        if self.device == "gpu" and self.device_id >= torch.cuda.device_count():
            raise ValueError(f"device_id={self.device_id} but torch sees {torch.cuda.device_count()} CUDA device(s)")
        self.dtype = dtype
        self.seed = seed
        self.on_error = check_on_error(on_error)
        self.source: AnySource = resolve_source(source)
        if on_error == "skip" and isinstance(self.source, TarShards):
            # DALI's reader can neither leave a sample out nor tell its order ahead: the loader reads the members
            # itself (docs/sources.md, "Bad samples in tar shards")
            self.source = DatasetSource(TarMembers(self.source), workers=_default_threads())
        files = isinstance(self.source, FileList)
        if validate and not files:
            if isinstance(self.source, ArraySource):
                raise ValueError("validate=True checks image files before DALI reads them; arrays are decoded "
                                 "pixels already and cannot be bad")
            given = "tar shards" if isinstance(getattr(self.source, "dataset", None), TarMembers) else "a torch Dataset"
            raise ValueError(f"validate=True checks image files before DALI reads them; {given} has none: their "
                             f"encoded items are checked as they are fetched, and on_error='skip' replaces those that "
                             f"fail")
        self.validate = files and ((on_error == "skip") if validate is None else bool(validate))
        self.plan = ShardPlan(num_samples=len(self.source), batch_size=batch_size, shard_id=shard_id,
                              num_shards=num_shards, shuffle=bool(shuffle), drop_last=bool(drop_last), seed=seed,
                              order_of=getattr(getattr(self.source, "dataset", None), "epoch_order", None))
        self.settings = GraphSettings(device=self.device, batch_size=batch_size, num_threads=self.num_threads,
                                      seed=self.graph_seed(), device_id=self.device_id, dtype=dtype, mean=self.mean,
                                      std=self.std, prefetch=self.prefetch,
                                      decoder=DecoderSettings.for_threads(self.num_threads, self.hw_decoder_load),
                                      executor=executor_settings(executor))
        """What the graph is built with (frozen)."""
        self.torch_device = self.settings.torch_device
        self.decoder_memory = self.settings.decoder_memory
        """What the GPU decoder preallocates on this rank before the first batch (zero for device="cpu"): at most
        ``DEVICE_PADDING_BUDGET`` of GPU and ``HOST_PADDING_BUDGET`` of pinned host memory, whatever the threads."""
        self._next_epoch = 0
        self._next_batch = 0  # where the next loop starts in its epoch (a resumed run)
        self._resume = ResumePoint()  # the batch a loaded state holds until a loop starts
        self._clock = StatsClock()
        self._running: Optional[list[int]] = None  # [epoch, next batch] of the loop in progress
        self._runner: Optional[GraphRunner] = None
        self._bad = BadSamples(self.source, on_error, self.validate, self.num_threads)
        dali_modules()  # DALI missing: an ImportError with the install command, now rather than mid-loop

    @classmethod
    def from_config(cls, config: "ConfigLike", source: Optional[SourceLike] = None,
                    **overrides: Any) -> "DaliMultiCropLoader":
        """A loader as a training config says (a YAML path or mapping, see :mod:`dali_multicrop.recipes.config`): its
        crops and ``loader:`` settings, reading ``source`` (default: the config's ``data.path``); keyword
        ``overrides`` win over the file (e.g. ``device="cpu"``)."""
        cfg = load_config(config)
        source = source if source is not None else cfg.path
        if source is None:
            raise ValueError(f"{cfg.origin}: data.path is not set; give it in the file or pass source=...")
        return cls(source, **{"crops": cfg.spec, **cfg.loader, "curriculum": cfg.curriculum, **overrides})

    @classmethod
    def for_evaluation(cls, source: SourceLike, size: int = 224, resize: int = 256, batch_size: int = 256,
                       **kwargs: Any) -> "DaliMultiCropLoader":
        """A loader for kNN and linear-probe evaluation: the same graph and devices as training with one view
        per image, :meth:`MultiCropSpec.evaluation` (shorter side to ``resize``, centre ``size`` crop,
        normalised), in the source's order (no shuffle), every sample exactly once over all ranks (no padding:
        the last batch is smaller, and empty on ranks past the last sample). ``batch.crops[0]`` is
        ``[B, 3, size, size]``; labels and indices as in training."""
        kwargs.setdefault("shuffle", False)
        if kwargs.get("drop_last"):
            raise ValueError("drop_last=True would leave samples out of the evaluation; it is always False here")
        kwargs["drop_last"] = False
        return cls(source, crops=MultiCropSpec.evaluation(size, resize), batch_size=batch_size, **kwargs)

    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    @property
    def shard_id(self) -> int:
        return self.plan.shard_id

    @property
    def num_shards(self) -> int:
        return self.plan.num_shards

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return len(self.plan)

    def set_epoch(self, epoch: int) -> None:
        """Makes the next ``for`` loop epoch ``epoch`` (its shuffle order), from its first batch; later loops count
        on from it. After :meth:`load_state_dict`, ``set_epoch`` of the epoch the state was saved in keeps the
        state's position, so the usual loop (``set_epoch(e)`` at the top of each epoch) resumes exactly; any other
        epoch starts at its first batch."""
        self._next_epoch = check_int("epoch", epoch, 0)
        self._next_batch = self._resume.take(self._next_epoch)

    _STATE_KEYS = ("seed", "num_shards", "batch_size", "num_samples", "shuffle", "drop_last", "crops")

    def _identity(self) -> dict[str, Any]:
        plan = self.plan
        return {"seed": self.seed, "num_shards": plan.num_shards, "batch_size": plan.batch_size,
                "num_samples": plan.num_samples, "shuffle": plan.shuffle, "drop_last": plan.drop_last,
                "crops": str(self.spec)}

    def state_dict(self) -> dict[str, Any]:
        """Where the next batch comes from, as plain values (JSON-able): ``epoch`` and ``batch`` (its index in
        the epoch), with what must match to resume (seed, shards, batch size, dataset size, crops).

        Taken inside a loop after batch ``k`` was yielded, it resumes at batch ``k + 1``; taken between loops,
        at the next loop (after a loop left early: the next epoch, as the loader itself would go on). Every rank is
        at the same step, so one rank's state resumes any rank. Batches are
        keyed on (seed, shard, epoch, batch), so a resumed run yields the same samples, crops, boxes and flips
        from there on (bit-identical on the CPU backend).
        """
        epoch, batch = self._running if self._running is not None else (self._next_epoch, self._next_batch)
        if batch >= len(self):
            epoch, batch = epoch + 1, 0
        return {"epoch": epoch, "batch": batch, **self._identity()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Makes the next loop resume where ``state`` (from :meth:`state_dict`) says, also through a
        ``set_epoch`` of that epoch first (see :meth:`set_epoch`); ``ValueError`` naming what differs when the state
        comes from a loader over other data or settings."""
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict from DaliMultiCropLoader.state_dict(), got {type(state).__name__}")
        mine = self._identity()
        for key in self._STATE_KEYS:
            if key not in state:
                raise ValueError(f"state has no '{key}': not a DaliMultiCropLoader state")
            if state[key] != mine[key]:
                raise ValueError(f"state was saved with {key}={state[key]!r}, this loader has {key}={mine[key]!r}: "
                                 f"its batches would differ")
        epoch = check_int("state['epoch']", state.get("epoch"), 0)
        batch = check_int("state['batch']", state.get("batch"), 0)
        if batch > len(self):
            raise ValueError(f"state['batch']={batch} is past the {len(self)} batches of an epoch")
        self._next_epoch, self._next_batch = epoch, batch
        self._resume.hold(epoch, batch)

    @property
    def epoch(self) -> int:
        """The epoch the next ``for`` loop will run."""
        return self._next_epoch

    def __iter__(self) -> Iterator[MultiCropBatch]:
        epoch, first = self._next_epoch, self._next_batch
        self._next_epoch, self._next_batch = epoch + 1, 0
        self._resume.drop()
        return self._run_epoch(epoch, first)

    def epoch_plan(self, epoch: int) -> EpochPlan:
        """This rank's batches of ``epoch``, as the source reads them: sample indices, or for tar shards (DALI's
        reader picks the samples) their sizes and the reader's settings (see ``TarShards``)."""
        if isinstance(self.source, TarShards):
            return self.source.epoch_plan(self.plan, epoch)
        return self.plan.epoch_plan(epoch)

    @property
    def current_spec(self) -> MultiCropSpec:
        """The crops of the epoch in progress (or, between loops, of the next loop's): ``self.spec`` (the most
        there will be) as the curriculum makes it for that epoch, e.g. ``2x224,2x96`` at epoch 0 of
        ``multicrop_training`` while ``self.spec`` is ``2x224,6x96``."""
        return self.spec_at(self._running[0] if self._running is not None else self._next_epoch)

    def spec_at(self, epoch: int) -> MultiCropSpec:
        """The crops of ``epoch``: ``self.spec``, or what the curriculum makes of it."""
        return self.curriculum.spec_at(self.spec, epoch) if self.curriculum is not None else self.spec

    def _run_epoch(self, epoch: int, first: int) -> Iterator[MultiCropBatch]:
        spec = self.spec_at(epoch)
        if self._runner is None or self._runner.spec != spec:  # a new crop count: a graph without the others
            if self._runner is not None:
                self._runner.close()
            self._runner = GraphRunner(self.source, spec, self.settings, self.plan, bad=self._bad)
        runner = self._runner
        progress = self._running = [epoch, first]
        clock = self._clock
        clock.start(epoch)
        try:
            for result in runner.run_epoch(self.epoch_plan(epoch), first):
                progress[1] += 1
                clock.ready(result.batch_size)
                yield result
                clock.resumed()
        finally:
            if self._running is progress:
                self._running = None

    @property
    def stats(self) -> LoaderStats:
        """The loader's side of the training loop, counted always (two clock reads a batch): this epoch's and all
        epochs' batches and images, the time the loop waited for data inside ``next()`` against the time between
        batches, images per second (see :class:`~dali_multicrop.loader.stats.LoaderStats`; ``print(loader.stats)``
        says it in one line)."""
        return self._clock.snapshot()

    @property
    def skipped(self) -> dict[str, str]:
        """Samples skipped so far (``on_error="skip"``): a file's path (``Dataset[i]`` for a torch Dataset's item)
        -> what is wrong with it."""
        return dict(self._bad.skipped)

    def close(self) -> None:
        """Stops the graph's threads and frees its memory now, rather than when the loader is collected (an
        open loop over it ends with an error); a later loop builds the graph again. ``with
        DaliMultiCropLoader(...) as loader:`` closes on leaving the block."""
        if self._runner is not None:
            self._runner.close()
        self._bad.close()  # what it knows stays known
        closer = getattr(self.source, "close", None)
        if callable(closer):
            closer()

    def __enter__(self) -> "DaliMultiCropLoader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def graph_seed(self) -> int:
        """The DALI pipeline's own seed, keyed on the user's seed and this shard. No operator of the graph draws
        with it: every random parameter of the crops is drawn by the graph's crop step from the keys the feed hands
        it (:mod:`dali_multicrop.step.draws`, :mod:`dali_multicrop.step`)."""
        return derive_seed(self.seed, self.plan.shard_id, 0xC0)

    def __repr__(self) -> str:
        return (f"DaliMultiCropLoader({len(self.source)} images, crops='{self.spec}', batch_size={self.batch_size}, "
                f"device='{self.device}', shard {self.shard_id}/{self.num_shards}, {len(self)} batches/epoch)")
