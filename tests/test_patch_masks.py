"""iBOT / DINOv2 block-wise patch masks: DINOv2's law (against a reference loop written from its description, run
here on the same settings), its batch layout, keys and resume, and the errors for settings that cannot be met."""

from __future__ import annotations

import pytest
import torch

from dali_multicrop import MultiCropBatch, PatchMaskGenerator
from dali_multicrop.recipes.config import load_config

from conftest import has_cuda
from dinov2_reference import ReferenceMaskingGenerator, reference_masks


def _law(masks: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    counts = masks.sum(-1).float()
    masked = targets > 0
    return {"masked share": float(masked.float().mean()), "mean count": float(counts[masked].mean()),
            "std count": float(counts[masked].std()), "mean target": float(targets[masked].float().mean()),
            "short share": float((counts[masked] < targets[masked]).float().mean()),
            "mean shortfall": float((targets[masked] - counts[masked]).mean())}


def _rounds_on_the_cpu(gen: PatchMaskGenerator, batch_size: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The CUDA way (the vectorised rounds, their fixed count) run on the CPU: masks ``[M, N]`` and targets."""
    cpu = torch.device("cpu")
    generator = gen.generator(cpu, step, 0xB0)
    targets, _ = gen._targets(gen.spec.num_global * batch_size, generator, cpu)
    masks, growing, _ = gen._grow(targets, generator, until_done=False)
    assert not bool(growing.any())  # the probed round count was enough
    return masks, targets


@pytest.mark.parametrize("way", ["compiled", "rounds"])
@pytest.mark.parametrize("patch", [16, 14])
def test_the_law_is_dinov2s(patch, way):
    """Over 8192 global crops, both ways against DINOv2's loop, for each of the generator's two implementations
    (the CPU's compiled kernel, and the vectorised rounds CUDA runs, here on the CPU): the share of masked samples,
    the masked counts' mean and spread, the targets' mean, the share that falls short and by how much, agree
    within sampling error."""
    gen = PatchMaskGenerator("2x224,6x96", patch, seed=3)
    grid = 224 // patch
    if way == "compiled":
        ours = [gen(batch_size=512) for _ in range(8)]
        masks = torch.cat([m.masks.flatten(0, 1) for m in ours])
        targets = torch.cat([m.targets.flatten() for m in ours])
    else:
        masks, targets = (torch.cat(parts) for parts in zip(*[_rounds_on_the_cpu(gen, 512, s) for s in range(8)]))
    ref_masks, ref_targets = zip(*[reference_masks(1024, grid, seed=s)[:2] for s in range(8)])
    got, want = _law(masks, targets), _law(torch.cat(ref_masks), torch.cat(ref_targets))
    assert got["masked share"] == want["masked share"] == 0.5  # int(M * p) exactly, as DINOv2's collate
    n = grid * grid
    for key in ("mean count", "mean target", "std count"):
        assert got[key] == pytest.approx(want[key], abs=0.02 * n), (key, got, want)
    assert got["short share"] == pytest.approx(want["short share"], abs=0.03), (got, want)
    assert got["mean shortfall"] == pytest.approx(want["mean shortfall"], abs=0.3), (got, want)
    assert bool((masks.sum(-1) <= targets).all())  # no mask above its target


def test_targets_are_stratified_and_shuffled_with_dinov2s_upperbound():
    gen = PatchMaskGenerator("2x224", 16)
    m = gen(batch_size=128)  # 256 masks, 128 of them masked
    n = 196
    edges = torch.linspace(0.1, 0.5, 129)
    strata = sorted(int(t) for t in m.targets.flatten() if t > 0)
    lows, highs = (n * edges[:-1]).long(), (n * edges[1:]).long()
    assert len(strata) == 128 and all(lo <= t <= hi for t, lo, hi in zip(strata, lows, highs))
    assert m.upperbound == int(highs.sum())
    flat = m.targets.flatten() > 0
    assert 0 < int(flat[:128].sum()) < 128  # the masked slots are spread over both crops, not the first half
    _, _, ref_upper = reference_masks(256, 14)
    assert PatchMaskGenerator("2x224", 16)(batch_size=128).upperbound == reference_masks(256, 14)[2] == ref_upper


def test_blocks_are_rectangles_within_dinov2s_bounds():
    """One block per mask (a target a block can meet at once): each mask is one rectangle narrower and lower than
    the grid, of at least min_num_patches and aspect within the range (up to rounding)."""
    gen = PatchMaskGenerator("1x224", 16, mask_ratio_min_max=(0.04, 0.06), mask_sample_probability=1.0)
    m = gen(batch_size=400).masks[0].view(-1, 14, 14)
    for mask in m:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        if rows.numel() == 0:
            continue
        h, w = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
        if int(mask.sum()) == h * w:  # a single block
            assert h < 14 and w < 14 and h * w >= 3  # area >= 4 rounds down to 3 at worst (e.g. 1x3)
            assert 0.3 / 2 <= h / w <= 2 / 0.3


def test_keyed_resumable_and_rank_dependent():
    a, b = PatchMaskGenerator("2x224", 16, seed=1), PatchMaskGenerator("2x224", 16, seed=1)
    first = [a(batch_size=8).masks for _ in range(3)]
    b.load_state_dict({"epoch": 0, "step": 2, "seed": 1})
    assert torch.equal(b(batch_size=8).masks, first[2])
    state = a.state_dict()
    assert state == {"epoch": 0, "step": 3, "seed": 1}
    a.set_epoch(1)
    assert not torch.equal(a(batch_size=8).masks, first[0])
    other_rank = PatchMaskGenerator("2x224", 16, seed=1, rank=1)
    assert not torch.equal(other_rank(batch_size=8).masks, first[0])
    with pytest.raises(ValueError, match="seed=2"):
        PatchMaskGenerator("2x224", 16, seed=1).load_state_dict({"epoch": 0, "step": 0, "seed": 2})


def test_dinov2_and_ibot_layouts():
    B = 4
    crops = [torch.randn(B, 3, 224, 224), torch.randn(B, 3, 224, 224)] + [torch.randn(B, 3, 96, 96)] * 6
    batch = MultiCropBatch(crops=crops, boxes=torch.zeros(B, 8, 4), flipped=torch.zeros(B, 8, dtype=torch.bool),
                           labels=torch.zeros(B, dtype=torch.long), indices=torch.arange(B))
    masks = PatchMaskGenerator("2x224,6x96", 16, mask_sample_probability=1.0)(batch)
    out = masks.dinov2(batch, dtype=torch.float16)
    assert out["collated_global_crops"].shape == (2 * B, 3, 224, 224)
    assert out["collated_global_crops"].dtype == torch.float16
    assert torch.equal(out["collated_global_crops"][B + 1].float(), crops[1][1].half().float())  # crop-major
    assert out["collated_local_crops"].shape == (6 * B, 3, 96, 96)
    collated = out["collated_masks"]
    assert collated.shape == (2 * B, 196) and collated.dtype == torch.bool
    assert torch.equal(collated[B:], masks.masks[1])
    assert torch.equal(out["mask_indices_list"], collated.flatten().nonzero().flatten())
    assert out["n_masked_patches"].tolist() == [int(collated.sum())]
    weights = out["masks_weight"]
    assert weights.shape == out["mask_indices_list"].shape
    assert float(weights.sum()) == pytest.approx(float((collated.sum(-1) > 0).sum()))  # 1/count per patch
    assert [t.shape for t in masks.ibot()] == [(B, 196), (B, 196)]


@pytest.mark.parametrize("kwargs,match", [
    ({"mask_ratio_min_max": (0.6, 0.5)}, "mask_ratio_min_max"),
    ({"mask_ratio_min_max": (0.1, 1.2)}, "mask_ratio_min_max"),
    ({"min_num_patches": 170}, "largest block"),
    ({"min_num_patches": 50, "max_num_patches": 20}, "no block could be accepted"),
    ({"max_num_patches": 500}, "more than the grid"),
    ({"min_aspect": 2.0, "max_aspect": 1.0}, "min_aspect"),
    ({"mask_sample_probability": 1.5}, "mask_sample_probability"),
    ({"patch_size": 15}, "not a multiple"),
    ({"mask_ratio_min_max": (0.0, 0.004)}, "less than one"),
])
def test_settings_that_cannot_be_met_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PatchMaskGenerator("2x224,6x96", **{"patch_size": 16, **kwargs})


def test_global_crops_of_two_sizes_are_refused():
    from dali_multicrop import MultiCropSpec

    two = MultiCropSpec(MultiCropSpec.parse("1x224,1x192,6x96").groups, 2)  # two global groups
    with pytest.raises(ValueError, match="one size"):
        PatchMaskGenerator(two, 16)


def test_from_config_reads_the_patch_masking_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {preset: dinov2}\npatch_masking: {patch_size: 14, mask_ratio_min_max: [0.2, 0.4], "
                    "mask_sample_probability: 1.0}\n")
    gen = PatchMaskGenerator.from_config(str(path))
    assert gen.grid == 16 and gen.mask_ratio_min_max == (0.2, 0.4) and gen.mask_sample_probability == 1.0
    with pytest.raises(ValueError, match="patch_masking.mask_ratio"):
        load_config({"patch_masking": {"mask_ratio": [0.1, 0.2]}})


def test_the_recipes_carry_their_methods_settings(tmp_path):
    """dinov2 and ibot keep their masks beside their crops: from_preset and a config naming the preset take them,
    explicit settings win, recipes without any (dino) and crop specs add nothing."""
    dinov2 = PatchMaskGenerator.from_preset("dinov2")
    assert (dinov2.patch_size, dinov2.grid, dinov2.min_num_patches, dinov2.max_num_patches) == (14, 16, 4, 128)
    assert dinov2.mask_ratio_min_max == (0.1, 0.5) and dinov2.mask_sample_probability == 0.5
    ibot = PatchMaskGenerator.from_preset("ibot", mask_sample_probability=1.0)
    assert (ibot.patch_size, ibot.grid, ibot.min_num_patches, ibot.max_num_patches) == (16, 14, 16, 196)
    assert ibot.mask_sample_probability == 1.0  # the override
    assert load_config({"data": {"preset": "dinov2"}}).patch_masking["patch_size"] == 14
    assert load_config({"data": {"preset": "dinov2"}, "patch_masking": {"min_num_patches": 8}}).patch_masking == {
        "patch_size": 14, "mask_ratio_min_max": (0.1, 0.5), "mask_sample_probability": 0.5, "min_num_patches": 8.0,
        "min_aspect": 0.3}
    assert load_config({"data": {"preset": "dino"}}).patch_masking == {}
    assert load_config({"data": {"preset": "2x224,6x96"}}).patch_masking == {}
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("groups: [{count: 2, size: 224, scale: [0.3, 1.0]}]\npatch_masking: {patch: 16}\n")
    with pytest.raises(ValueError, match=r"recipe '.*mine.yaml': patch_masking.patch: unknown key; did you mean "
                                         r"'patch_size'"):
        PatchMaskGenerator.from_preset(str(recipe))


def test_reference_counts_its_blocks():
    """The reference's own check: a mask it grows to a target one block can meet takes one block."""
    gen = ReferenceMaskingGenerator(14, 98)
    assert gen(0).sum() == 0 and gen.blocks_last_call == 0
    gen(30)
    assert gen.blocks_last_call >= 1


@pytest.mark.gpu
@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")
def test_the_same_law_on_cuda():
    gen = PatchMaskGenerator("2x224,6x96", 16, seed=3)
    cuda = torch.cat([gen(batch_size=512, device="cuda").masks.flatten(0, 1).cpu() for _ in range(4)])
    gen.set_epoch(0)
    cpu = torch.cat([gen(batch_size=512).masks.flatten(0, 1) for _ in range(4)])
    assert gen.cut_masks == 0
    assert float(cuda.sum(-1).float().mean()) == pytest.approx(float(cpu.sum(-1).float().mean()), rel=0.05)


def test_the_cuda_rounds_read_nothing_back():
    """What a CUDA call grows its masks with, checked on the CPU: the fixed rounds read no value back to the host
    (no wait for the GPU); the targets' upperbound is host arithmetic on a host tensor."""
    from dali_multicrop.benchmark.dispatch import DispatchCounter

    gen = PatchMaskGenerator("2x224", 16)
    cpu = torch.device("cpu")
    generator = gen.generator(cpu, 0, 0xB0)
    targets, _ = gen._targets(512, generator, cpu)
    with DispatchCounter() as probe:
        masks, growing, rounds = gen._grow(targets, generator, until_done=False)
    assert probe.read_backs == 0 and probe.ops > 0 and rounds == gen.rounds
    assert masks.shape == (512, 196) and not bool(growing.any())
