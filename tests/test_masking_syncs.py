"""The masking module's per-batch calls make the host wait for the GPU nowhere, checked on the CPU.

Each call runs the path it takes on CUDA (``masking._sync.reads_back_freely`` patched to False) under the
:class:`DispatchCounter`, which counts every value read back to the host (``.item()``, ``bool()``, ``.tolist()``,
``.cpu()``, ``nonzero``, bool-mask indexing, ...) and every upload of host data, and with ``torch.device("meta")``
as the default device, so that a tensor made on the host without naming the batch's device (a copy per call on
CUDA) lands on the meta device and fails the call. A warm-up call first: a batch size's first call makes its
per-device constants once."""

from __future__ import annotations

import pytest
import torch

from dali_multicrop import IJEPA_LEVEL, MultiCropMaskGenerator, PatchMaskGenerator
from dali_multicrop.loader.batch import MultiCropBatch
from dali_multicrop.benchmark.dispatch import DispatchCounter
from dali_multicrop.masking import _sync

CROPS = "2x224,6x96"


@pytest.fixture
def as_on_cuda(monkeypatch):
    monkeypatch.setattr(_sync, "reads_back_freely", lambda device: False)


def batch_of(size: int = 4) -> MultiCropBatch:
    rng = torch.Generator().manual_seed(0)
    lo = torch.rand(size, 8, 2, generator=rng) * 0.4
    boxes = torch.cat([lo, lo + 0.4 + torch.rand(size, 8, 2, generator=rng) * 0.2], dim=-1)
    return MultiCropBatch(crops=[torch.zeros(size, 3, s, s) for s in (224,) * 2 + (96,) * 6], boxes=boxes,
                          flipped=torch.rand(size, 8, generator=rng) < 0.5, labels=torch.zeros(size, dtype=torch.long),
                          indices=torch.arange(size))


def counted(call):
    with torch.device("meta"), DispatchCounter() as probe:
        out = call()
    return out, probe


def test_the_counter_sees_every_kind_of_wait():
    x = torch.arange(6.0)
    mask = x > 2
    waits = [lambda: x.tolist(), lambda: x.numpy(), lambda: x.cpu(), lambda: x.to("cpu"), lambda: x[0].item(),
             lambda: int(x[1]), lambda: bool(mask[0]), lambda: mask.nonzero(), lambda: x[mask], lambda: x.unique(),
             lambda: torch.tensor([1.0]), lambda: torch.as_tensor([2.0]), lambda: torch.zeros(2).to("meta")]
    for call in waits:
        with DispatchCounter() as probe:
            call()
        assert probe.host_waits == 1, (probe.calls, call)
    with DispatchCounter() as probe:
        (x + 1).sum(), x.to(torch.float64), torch.as_tensor(x), x[1:3], torch.where(mask, x, -x)
    assert probe.host_waits == 0 and probe.ops >= 5, probe.calls


@pytest.mark.parametrize("strategy", ["global_only", "global_with_local_context", "cross_crop_prediction"])
def test_a_mask_call_and_its_fixed_length_indices_wait_for_nothing(as_on_cuda, strategy):
    gen = MultiCropMaskGenerator(CROPS, strategy=strategy, levels=(IJEPA_LEVEL,), num_targets=4, min_keep=10)
    batch = batch_of()
    gen(batch)  # warm-up: the per-device constants

    def step():
        masks = gen(batch)
        out = []
        for i in gen.masked:
            out.append(masks.indices(masks.context[i][0], "pad", num=gen.max_patches(i)))
            out.append(masks.indices(masks.targets[i][0][:, 0], "random_subset", num=gen.max_patches(i, "target")))
        for (i, j), context in masks.cross_context.items():
            out.append(masks.indices(context[0], "pad", num=gen.max_patches(j)))
            out.append(masks.indices(masks.cross_targets[(i, j)][0][:, 0], "pad", num=gen.max_patches(i, "target")))
        return masks, out

    (masks, out), probe = counted(step)
    assert probe.host_waits == 0, probe.calls
    assert probe.ops > 0 and gen.short_masks == 0
    idx, valid = out[0]
    assert idx.shape == (4, 196) and bool((valid.sum(-1) == masks.context[0][0].sum(-1)).all())


def test_the_patch_masks_wait_for_nothing(as_on_cuda):
    gen = PatchMaskGenerator(CROPS, 16)
    batch = batch_of(8)
    gen(batch)
    (masks, probe) = counted(lambda: gen(batch).ibot())
    assert probe.host_waits == 0 and probe.ops > 0, probe.calls
    assert len(masks) == 2 and masks[0].shape == (8, 196) and gen.cut_masks == 0


def test_the_calls_that_read_back_say_so():
    """What docs/masking.md lists as reading back: indices without ``num`` (the rows' counts) and DINOv2's collated
    indices (their count depends on the masks); both are what the methods' own CPU collators do."""
    gen = MultiCropMaskGenerator(CROPS, levels=(IJEPA_LEVEL,), min_keep=10)
    masks = gen(batch_size=4)
    _, probe = counted(lambda: masks.indices(masks.context[0][0]))
    assert probe.read_backs == 1
    patches = PatchMaskGenerator(CROPS, 16)(batch_size=4)
    _, probe = counted(lambda: patches.dinov2())
    assert probe.read_backs >= 1 and "nonzero" in probe.calls


def test_max_patches_bounds_every_mask():
    gen = MultiCropMaskGenerator(CROPS, strategy="cross_crop_prediction")
    masks = gen(batch_of(64))
    for i in range(8):
        assert int(masks.context[i].sum(-1).max()) <= gen.max_patches(i)
        assert int(masks.targets[i].sum(-1).max()) <= gen.max_patches(i, "target")
        for level in range(gen.num_levels):
            assert int(masks.targets[i][level].sum(-1).max()) <= gen.max_patches(i, "target", level)
    assert gen.max_patches(0) == 196 and gen.max_patches(2) == 36 and gen.max_patches(2, "target") == 0
    assert gen.max_patches(0, "target", 0) < gen.max_patches(0, "target", 2) <= 196
    for bad, words in (({"crop": 8}, "crop must be a crop index in \\[0, 7\\]"), ({"kind": "ctx"}, "kind must be"),
                       ({"level": 3}, "level must be a level index in \\[0, 2\\]")):
        with pytest.raises(ValueError, match=words):
            gen.max_patches(**{"crop": 0, **bad})
