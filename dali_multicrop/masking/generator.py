"""``MultiCropMaskGenerator``: per-crop, per-level JEPA masks for a multi-crop batch, on the batch's device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import math

import torch

from ..common.checks import check_int
from ..loader.batch import MultiCropBatch
from ..recipes.presets import parse_crops
from ..recipes.spec import CropsLike
from . import _sync
from .keys import KeyedSteps
from .functional import (locate_in_crop, masks_to_indices, max_block_dims, patch_centres, sample_blocks,
                         visible_in_box)
from .levels import STRATEGIES, MaskLevel, hierarchical_levels

if TYPE_CHECKING:
    from ..recipes.config import ConfigLike
    from ..recipes.curriculum import Curriculum

__all__ = ["MultiCropMaskGenerator", "MultiCropMasks", "STRATEGIES"]

_MAX_ROUNDS = 32
"""The most draws per mask: the generator makes as many as keep the chance that all of them miss ``min_keep`` below
``_MISS_TARGET``, this many at most."""
_MISS_TARGET = 1e-9
"""Chance, per mask, that every one of the fixed number of draws keeps fewer than ``min_keep`` patches."""
_FEASIBILITY_DRAWS = 16384
"""Draws per mask level of the constructor's probe, fewer where masks are large (see ``_PROBE_ELEMENTS``)."""
_PROBE_ELEMENTS = 2 ** 27
"""Most mask entries the probe holds at once (128 MiB of bools)."""
_FEASIBILITY_MIN_RATE = 0.5
MAX_LEVELS = 8
"""Most hierarchy levels (H-JEPA uses 3)."""
MAX_TARGETS = 16
"""Most target blocks per crop and level (I-JEPA uses 4)."""
MAX_GRID = 64
"""Most patches along a crop's side (a 64x64 grid: 4096 patches; ViT-B/8 at 224 px has 28)."""


@dataclass
class MultiCropMasks:
    """Masks for every crop of a batch, crops in the loader's order (globals first). ``N_i = (S_i/patch)**2``.

    - ``context[i]``: bool ``[L, B, N_i]``, True = patch visible to the context encoder.
    - ``targets[i]``: bool ``[L, B, T, N_i]``, True = patch to predict. A crop that is only context has
      all-True context and all-False targets.
    - ``extra_context[i]``: indices of other crops whose full context joins crop ``i``'s context when its
      targets are predicted (``global_with_local_context``: every local crop, for every global crop).
      A training step encodes crop ``i``'s context patches and those crops' patches, concatenates the
      tokens, and asks the predictor for crop ``i``'s targets from all of them.
    - ``cross_targets[(i, j)]`` (``cross_crop_prediction``): bool ``[L, B, T, N_i]``, the targets of global
      crop ``i`` to be predicted from crop ``j``'s context, ``j != i`` any crop: crop ``i``'s targets kept only
      on patches whose centres lie inside crop ``j``'s window, i.e. in the region both crops show (boxes and
      flips from the batch). A target block can be empty where the crops barely overlap.
    - ``cross_context[(i, j)]``: bool ``[L, B, N_j]``, the part of crop ``j``'s context that may be used for
      that prediction: ``context[j]`` minus the patches whose centres fall on a target patch of crop ``i``
      (unless overlap is allowed), so the predicted content is not visible in the context.
      A training step encodes crop ``j`` with ``cross_context[(i, j)][l]``, and asks the predictor for the
      target encoder's features of crop ``i`` at ``cross_targets[(i, j)][l]``.
    """

    strategy: str
    context: list[torch.Tensor]
    targets: list[torch.Tensor]
    extra_context: list[tuple[int, ...]] = field(default_factory=list)
    cross_targets: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)
    cross_context: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)
    generator: Optional[torch.Generator] = None
    """Draws :meth:`indices` makes: a stream of its own keyed like the masks (seed, epoch, step, rank)."""

    def indices(self, mask: torch.Tensor, mode: str = "random_subset",
                num: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`~dali_multicrop.masks_to_indices` of one of these masks, its random choices drawn from this
        batch's keyed stream (:attr:`generator`): a resumed run picks the same patches."""
        return masks_to_indices(mask, mode, generator=self.generator, num=num)


class MultiCropMaskGenerator(KeyedSteps):
    """Samples hierarchical multi-block masks (I-JEPA, H-JEPA) for each crop of a multi-crop batch.

    Args:
        crops: the loader's crop spec (``"2x224,6x96"`` or a ``MultiCropSpec``); the first group is global.
        patch_size: ViT patch side in pixels; every masked crop size must be a multiple of it. Default 16.
        strategy: one of :data:`STRATEGIES`. Default ``"global_only"``: global crops are masked, level by
            level; local crops are plain context.
        num_levels: hierarchy depth with H-JEPA's default levels (target scale (0.05, 0.15) doubling per
            level). Ignored when ``levels`` is given. Default 3.
        levels: explicit :class:`MaskLevel` settings, one per level (``(IJEPA_LEVEL,)`` for I-JEPA).
        num_targets: target blocks per crop and level. Default 4.
        allow_overlap: keep target patches in the context. Default False (targets are removed from it).
        min_keep: the fewest context patches a mask may keep (after removing targets). Default 4.
        seed, rank: the random stream is keyed on ``(seed, epoch, step, rank)``; rank defaults to ``RANK``.
        curriculum: the loader's :class:`~dali_multicrop.Curriculum`: :meth:`set_epoch` then follows its crops
            (give both the same epoch).

    Call it with a :class:`MultiCropBatch` (``gen(batch)``) or with ``gen(batch_size=B, device=...)``.
    Each call is the next step; :meth:`set_epoch` restarts the step count for an epoch.
    """

    def __init__(self, crops: CropsLike = "2x224,6x96", patch_size: int = 16, strategy: str = "global_only",
                 num_levels: int = 3, num_targets: int = 4, *, levels: Optional[Sequence[MaskLevel]] = None,
                 allow_overlap: bool = False, min_keep: int = 4, seed: int = 0, rank: Optional[int] = None,
                 curriculum: Optional["Curriculum"] = None) -> None:
        super().__init__(seed, rank)
        self.full_spec = parse_crops(crops)
        if curriculum is not None:
            curriculum.check(self.full_spec)
        self.curriculum = curriculum
        self.spec = curriculum.spec_at(self.full_spec, 0) if curriculum is not None else self.full_spec
        self.patch_size = check_int("patch_size", patch_size, 1)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.strategy = strategy
        if levels is None and check_int("num_levels", num_levels, 1) > MAX_LEVELS:
            raise ValueError(f"num_levels={num_levels} is more than the {MAX_LEVELS} levels this generator is built for")
        self.levels = tuple(levels) if levels is not None else hierarchical_levels(num_levels)
        if not self.levels or not all(isinstance(l, MaskLevel) for l in self.levels):
            raise ValueError(f"levels must be a non-empty sequence of MaskLevel, got {levels!r}")
        self.num_targets = check_int("num_targets", num_targets, 1)
        if self.num_levels > MAX_LEVELS or self.num_targets > MAX_TARGETS:
            raise ValueError(f"{self.num_levels} levels of {self.num_targets} targets is more than this generator "
                             f"is built for (at most {MAX_LEVELS} levels and {MAX_TARGETS} targets per level)")
        self.allow_overlap = bool(allow_overlap)
        self.min_keep = check_int("min_keep", min_keep, 0)
        self.grids = tuple(self._grid(size) for size in self.spec.sizes)
        self.masked = tuple(range(self.spec.num_global))  # every strategy masks the global crops
        self._ranges: dict[tuple[str, torch.device], torch.Tensor] = {}
        self.rounds = 1
        for grid in {self.grids[i] for i in self.masked}:
            self.rounds = max(self.rounds, self._check_fits(grid))
        self._short: dict[torch.device, torch.Tensor] = {}


    def extra_repr(self) -> str:
        """What ``print(generator)`` shows: its settings, as the constructor takes them."""
        levels = ", ".join(str(level) for level in self.levels)
        text = (f"crops='{self.full_spec}', patch_size={self.patch_size}, strategy='{self.strategy}', "
                f"num_targets={self.num_targets}, levels=({levels}), allow_overlap={self.allow_overlap}, "
                f"min_keep={self.min_keep}, seed={self.seed}, rank={self.rank}")
        return text + (f", curriculum={self.curriculum}" if self.curriculum is not None else "")
    @classmethod
    def from_config(cls, config: "ConfigLike", **overrides: Any) -> "MultiCropMaskGenerator":
        """A generator as a training config says (a shipped name, a YAML path or a mapping; read by
        :func:`~dali_multicrop.recipes.config.masks_from_config`): the config's crops and its ``masking:`` settings;
        keyword ``overrides`` win over the file."""
        from ..recipes.config import masks_from_config

        return masks_from_config(cls, config, overrides)

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    def max_patches(self, crop: int, kind: str = "context", level: Optional[int] = None) -> int:
        """The most patches one mask of crop ``crop`` can select at ``level`` (default None: over every level): its
        context (``kind="context"``) or one of its target blocks (``"target"``); a crop that is only context: all its
        patches, and no target.
        Known from the levels' ranges before any batch, so ``masks.indices(mask, "pad", num=gen.max_patches(i))``
        gives equal-length indices (with their validity) without reading anything back from the GPU; a
        ``cross_context[(i, j)]`` mask is within crop ``j``'s bound, a ``cross_targets[(i, j)]`` within crop ``i``'s.
        """
        if kind not in ("context", "target"):
            raise ValueError(f"kind must be 'context' or 'target', got {kind!r}")
        if not 0 <= crop < self.spec.num_crops:
            raise ValueError(f"crop must be a crop index in [0, {self.spec.num_crops - 1}], got {crop!r}")
        if level is not None and not (isinstance(level, int) and 0 <= level < self.num_levels):
            raise ValueError(f"level must be a level index in [0, {self.num_levels - 1}] or None, got {level!r}")
        grid = self.grids[crop]
        if crop not in self.masked:
            return grid * grid if kind == "context" else 0
        levels = self.levels if level is None else self.levels[level:level + 1]
        sides = [max_block_dims(getattr(l, f"{kind}_scale"), getattr(l, f"{kind}_aspect"), grid) for l in levels]
        return min(grid * grid, max(min(h, grid) * min(w, grid) for h, w in sides))

    def _grid(self, size: int) -> int:
        if size % self.patch_size:
            raise ValueError(f"crop size {size} is not a multiple of patch_size {self.patch_size}")
        if size // self.patch_size > MAX_GRID:
            raise ValueError(f"patch_size {self.patch_size} cuts a {size} px crop into a {size // self.patch_size}x"
                             f"{size // self.patch_size} grid; at most {MAX_GRID}x{MAX_GRID} (a ViT's patch side, "
                             f"e.g. 14 or 16)")
        return size // self.patch_size

    def _level_ranges(self, attr: str, device: torch.device) -> torch.Tensor:
        """float32 ``[L, 2]`` on ``device``: one (min, max) range of ``attr`` per level (made once per device)."""
        key = (attr, device)
        if key not in self._ranges:
            self._ranges[key] = torch.tensor([getattr(l, attr) for l in self.levels], dtype=torch.float32,
                                             device=device)
        return self._ranges[key]

    def _check_fits(self, grid: int) -> int:
        """Checks that blocks fit the grid and that ``min_keep`` is met often enough; returns the draws per mask
        needed to miss ``min_keep`` with a chance below ``_MISS_TARGET`` (from a probe of
        ``_FEASIBILITY_DRAWS`` draws, fewer for large masks, with a margin)."""
        for l, level in enumerate(self.levels):
            for kind in ("target", "context"):
                scale, aspect = getattr(level, f"{kind}_scale"), getattr(level, f"{kind}_aspect")
                h, w = max_block_dims(scale, aspect, grid)
                if h > grid or w > grid:
                    raise ValueError(
                        f"level {l}: a {kind} block of scale {scale[1]} with aspect in {aspect} can be {h}x{w} "
                        f"patches, which does not fit the {grid}x{grid} grid; narrow {kind}_scale or {kind}_aspect")
        if self.min_keep > grid * grid:
            raise ValueError(f"min_keep={self.min_keep} exceeds the {grid * grid} patches of a {grid}x{grid} grid")
        if self.allow_overlap or self.min_keep == 0:
            return 1
        probe = torch.Generator().manual_seed(0)
        draws = max(512, min(_FEASIBILITY_DRAWS,
                             _PROBE_ELEMENTS // (self.num_levels * (self.num_targets + 1) * grid * grid)))
        context, _ = self._draw((draws,), grid, probe, torch.device("cpu"))
        rates = (context.sum(-1) >= self.min_keep).float().mean(dim=-1)
        for l, rate in enumerate(rates.tolist()):
            if rate < _FEASIBILITY_MIN_RATE:
                raise ValueError(
                    f"min_keep={self.min_keep} is met by only {rate:.0%} of level {l}'s masks on a {grid}x{grid} "
                    f"grid ({self.num_targets} targets of scale {self.levels[l].target_scale}); lower min_keep, "
                    f"num_targets or the target scale")
        miss = 1.0 - min(rates.tolist())
        # an upper bound on the true rate: three standard errors above the probe's, and at least the 99.9%
        # bound of a probe that saw no miss at all (-ln(0.001) / draws)
        miss = min(0.5, max(miss + 3.0 * math.sqrt(miss * (1.0 - miss) / draws), 6.9 / draws))
        return min(_MAX_ROUNDS, math.ceil(math.log(_MISS_TARGET) / math.log(miss)))

    def _draw(self, shape: tuple[int, ...], grid: int, generator: torch.Generator,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Context ``[L, *shape, N]`` and targets ``[L, *shape, T, N]`` for every level at once."""
        L, T = self.num_levels, self.num_targets
        pad = (1,) * len(shape)
        tgt_scale = self._level_ranges("target_scale", device).view(L, *pad, 1, 2)
        tgt_aspect = self._level_ranges("target_aspect", device).view(L, *pad, 1, 2)
        ctx_scale = self._level_ranges("context_scale", device).view(L, *pad, 2)
        ctx_aspect = self._level_ranges("context_aspect", device).view(L, *pad, 2)
        targets = sample_blocks((L, *shape, T), grid, tgt_scale, tgt_aspect, generator, device)
        context = sample_blocks((L, *shape), grid, ctx_scale, ctx_aspect, generator, device)
        if not self.allow_overlap:
            context = context & ~targets.any(dim=-2)
        return context, targets

    def _masks(self, crops: int, batch: int, grid: int, generator: torch.Generator,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks for ``crops`` crops of one grid size: context ``[L, C, B, N]``, targets ``[L, C, B, T, N]``.

        Where the context keeps fewer than ``min_keep`` patches, the mask (one level of one crop: targets and
        context) is drawn again, for up to ``self.rounds`` draws in all. On the CPU, where reading a value
        back is free, a round runs only while some mask is short. On CUDA all rounds are drawn at once and the
        first draw that keeps ``min_keep`` is taken: a fixed set of kernels and nothing read back, so a call
        never waits for the GPU. Masks short in every round (chance below ``_MISS_TARGET`` each) are counted
        in :attr:`short_masks`."""
        if self.allow_overlap or self.min_keep == 0:
            return self._draw((crops, batch), grid, generator, device)
        if _sync.reads_back_freely(device):
            context, targets = self._draw((crops, batch), grid, generator, device)
            short = context.sum(-1) < self.min_keep  # [L, C, B]
            for _ in range(self.rounds - 1):
                if not bool(short.any()):
                    break
                new_context, new_targets = self._draw((crops, batch), grid, generator, device)
                context = torch.where(short[..., None], new_context, context)
                targets = torch.where(short[..., None, None], new_targets, targets)
                short = context.sum(-1) < self.min_keep
        else:
            context, targets = self._draw((self.rounds, crops, batch), grid, generator, device)  # [L, R, C, B, ..]
            enough = context.sum(-1) >= self.min_keep  # [L, R, C, B]
            pick = enough.byte().argmax(dim=1, keepdim=True)  # the first round that is enough, else round 0
            context = context.gather(1, pick[..., None].expand(-1, -1, -1, -1, context.shape[-1])).squeeze(1)
            targets = targets.gather(1, pick[..., None, None].expand(-1, -1, -1, -1, *targets.shape[-2:])).squeeze(1)
            short = ~enough.any(dim=1)
        count = short.sum()
        self._short[device] = self._short[device] + count if device in self._short else count
        return context, targets

    @property
    def short_masks(self) -> int:
        """Masks so far whose context kept fewer than ``min_keep`` patches after every round (expected 0;
        reading it waits for the GPU)."""
        return int(sum(int(count) for count in self._short.values()))

    def set_epoch(self, epoch: int) -> None:
        """Keys the following calls on ``epoch`` and restarts their step count at 0, or keeps a just loaded state's
        step for that state's epoch (:meth:`KeyedSteps.set_epoch`); with a curriculum, takes that epoch's crops."""
        super().set_epoch(epoch)
        if self.curriculum is not None:  # the curriculum changes local crops only: the masked grids stay
            self.spec = self.curriculum.spec_at(self.full_spec, epoch)
            self.grids = tuple(self._grid(size) for size in self.spec.sizes)

    def forward(self, batch: Optional[MultiCropBatch] = None, *, batch_size: Optional[int] = None,
                device: Union[str, torch.device, None] = None, step: Optional[int] = None) -> MultiCropMasks:
        """Masks for one batch. ``step`` (default: the call count since :meth:`set_epoch`) keys the draws."""
        if batch is not None:
            if batch.crop_sizes != self.spec.sizes:
                hint = " (with a curriculum, call set_epoch with the loader's epoch)" if self.curriculum else ""
                raise ValueError(f"the batch's crop sizes {batch.crop_sizes} do not match crops='{self.spec}' "
                                 f"{self.spec.sizes}{hint}")
            batch_size, device = batch.batch_size, batch.device
        elif batch_size is None:
            raise ValueError("pass a MultiCropBatch, or batch_size (and device)")
        elif self.strategy == "cross_crop_prediction":
            raise ValueError("strategy 'cross_crop_prediction' needs a MultiCropBatch: it uses the crops' boxes "
                             "and flips")
        batch_size = check_int("batch_size", batch_size, 0)
        device = torch.device(device if device is not None else "cpu")
        step = self.next_step(step)
        generator = self.generator(device, step)
        L, T = self.num_levels, self.num_targets
        context: list[Optional[torch.Tensor]] = [None] * self.spec.num_crops
        targets: list[Optional[torch.Tensor]] = [None] * self.spec.num_crops
        for grid in sorted({self.grids[i] for i in self.masked}):
            same = [i for i in self.masked if self.grids[i] == grid]
            ctx, tgt = self._masks(len(same), batch_size, grid, generator, device)
            for k, i in enumerate(same):
                context[i], targets[i] = ctx[:, k], tgt[:, k]
        for i, grid in enumerate(self.grids):
            if context[i] is None:
                n = grid * grid
                context[i] = torch.ones((L, batch_size, n), dtype=torch.bool, device=device)
                targets[i] = torch.zeros((L, batch_size, T, n), dtype=torch.bool, device=device)
        locals_ = tuple(range(self.spec.num_global, self.spec.num_crops))
        extra = [locals_ if (self.strategy == "global_with_local_context" and i in self.masked) else ()
                 for i in range(self.spec.num_crops)]
        picks = torch.Generator(device=device).manual_seed(self.key(step, 0x1D))  # the batch's own: masks.indices
        masks = MultiCropMasks(self.strategy, context, targets, extra, generator=picks)  # type: ignore[arg-type]
        if self.strategy == "cross_crop_prediction":
            self._cross(masks, batch)  # type: ignore[arg-type]
        return masks

    def _cross(self, masks: MultiCropMasks, batch: MultiCropBatch) -> None:
        """Fills ``cross_targets`` and ``cross_context`` for every (global crop i, other crop j) pair."""
        boxes, flipped = batch.boxes, batch.flipped
        centres = [patch_centres(g, boxes[:, k], flipped[:, k]) for k, g in enumerate(self.grids)]
        for i in self.masked:
            union = masks.targets[i].any(dim=2)  # [L, B, N_i]
            for j in range(self.spec.num_crops):
                if j == i:
                    continue
                shown_by_j = visible_in_box(*centres[i], boxes[:, j])  # [B, N_i]
                masks.cross_targets[(i, j)] = masks.targets[i] & shown_by_j[None, :, None, :]
                context = masks.context[j]
                if not self.allow_overlap:
                    cell = locate_in_crop(*centres[j], boxes[:, i], flipped[:, i], self.grids[i])  # [B, N_j]
                    hit = union.gather(2, cell.clamp(min=0)[None].expand(self.num_levels, -1, -1))
                    context = context & ~(hit & (cell >= 0)[None])
                masks.cross_context[(i, j)] = context
