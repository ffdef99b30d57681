"""Crop specs parse into frozen, validated groups with the documented defaults."""

from __future__ import annotations

import dataclasses

import pytest

from dali_multicrop import ColorJitter, CropGroup, MultiCropSpec, parse_crops
from dali_multicrop.recipes.spec import DEFAULT_RATIO, GLOBAL_SCALE, LOCAL_SCALE


def test_parse_default_recipe():
    spec = MultiCropSpec.parse("2x224,6x96")
    assert [(g.count, g.size) for g in spec.groups] == [(2, 224), (6, 96)]
    assert spec.global_group.scale == GLOBAL_SCALE == (0.4, 1.0)
    assert spec.local_groups[0].scale == LOCAL_SCALE == (0.05, 0.4)
    assert all(g.ratio == DEFAULT_RATIO == (0.75, 4 / 3) for g in spec.groups)
    assert all(g.flip_prob == 0.5 for g in spec.groups)
    assert spec.num_crops == 8 and spec.num_global == 2
    assert spec.sizes == (224, 224, 96, 96, 96, 96, 96, 96)
    assert str(spec) == "2x224,6x96"
    jitter = spec.global_group.color_jitter
    assert 0 < jitter.brightness <= 0.4 and 0 < jitter.hue <= 0.1 and jitter.active


def test_parse_tolerates_spaces_and_capital_x_and_several_local_groups():
    spec = parse_crops(" 2X224 , 4x96,2x128 ")
    assert [(g.count, g.size, g.scale) for g in spec.groups] == [
        (2, 224, GLOBAL_SCALE), (4, 96, LOCAL_SCALE), (2, 128, LOCAL_SCALE)]


def test_overrides_are_validated_copies():
    spec = MultiCropSpec.parse("2x224,6x96")
    changed = spec.with_global(scale=(0.32, 1.0), solarize_prob=0.2).with_local(
        color_jitter=ColorJitter(probability=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1))
    assert changed.global_group.scale == (0.32, 1.0) and changed.global_group.solarize_prob == 0.2
    assert changed.local_groups[0].color_jitter.brightness == 0.4
    assert spec.global_group.scale == GLOBAL_SCALE  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.global_group.size = 10  # type: ignore[misc]


def test_ranges_become_float_pairs():
    group = CropGroup(count=1, size=8, scale=[1, 1], ratio=[1, 2])
    assert group.scale == (1.0, 1.0) and group.ratio == (1.0, 2.0)


def test_parse_crops_accepts_groups_and_rejects_other_things():
    groups = [CropGroup(count=1, size=64, scale=(0.5, 1.0))]
    assert parse_crops(groups).groups == tuple(groups)
    with pytest.raises(ValueError, match="crops must be a spec string"):
        parse_crops(224)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one CropGroup"):
        MultiCropSpec(())
