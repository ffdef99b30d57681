"""Curricula reach the graph: each epoch's batches carry that epoch's crops, and the masks follow."""

from __future__ import annotations

import pytest
import torch

from conftest import coordinate_image, write_folder
from dali_multicrop import Curriculum, DaliMultiCropLoader, MultiCropMaskGenerator, MultiCropSpec, Ramp
from dali_multicrop.recipes.config import load_config

CURRICULUM = Curriculum(local_crops=Ramp(2, 6, epochs=4), global_scale_min=Ramp(0.6, 0.3, epochs=4))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("cur"), {"a": [coordinate_image(192, 256)] * 8})


def test_ramps_and_specs_by_epoch():
    assert [Ramp(2, 6, epochs=4).at(e) for e in (0, 1, 2, 4, 9)] == [2, 3, 4, 6, 6]
    assert Ramp(0.6, 0.4, epochs=10, first_epoch=5).at(10) == pytest.approx(0.5)
    spec = MultiCropSpec.parse("2x224,6x96")
    assert [str(CURRICULUM.spec_at(spec, e)) for e in (0, 1, 4)] == ["2x224,2x96", "2x224,3x96", "2x224,6x96"]
    assert CURRICULUM.spec_at(spec, 2).groups[0].scale == pytest.approx((0.45, 1.0))


def test_epochs_carry_their_crops_and_masks_follow(folder):
    loader = DaliMultiCropLoader(folder, crops="2x64,6x32", batch_size=8, device="cpu", num_threads=2, seed=1,
                                 curriculum=CURRICULUM)
    gen = MultiCropMaskGenerator("2x64,6x32", patch_size=8, curriculum=CURRICULUM)
    for epoch, locals_, low in ((0, 2, 0.6), (2, 4, 0.45), (4, 6, 0.3), (0, 2, 0.6)):
        loader.set_epoch(epoch)
        gen.set_epoch(epoch)
        batch = next(iter(loader))
        assert batch.num_crops == 2 + locals_ and batch.boxes.shape == (8, 2 + locals_, 4)
        area = (batch.boxes[:, :2, 2] - batch.boxes[:, :2, 0]) * (batch.boxes[:, :2, 3] - batch.boxes[:, :2, 1])
        assert area.min() >= low - 0.02  # whole-pixel windows on a 192x256 image
        masks = gen(batch)
        assert len(masks.context) == batch.num_crops
    loader.set_epoch(3)
    gen.set_epoch(2)
    with pytest.raises(ValueError, match="call set_epoch with the loader's epoch"):
        gen(next(iter(loader)))


def test_a_curriculum_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="asks for 8 local crops in epoch 4.*at most 6"):
        Curriculum(local_crops=Ramp(2, 8, epochs=4)).check(MultiCropSpec.parse("2x224,6x96"))
    with pytest.raises(ValueError, match="exactly one local group"):
        Curriculum(local_crops=Ramp(2, 6, epochs=4)).check(MultiCropSpec.parse("2x224,3x96,3x64"))
    with pytest.raises(ValueError, match="scale must have min <= max"):
        Curriculum(global_scale_min=Ramp(0.6, 1.0, epochs=4)).check(MultiCropSpec.parse("2x224,6x96").with_global(
            scale=(0.4, 0.9)))


def test_config_curriculum_section(folder):
    cfg = {"data": {"multicrop": {"num_local_crops": 6, "global_crop_size": 64, "local_crop_size": 32}},
           "curriculum": {"local_crops": {"start": 2, "end": 6, "epochs": 30},
                          "global_scale_min": {"start": 0.6, "end": 0.4, "epochs": 30}},
           "masking": {"patch_size": 8}}
    loaded = load_config(cfg)
    assert loaded.curriculum.local_crops == Ramp(2, 6, 30)
    loader = DaliMultiCropLoader.from_config(cfg, source=folder, device="cpu", batch_size=4, num_threads=2)
    assert next(iter(loader)).num_crops == 4 and loader.curriculum == loaded.curriculum
    assert MultiCropMaskGenerator.from_config(cfg).spec.num_crops == 4
    for bad, words in (({"local_crop": {}}, "curriculum.local_crop: unknown key"),
                       ({"local_crops": {"start": 2}}, "curriculum.local_crops: expected a mapping of start, end"),
                       ({"local_crops": {"start": 2, "end": 9, "epochs": 3}}, "asks for 9 local crops")):
        with pytest.raises(ValueError, match=words):
            load_config({**cfg, "curriculum": bad})


def test_the_loader_says_the_current_epochs_crops():
    from dali_multicrop import DaliMultiCropLoader
    from dali_multicrop.sample_data import ensure_tiny_data

    loader = DaliMultiCropLoader.from_config("multicrop_training", source=str(ensure_tiny_data(40)), device="cpu",
                                             batch_size=8)
    assert str(loader.spec) == "2x224,6x96" and str(loader.current_spec) == "2x224,2x96"  # epoch 0: 2 local crops
    loader.set_epoch(15)
    assert str(loader.current_spec) == "2x224,4x96"
    loader.set_epoch(30)
    assert str(loader.current_spec) == "2x224,6x96"
