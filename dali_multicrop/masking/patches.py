"""``PatchMaskGenerator``: block-wise masked-patch masks (BEiT, iBOT, DINOv2) for the global crops of a batch.

The sampling law is DINOv2's (``dinov2/data/masking.py::MaskingGenerator`` called by
``dinov2/data/collate.py::collate_data_and_cast``), on the batch's device:

* The batch's ``M = n_global * B`` masks (crop-major, as DINOv2 stacks its global crops) get target counts:
  ``m = int(M * mask_sample_probability)`` of them a ratio from stratified slots (``linspace(lo, hi, m + 1)``,
  slot ``i`` drawn uniformly in ``[edge_i, edge_{i+1}]``), target ``int(N * ratio)`` patches; the other ``M - m``
  target 0; the targets are then shuffled among the masks (one random permutation).
* Per mask, blocks are added while its count is below its target. Adding a block is up to 10 tries, each a block of
  area ``U(min_num_patches, min(remaining, max_num_patches))`` patches and aspect ``exp(U(log min_aspect,
  log max_aspect))``, ``h = round(sqrt(area * aspect))``, ``w = round(sqrt(area / aspect))``, kept only if
  ``h < grid`` and ``w < grid`` (DINOv2's strict bound: no block spans the grid), placed uniformly
  (``top`` in ``[0, grid - h]``), and accepted if it masks at least one new patch and at most the remaining
  count; the first accepted try of the 10 is applied. When all 10 fail the mask stops there (it falls short of
  its target: :attr:`PatchMasks.targets` says by how much). A block never counts patches already masked, and
  no mask exceeds its target.

On CUDA, vectorised: the 10 tries of every mask are drawn and judged at once (a failed try changes nothing, so
judging them against the same mask is the law exactly), one round per block; overlap counts come from the masks'
integral images. A fixed number of rounds (:attr:`PatchMaskGenerator.rounds`, from a probe at construction) runs
without reading anything back, and a mask still growing after the last round is counted in
:attr:`PatchMaskGenerator.cut_masks` (expected 0). On the CPU, where those rounds' cost is one torch operator
after another (about 1,300 per call), each mask grows block by block in a compiled kernel instead
(:func:`~dali_multicrop.masking._block_kernel.grow_masks`, Numba). Both ways are tested against a loop written from
DINOv2's code (``tests/dinov2_reference.py``); the targets come from the same torch code for both devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import torch

from ..common.checks import check_int, check_probability, check_range
from ..loader.batch import MultiCropBatch
from ..recipes.presets import parse_crops
from ..recipes.spec import CropsLike
from . import _sync
from .keys import KeyedSteps

if TYPE_CHECKING:
    from ..recipes.config import ConfigLike

__all__ = ["PATCH_STRATEGIES", "PatchMaskGenerator", "PatchMasks", "TRIES"]

PATCH_STRATEGIES = ("ibot", "dinov2")
"""Names that ask for these masks where a masking strategy is chosen (``dali-multicrop preview --strategy ibot``):
both are DINOv2's law (see the module)."""

TRIES = 10
"""Tries per block, as DINOv2's ``MaskingGenerator._mask``."""
_PROBE_MASKS = 4096
"""Masks of the constructor's probe (at the largest target) that sets the rounds run on CUDA."""
_MAX_ROUNDS = 256
"""The most rounds (blocks per mask) a call runs."""


@dataclass
class PatchMasks:
    """Block-wise masks for the global crops of one batch. ``N = grid * grid`` patches per crop.

    - ``masks``: bool ``[n_global, B, N]``, True = masked patch (replaced by the mask token in the student).
    - ``targets``: int64 ``[n_global, B]``, each mask's target count (0 for an unmasked sample); ``masks.sum(-1)``
      is at most this, less where the mask fell short.
    - ``upperbound``: DINOv2's ``upperbound``, the sum of the strata's upper counts (``int(N * edge_{i+1})``).
    """

    masks: torch.Tensor
    targets: torch.Tensor
    upperbound: int

    def ibot(self) -> list[torch.Tensor]:
        """iBOT's layout: one bool ``[B, N]`` per global crop."""
        return list(self.masks.unbind(0))

    def dinov2(self, batch: Optional[MultiCropBatch] = None,
               dtype: Optional[torch.dtype] = None) -> dict[str, Any]:
        """DINOv2's collated batch (``collate_data_and_cast``'s keys and meanings): ``collated_masks`` bool
        ``[n_global*B, N]`` (crop-major), ``mask_indices_list`` (int64, the masked positions of its flattening),
        ``masks_weight`` (float32, ``1 / count`` of its mask per masked patch), ``upperbound`` (int),
        ``n_masked_patches`` (int64 ``[1]``); with ``batch``, also ``collated_global_crops`` (crop-major ``[n_global*B,
        3, S, S]``) and ``collated_local_crops`` (``[n_local*B, 3, s, s]``, absent without local crops), cast to
        ``dtype`` where given. ``mask_indices_list`` has a data-dependent length: on CUDA building it waits for the
        GPU once (DINOv2's collate does the same on the CPU)."""
        collated = self.masks.flatten(0, 1)
        indices = collated.flatten().nonzero().flatten()
        weight = (1.0 / collated.sum(-1).clamp(min=1.0)).unsqueeze(-1).expand_as(collated)[collated]
        out: dict[str, Any] = {"collated_masks": collated, "mask_indices_list": indices, "masks_weight": weight,
                               "upperbound": self.upperbound,
                               "n_masked_patches": torch.full((1,), indices.shape[0], dtype=torch.long,
                                                              device=collated.device)}
        if batch is not None:
            n_global = self.masks.shape[0]
            globals_, locals_ = batch.crops[:n_global], batch.crops[n_global:]
            cast = (lambda t: t.to(dtype)) if dtype is not None else (lambda t: t)
            out["collated_global_crops"] = cast(torch.cat(globals_))
            if locals_:
                sizes = {int(c.shape[-1]) for c in locals_}
                if len(sizes) == 1:
                    out["collated_local_crops"] = cast(torch.cat(locals_))
                else:
                    raise ValueError(f"DINOv2 stacks its local crops into one tensor; these have sizes {sorted(sizes)}")
        return out


class PatchMaskGenerator(KeyedSteps):
    """Samples DINOv2's block-wise patch masks (see the module) for the global crops of a multi-crop batch.

    Args (DINOv2's names and defaults, ``ssl_default_config.yaml``'s ``ibot:`` section and ``train.py``):
        crops: the loader's crop spec (``"2x224,6x96"`` or a ``MultiCropSpec``); masks are made for its global crops
            (``num_global`` of them, all of one size).
        patch_size: ViT patch side in pixels (DINOv2's ViT-*/14: 14). Default 16.
        mask_ratio_min_max: the range of a masked sample's ratio of masked patches. Default (0.1, 0.5).
        mask_sample_probability: share of the ``n_global * B`` masks that get a target (the rest are empty).
            Default 0.5.
        min_num_patches: the least area of a block, in patches. Default 4.
        max_num_patches: the most patches one block may add; default None: half the grid (DINOv2's
            ``0.5 * N``).
        min_aspect, max_aspect: the blocks' aspect range (log-uniform); ``max_aspect`` None: ``1 / min_aspect``.
            Default 0.3.
        seed, rank: the random stream is keyed on ``(seed, epoch, step, rank)``; rank defaults to ``RANK``.

    Call it with a :class:`MultiCropBatch` (``gen(batch)``) or with ``gen(batch_size=B, device=...)``; each call is
    the next step, :meth:`set_epoch` restarts the step count.
    """

    def __init__(self, crops: CropsLike = "2x224,6x96", patch_size: int = 16, *,
                 mask_ratio_min_max: Sequence[float] = (0.1, 0.5), mask_sample_probability: float = 0.5,
                 min_num_patches: float = 4, max_num_patches: Optional[float] = None, min_aspect: float = 0.3,
                 max_aspect: Optional[float] = None, seed: int = 0, rank: Optional[int] = None) -> None:
        super().__init__(seed, rank)
        self.spec = parse_crops(crops)
        sizes = set(self.spec.sizes[:self.spec.num_global])
        if len(sizes) != 1:
            raise ValueError(f"the global crops of crops='{self.spec}' have sizes {sorted(sizes)}; patch masks need "
                             f"one size (DINOv2 stacks its global crops)")
        size = sizes.pop()
        self.patch_size = check_int("patch_size", patch_size, 1)
        if size % self.patch_size:
            raise ValueError(f"global crop size {size} is not a multiple of patch_size {self.patch_size}")
        self.grid = size // self.patch_size
        self.num_patches = self.grid * self.grid
        if self.grid < 2:
            raise ValueError(f"a {size} px crop in patches of {self.patch_size} is a {self.grid}x{self.grid} grid; "
                             f"blocks need at least 2x2 (a block is narrower than the grid)")
        ratio = check_range("mask_ratio_min_max", mask_ratio_min_max, low=0.0, high=1.0,
                            form=" (fractions of the patches)")
        self.mask_ratio_min_max = ratio
        self.mask_sample_probability = check_probability("mask_sample_probability", mask_sample_probability)
        self.min_num_patches = _positive("min_num_patches", min_num_patches)
        largest = (self.grid - 1) ** 2  # the strict bound: h and w below the grid
        if self.min_num_patches > largest:
            raise ValueError(f"min_num_patches={min_num_patches} is more than the largest block a {self.grid}x"
                             f"{self.grid} grid takes ({self.grid - 1}x{self.grid - 1} = {largest} patches)")
        self.max_num_patches = (0.5 * self.num_patches if max_num_patches is None
                                else _positive("max_num_patches", max_num_patches))
        if self.max_num_patches > self.num_patches:
            raise ValueError(f"max_num_patches={max_num_patches} is more than the grid's {self.num_patches} patches")
        if self.min_num_patches > self.max_num_patches:
            raise ValueError(f"min_num_patches={min_num_patches} is more than max_num_patches="
                             f"{self.max_num_patches:g}: no block could be accepted")
        self.min_aspect = _positive("min_aspect", min_aspect)
        self.max_aspect = 1.0 / self.min_aspect if max_aspect is None else _positive("max_aspect", max_aspect)
        if self.min_aspect > self.max_aspect:
            raise ValueError(f"min_aspect={self.min_aspect:g} is more than max_aspect={self.max_aspect:g}")
        top = int(self.num_patches * ratio[1])
        if ratio[1] > 0 and top < 1:
            raise ValueError(f"mask_ratio_min_max={mask_ratio_min_max!r} asks for less than one of the grid's "
                             f"{self.num_patches} patches")
        self._log_aspect = (math.log(self.min_aspect), math.log(self.max_aspect))
        self._cut: dict[torch.device, torch.Tensor] = {}
        self._strata: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor, int]] = {}
        self.rounds = self._probe_rounds(top)


    def extra_repr(self) -> str:
        """What ``print(generator)`` shows: its settings, as the constructor takes them."""
        return (f"crops='{self.spec}', patch_size={self.patch_size}, mask_ratio_min_max={self.mask_ratio_min_max}, "
                f"mask_sample_probability={self.mask_sample_probability}, min_num_patches={self.min_num_patches}, "
                f"max_num_patches={self.max_num_patches}, min_aspect={self.min_aspect}, "
                f"max_aspect={self.max_aspect:.4g}, seed={self.seed}, rank={self.rank}")
    @classmethod
    def from_config(cls, config: "ConfigLike", **overrides: Any) -> "PatchMaskGenerator":
        """A generator as a training config says (read by :func:`~dali_multicrop.recipes.config.masks_from_config`):
        its crops and its ``patch_masking:`` settings (DINOv2's names); keyword ``overrides`` win over the file."""
        from ..recipes.config import masks_from_config

        return masks_from_config(cls, config, overrides, section="patch_masking")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "PatchMaskGenerator":
        """A generator for a recipe's crops with the method's own patch-mask settings, where the recipe carries them
        (its ``patch_masking``: ``dinov2`` patch 14 and DINOv2's defaults, ``ibot`` iBOT's; see
        :func:`~dali_multicrop.recipes.config.preset_patch_masking`); keyword ``overrides`` win over the recipe."""
        from ..recipes.config import preset_patch_masking

        return cls(name, **{**preset_patch_masking(name), **overrides})

    def _probe_rounds(self, top: int) -> int:
        """Rounds run per call on CUDA: the most blocks any of ``_PROBE_MASKS`` masks at the largest target took
        (run on the CPU until every mask stopped), doubled, at least 8."""
        if top == 0:
            return 1
        targets = torch.full((_PROBE_MASKS,), top, dtype=torch.long)
        _, _, rounds = self._grow(targets, torch.Generator().manual_seed(0), until_done=True)
        return min(_MAX_ROUNDS, max(8, 2 * rounds))

    def _edges(self, masked: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The ``masked`` strata's lower and upper ratios on ``device`` and DINOv2's upperbound: made on the host
        once per count and device (a batch size's first call), so that later calls copy nothing to the device."""
        key = (masked, device)
        if key not in self._strata:
            edges = torch.linspace(*self.mask_ratio_min_max, masked + 1, device="cpu")  # float32, as DINOv2's
            upperbound = int((self.num_patches * edges[1:]).long().sum())
            self._strata[key] = (edges[:-1].to(device), edges[1:].to(device), upperbound)
        return self._strata[key]

    def _targets(self, count: int, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, int]:
        """Target counts of ``count`` masks (stratified, shuffled) and DINOv2's upperbound."""
        masked = int(count * self.mask_sample_probability)
        lo, hi, upperbound = self._edges(masked, device)
        u = torch.rand(masked, generator=generator, device=device)
        strata = (self.num_patches * (lo + (hi - lo) * u)).long()
        targets = torch.cat([strata, torch.zeros(count - masked, dtype=torch.long, device=device)])
        order = torch.randperm(count, generator=generator, device=device)
        return targets[order], upperbound

    def _grow(self, targets: torch.Tensor, generator: torch.Generator,
              until_done: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Masks bool ``[M, N]`` grown block by block to ``targets`` ``[M]``; whether each was still growing after
        the last round; the rounds run (``until_done``: until every mask stopped, else :attr:`rounds`)."""
        device = targets.device
        g, M = self.grid, targets.shape[0]
        side = g + 1
        mask = torch.zeros((M, g, g), dtype=torch.bool, device=device)
        count = torch.zeros(M, dtype=torch.long, device=device)
        active = targets > 0
        ar = torch.arange(g, device=device)
        lo_log, hi_log = self._log_aspect
        rounds = 0
        limit = _MAX_ROUNDS if until_done else self.rounds
        while rounds < limit:
            if until_done and not bool(active.any()):
                break
            rounds += 1
            budget = (targets - count).to(torch.float32).clamp_(max=self.max_num_patches)[:, None]  # [M, 1]
            u = torch.rand((4, M, TRIES), generator=generator, device=device)
            area = self.min_num_patches + (budget - self.min_num_patches) * u[0]
            aspect = torch.exp(lo_log + (hi_log - lo_log) * u[1])
            h = torch.sqrt(area * aspect).round_().long()
            w = torch.sqrt(area / aspect).round_().long()
            fits = (h < g) & (w < g) & (h > 0) & (w > 0)
            h, w = h.clamp_(1, g - 1), w.clamp_(1, g - 1)
            top = (u[2] * (g - h + 1)).long().clamp_(max=g - h)  # uniform over the rows where the block fits
            left = (u[3] * (g - w + 1)).long().clamp_(max=g - w)
            # patches already masked under each try's block, from the masks' integral images
            integral = torch.nn.functional.pad(mask.int().cumsum(1).cumsum(2), (1, 0, 1, 0)).flatten(1)

            def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
                return integral.gather(1, r * side + c)

            bottom, right = top + h, left + w
            covered = at(bottom, right) - at(top, right) - at(bottom, left) + at(top, left)
            new = h * w - covered
            ok = fits & (new > 0) & (new <= budget) & active[:, None]
            took = ok.any(1)
            first = ok.byte().argmax(1, keepdim=True)  # the first accepted try
            t, l = top.gather(1, first), left.gather(1, first)
            rows = (ar >= t) & (ar < bottom.gather(1, first))  # [M, g]
            cols = (ar >= l) & (ar < right.gather(1, first))
            mask |= rows[:, :, None] & cols[:, None, :] & took[:, None, None]
            count += new.gather(1, first)[:, 0] * took
            active &= took & (count < targets)
        return mask.flatten(1), active, rounds

    @property
    def cut_masks(self) -> int:
        """Masks so far (CUDA calls) still growing after the last round, cut short by the fixed round count
        (expected 0; reading it waits for the GPU)."""
        return int(sum(int(c) for c in self._cut.values()))

    def forward(self, batch: Optional[MultiCropBatch] = None, *, batch_size: Optional[int] = None,
                device: Union[str, torch.device, None] = None, step: Optional[int] = None) -> PatchMasks:
        """Masks for one batch's global crops. ``step`` (default: the call count since :meth:`set_epoch`) keys
        the draws."""
        n_global = self.spec.num_global
        if batch is not None:
            want = self.spec.sizes[:n_global]
            if batch.crop_sizes[:n_global] != want:
                raise ValueError(f"the batch's global crop sizes {batch.crop_sizes[:n_global]} do not match "
                                 f"crops='{self.spec}' {want}")
            batch_size, device = batch.batch_size, batch.device
        elif batch_size is None:
            raise ValueError("pass a MultiCropBatch, or batch_size (and device)")
        batch_size = check_int("batch_size", batch_size, 0)
        device = torch.device(device if device is not None else "cpu")
        step = self.next_step(step)
        generator = self.generator(device, step, 0xB0)
        targets, upperbound = self._targets(n_global * batch_size, generator, device)
        if _sync.reads_back_freely(device):  # mask by mask, compiled: no torch operator per block
            from ._block_kernel import grow_masks

            seed = int(torch.randint(1 << 62, (1,), generator=generator))
            grown = grow_masks(targets.numpy(), self.grid, self.min_num_patches, self.max_num_patches,
                               *self._log_aspect, TRIES, seed)
            masks = torch.from_numpy(grown).flatten(1)
        else:
            masks, growing, _ = self._grow(targets, generator, until_done=False)
            cut = growing.sum()
            self._cut[device] = self._cut[device] + cut if device in self._cut else cut
        shape = (n_global, batch_size)
        return PatchMasks(masks.view(*shape, self.num_patches), targets.view(shape), upperbound)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)
