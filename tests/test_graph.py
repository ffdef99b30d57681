"""The graph's shape: how many operators run per batch, where, and what grows with the number of crops."""

from __future__ import annotations

import pytest

from dali_multicrop import MultiCropSpec
from dali_multicrop.benchmark.overhead import operator_counts, tiny_spec
from dali_multicrop.presets import load_preset


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_gpu_and_cpu_graphs_are_defined_here(device):
    """Defining the GPU graph needs no GPU: every operator accepts its inputs' device (caught here, not on a
    lent machine)."""
    counts = operator_counts(load_preset("dino"), device)
    assert sum(counts.values()) > 0
    if device == "cpu":
        assert counts["mixed"] == counts["gpu"] == 0
    else:
        assert counts["mixed"] == 1  # the decoder


def test_host_operators_of_the_gpu_graph_do_not_grow_with_crops():
    few = operator_counts(MultiCropSpec.parse("2x224,2x96"), "gpu")
    many = operator_counts(MultiCropSpec.parse("2x224,10x96"), "gpu")
    assert few["cpu"] == many["cpu"] <= 12
    # per crop, only pixel work on the GPU: resize, colour, normalise
    assert many["gpu"] - few["gpu"] == 8 * 3


def test_cpu_graph_grows_by_its_pixel_operators_only():
    few = operator_counts(MultiCropSpec.parse("2x224,2x96"), "cpu")["cpu"]
    many = operator_counts(MultiCropSpec.parse("2x224,10x96"), "cpu")["cpu"]
    assert many - few == 8 * 3


def test_blur_and_solarise_add_operators_only_for_crops_that_use_them():
    dino = load_preset("dino")  # every crop may be blurred; one global crop may be solarised
    plain = MultiCropSpec(tuple(g.replace(blur_prob=0.0, solarize_prob=0.0) for g in dino.groups),
                          dino.num_global_groups)
    extra = operator_counts(dino, "gpu")["gpu"] - operator_counts(plain, "gpu")["gpu"]
    assert extra == dino.num_crops + 2  # a blur per crop; an add and a lookup table for the one crop


def test_tiny_spec_keeps_the_recipe():
    dino = load_preset("dino")
    small = tiny_spec(dino)
    assert str(small) == "1x32,1x32,8x16" and small.num_global_groups == dino.num_global_groups
    for big, little in zip(dino.groups, small.groups):
        assert big.replace(size=little.size) == little


def test_defining_a_graph_catches_a_misplaced_argument():
    """The check above has teeth: a GPU tensor given where DALI wants a CPU argument fails at definition."""
    import numpy as np
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=2, num_threads=1, device_id=0, exec_dynamic=True)
    def misplaced():
        image = fn.external_source(source=lambda: [np.zeros((4, 4, 3), np.uint8)] * 2, batch=True, layout="HWC")
        roi = fn.external_source(source=lambda: [np.zeros(2, np.float32)] * 2, batch=True)
        return fn.resize(image.gpu(), roi_start=roi.gpu(), roi_end=roi, size=[2, 2])

    with pytest.raises(ValueError, match="must be on CPU"):
        misplaced()._build_graph()
