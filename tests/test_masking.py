"""MultiCropMaskGenerator and the mask kernels: statistical checks a wrong sampler fails."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import DEVICES
from dali_multicrop import MultiCropBatch
from dali_multicrop.masking import IJEPA_LEVEL, MaskLevel, MultiCropMaskGenerator, masks_to_indices, sample_blocks

torch_device = {"cpu": "cpu", "gpu": "cuda"}


def block_geometry(mask: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top, left, height, width of rectangular blocks ``[K, grid*grid]``."""
    m = mask.view(-1, grid, grid)
    rows, cols = m.any(dim=2), m.any(dim=1)
    ar = torch.arange(grid, device=mask.device)
    top = torch.where(rows, ar, grid).min(dim=1).values
    left = torch.where(cols, ar, grid).min(dim=1).values
    return top, left, rows.sum(1), cols.sum(1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("strategy", ["global_only", "global_with_local_context"])
def test_structure_for_every_strategy(device, strategy):
    dev = torch_device[device]
    gen = MultiCropMaskGenerator("2x224,6x96", patch_size=16, strategy=strategy, num_levels=3, num_targets=4)
    masks = gen(batch_size=5, device=dev)
    assert len(masks.context) == len(masks.targets) == 8
    for i, n in enumerate([196] * 2 + [36] * 6):
        assert masks.context[i].shape == (3, 5, n) and masks.targets[i].shape == (3, 5, 4, n)
        assert masks.context[i].dtype == masks.targets[i].dtype == torch.bool
        assert masks.context[i].device.type == torch.device(dev).type
    for i in range(2, 8):  # local crops: plain context
        assert masks.context[i].all() and not masks.targets[i].any()
    assert masks.targets[0].any(dim=-1).all(), "every target block holds patches"
    extra = [(2, 3, 4, 5, 6, 7)] * 2 + [()] * 6 if strategy == "global_with_local_context" else [()] * 8
    assert masks.extra_context == extra


@pytest.mark.parametrize("device", DEVICES)
def test_every_patch_position_gets_targets(device):
    gen = MultiCropMaskGenerator("1x224", num_levels=1, levels=(MaskLevel((0.05, 0.1)),), num_targets=1)
    masks = gen(batch_size=4000, device=torch_device[device])
    hits = masks.targets[0][0, :, 0].float().mean(dim=0).view(14, 14).cpu()
    assert (hits > 0).all(), "some positions are never targets"
    # placement is symmetric: the last row and column are covered as often as the first (no off-by-one bound)
    assert abs(hits[-1, :].mean() / hits[0, :].mean() - 1) < 0.2
    assert abs(hits[:, -1].mean() / hits[:, 0].mean() - 1) < 0.2


def _rounding_bounds(scale, aspect, grid):
    """Extreme block areas (fraction of the grid) after rounding height and width."""
    n = grid * grid
    lo = min(max(1, round(math.sqrt(scale[0] * n / a))) * max(1, round(math.sqrt(scale[0] * n * a))) for a in aspect)
    hi = max(round(math.sqrt(scale[1] * n / a)) * round(math.sqrt(scale[1] * n * a)) for a in aspect)
    return (lo - 1.5 * math.sqrt(scale[0] * n)) / n, (hi + 1.5 * math.sqrt(scale[1] * n)) / n


def test_area_fractions_per_level_stay_in_range_and_grow():
    gen = MultiCropMaskGenerator("2x224,6x96", num_levels=3, num_targets=4, allow_overlap=True)
    masks = gen(batch_size=500)
    means = []
    for l, level in enumerate(gen.levels):
        tgt = masks.targets[0][l].float().mean(dim=-1).flatten()
        lo, hi = _rounding_bounds(level.target_scale, level.target_aspect, 14)
        assert tgt.min() >= lo and tgt.max() <= hi, (l, tgt.min(), tgt.max(), lo, hi)
        mid = sum(level.target_scale) / 2
        assert abs(tgt.mean() - mid) < 0.15 * mid, (l, tgt.mean(), mid)
        ctx = masks.context[0][l].float().mean(dim=-1)
        lo, hi = _rounding_bounds(level.context_scale, level.context_aspect, 14)
        assert ctx.min() >= lo and ctx.max() <= min(1.0, hi)
        means.append(tgt.mean())
    assert means[0] < means[1] < means[2]
    assert gen.levels[0].target_scale == (0.05, 0.15) and gen.levels[2].target_scale == (0.2, 0.6)


def test_scale_and_aspect_independent_and_log_uniform():
    blocks = sample_blocks((20000,), 32, (0.1, 0.3), (0.5, 2.0), torch.Generator().manual_seed(1))
    _, _, h, w = block_geometry(blocks, 32)
    log_aspect = torch.log(w.float() / h.float())
    area = (h * w).float()
    assert abs(log_aspect.mean()) < 0.03  # log-uniform on a symmetric log range centres on 0
    assert abs(torch.corrcoef(torch.stack([area, log_aspect.abs()]))[0, 1]) < 0.1
    # log-uniform: as many blocks with w/h in (1, 2) as in (0.5, 1)
    wide, tall = (log_aspect > 0.05).float().mean(), (log_aspect < -0.05).float().mean()
    assert abs(wide - tall) < 0.03


@pytest.mark.parametrize("device", DEVICES)
def test_targets_outside_context_and_min_keep(device):
    gen = MultiCropMaskGenerator("2x224,6x96", num_levels=3, num_targets=4, min_keep=8)
    masks = gen(batch_size=300, device=torch_device[device])
    for i in (0, 1):
        union = masks.targets[i].any(dim=2)
        assert not (masks.context[i] & union).any()
        assert (masks.context[i].sum(-1) >= 8).all()
    overlap = MultiCropMaskGenerator("2x224,6x96", allow_overlap=True)(batch_size=300)
    assert (overlap.context[0] & overlap.targets[0].any(dim=2)).any()


def test_ijepa_setting_is_reachable():
    gen = MultiCropMaskGenerator("1x224", levels=(IJEPA_LEVEL,), num_targets=4, min_keep=10)
    masks = gen(batch_size=400)
    assert masks.context[0].shape == (1, 400, 196) and masks.targets[0].shape == (1, 400, 4, 196)
    tgt = masks.targets[0][0].float().mean(-1)
    assert 0.12 < tgt.min() and tgt.max() < 0.24
    assert (masks.context[0].sum(-1) >= 10).all()
    top, left, h, w = block_geometry(masks.targets[0][0].reshape(-1, 196), 14)
    ratio = w.float() / h.float()
    assert ratio.min() >= 0.5 and ratio.max() <= 2.0


def test_randomness_is_keyed_on_seed_epoch_step_rank():
    make = lambda **kw: MultiCropMaskGenerator("2x224,6x96", **{"seed": 3, "rank": 0, **kw})
    a, b = make(), make()
    first = a(batch_size=8)
    assert torch.equal(first.context[0], b(batch_size=8).context[0])
    assert not torch.equal(first.context[0], a(batch_size=8).context[0])  # the next step differs
    a.set_epoch(0)
    assert torch.equal(first.targets[1], a(batch_size=8).targets[1])
    a.set_epoch(1)
    assert not torch.equal(first.targets[1], a(batch_size=8).targets[1])
    assert not torch.equal(first.targets[1], make(rank=1)(batch_size=8).targets[1])
    assert not torch.equal(first.targets[1], make(seed=4)(batch_size=8).targets[1])
    assert torch.equal(make()(batch_size=8, step=5).context[0], make()(batch_size=8, step=5).context[0])
    state = torch.random.get_rng_state()
    make()(batch_size=8)
    assert torch.equal(state, torch.random.get_rng_state()), "the global RNG must not be used"


def test_masks_to_indices_random_subset_has_no_prefix_bias():
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :4] = True
    mask[1, 2:9] = True
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(10)
    for _ in range(2000):
        idx, valid = masks_to_indices(mask, "random_subset", gen)
        assert idx.shape == (2, 4) and valid.all()
        assert mask.gather(1, idx).all()
        assert (idx[:, 1:] > idx[:, :-1]).all()
        counts.index_add_(0, idx[1], torch.ones(4))
    share = counts[2:9] / 2000
    assert torch.allclose(share, torch.full((7,), 4 / 7), atol=0.05), share  # bottom-right kept as often


def test_masks_to_indices_pad():
    mask = torch.tensor([[True, False, True, True], [False, True, False, False]])
    idx, valid = masks_to_indices(mask, "pad")
    assert idx.tolist() == [[0, 2, 3], [1, 0, 0]]
    assert valid.tolist() == [[True, True, True], [True, False, False]]
    with pytest.raises(ValueError, match="mode must be"):
        masks_to_indices(mask, "prefix")


def test_consumes_a_loader_batch():
    b = 3
    batch = MultiCropBatch(crops=[torch.zeros(b, 3, s, s) for s in (64, 64, 32)],
                           boxes=torch.zeros(b, 3, 4), flipped=torch.zeros(b, 3, dtype=torch.bool),
                           labels=torch.zeros(b, dtype=torch.long), indices=torch.arange(b))
    gen = MultiCropMaskGenerator("2x64,1x32", patch_size=16, num_levels=2, num_targets=2,
                                 levels=(MaskLevel((0.1, 0.2)), MaskLevel((0.2, 0.3))))
    masks = gen(batch)
    assert masks.context[0].shape == (2, 3, 16) and masks.context[2].shape == (2, 3, 4)
    with pytest.raises(ValueError, match="do not match"):
        MultiCropMaskGenerator("2x224,6x96")(batch)


@pytest.mark.parametrize("kw, words", [
    (dict(strategy="everything"), "strategy must be one of"),
    (dict(patch_size=15), "crop size 224 is not a multiple of patch_size 15"),
    (dict(levels=(MaskLevel((0.9, 1.0), target_aspect=(0.5, 2.0)),)), "does not fit the 14x14 grid"),
    (dict(min_keep=150), "min_keep=150 is met by only"),
    (dict(min_keep=500), "min_keep=500 exceeds the 196 patches"),
    (dict(num_targets=0), "num_targets must be an integer >= 1, got 0"),
    (dict(num_levels=0), "num_levels must be an integer >= 1, got 0"),
])
def test_bad_arguments(kw, words):
    with pytest.raises(ValueError, match=words):
        MultiCropMaskGenerator("2x224,6x96", **kw)


@pytest.mark.parametrize("strategy", ["global_only", "cross_crop_prediction"])
def test_a_call_reads_nothing_back_to_the_host(strategy, monkeypatch):
    """What a call does on CUDA, checked on the CPU: no value is read back to the host (no wait for the GPU)."""
    from dali_multicrop.masking import _sync

    monkeypatch.setattr(_sync, "reads_back_freely", lambda device: False)  # behave as on CUDA
    gen = MultiCropMaskGenerator("2x224,6x96", strategy=strategy, levels=(IJEPA_LEVEL,), num_targets=4,
                                 min_keep=10)
    batch = MultiCropBatch(crops=[torch.zeros(4, 3, s, s) for s in (224,) * 2 + (96,) * 6],
                           boxes=torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(4, 8, 1),
                           flipped=torch.zeros(4, 8, dtype=torch.bool), labels=torch.zeros(4, dtype=torch.long),
                           indices=torch.arange(4))
    gen(batch)  # warm-up: per-device constants
    from dali_multicrop.benchmark.dispatch import DispatchCounter

    with DispatchCounter() as probe:
        masks = gen(batch)
        idx, valid = masks_to_indices(masks.context[0][0], num=10)
    assert probe.read_backs == 0, f"{probe.read_backs} host read-backs in one call"
    assert probe.ops > 0 and idx.shape == (4, 10) and bool(valid.all())
    assert gen.short_masks == 0


def test_masks_to_indices_with_a_fixed_length():
    mask = torch.tensor([[True, False, True, True], [False, True, False, False]])
    idx, valid = masks_to_indices(mask, "pad", num=3)
    assert idx.tolist() == [[0, 2, 3], [1, 0, 0]] and valid.tolist() == [[True] * 3, [True, False, False]]
    idx, valid = masks_to_indices(mask, "random_subset", torch.Generator().manual_seed(0), num=2)
    assert valid.tolist() == [[True, True], [True, False]] and idx[1].tolist() == [1, 0]
    assert set(idx[0].tolist()) <= {0, 2, 3} and idx[0, 0] < idx[0, 1]
    with pytest.raises(ValueError, match="num must be an integer in \\[0, 4\\]"):
        masks_to_indices(mask, num=5)


def test_rounds_follow_how_often_min_keep_is_met():
    easy = MultiCropMaskGenerator("1x224", levels=(IJEPA_LEVEL,), num_targets=4, min_keep=10)
    hard = MultiCropMaskGenerator("1x224", levels=(IJEPA_LEVEL,), num_targets=4, min_keep=80)  # met ~60%
    assert 1 <= easy.rounds <= 4 < hard.rounds <= 32
    masks = hard(batch_size=2000)
    assert (masks.context[0].sum(-1) >= 80).all() and hard.short_masks == 0


def test_generator_state_resumes_the_same_masks():
    gen = MultiCropMaskGenerator("2x224,6x96", num_levels=2, seed=3)
    gen.set_epoch(5)
    gen(batch_size=4)
    state = gen.state_dict()
    want = gen(batch_size=4)
    fresh = MultiCropMaskGenerator("2x224,6x96", num_levels=2, seed=3)
    fresh.load_state_dict(state)
    got = fresh(batch_size=4)
    assert state == {"epoch": 5, "step": 1, "seed": 3}
    assert all(torch.equal(a, b) for a, b in zip(want.context + want.targets, got.context + got.targets))
    with pytest.raises(ValueError, match="seed=3, this generator has seed=4"):
        MultiCropMaskGenerator("2x224,6x96", seed=4).load_state_dict(state)


def test_masks_indices_are_keyed_like_the_masks():
    """masks.indices draws from the batch's own stream: the same (seed, epoch, step) picks the same patches,
    whatever torch's global generator holds; another step picks others."""
    from dali_multicrop import MultiCropMaskGenerator

    def picks(step, global_seed):
        torch.manual_seed(global_seed)
        gen = MultiCropMaskGenerator("2x64,2x32", patch_size=16, num_levels=1, seed=5)
        masks = gen(batch_size=8, step=step)
        return masks.indices(masks.context[0][0], num=3)[0]

    assert torch.equal(picks(0, 1), picks(0, 2))
    assert not torch.equal(picks(0, 1), picks(1, 1))


def test_sizes_that_would_exhaust_memory_are_refused():
    from dali_multicrop import MultiCropMaskGenerator

    with pytest.raises(ValueError, match="num_levels=1000 is more than the 8 levels"):
        MultiCropMaskGenerator("2x224", num_levels=1000)
    with pytest.raises(ValueError, match="3 levels of 1000 targets is more than"):
        MultiCropMaskGenerator("2x224", num_targets=1000)
    with pytest.raises(ValueError, match="patch_size 1 cuts a 224 px crop into a 224x224 grid; at most 64x64"):
        MultiCropMaskGenerator("2x224", patch_size=1)


def test_printing_a_generator_shows_its_settings():
    from dali_multicrop import PatchMaskGenerator

    patches = repr(PatchMaskGenerator.from_preset("dinov2"))
    assert patches.startswith("PatchMaskGenerator(crops='1x224,1x224,8x98', patch_size=14, "
                              "mask_ratio_min_max=(0.1, 0.5)")
    jepa = repr(MultiCropMaskGenerator(crops="2x224,6x96", num_levels=1, seed=3))
    assert jepa.startswith("MultiCropMaskGenerator(crops='2x224,6x96', patch_size=16, strategy='global_only', "
                           "num_targets=4, levels=(MaskLevel(target_scale=(0.05, 0.15)")
    assert jepa.endswith("min_keep=4, seed=3, rank=0)")
