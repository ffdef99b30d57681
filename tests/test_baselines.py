"""The peers the benchmark compares against, built from the same CropGroup objects as the graph: torchvision (PIL)
and albumentations (OpenCV). Their recipes must be the graph's, or the comparison says nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import coordinate_image, write_folder
from dali_multicrop import FileList
from dali_multicrop.presets import load_preset
from dali_multicrop.spec import IMAGENET_MEAN, IMAGENET_STD, MultiCropSpec

albumentations = pytest.importorskip("albumentations")


def _steps(pipeline) -> dict[str, object]:
    return {type(t).__name__: t for t in pipeline.transforms}


def test_albumentations_recipe_is_each_groups_recipe():
    from dali_multicrop.benchmark.albumentations_baseline import AlbumentationsMultiCrop

    spec = load_preset("dino")
    transform = AlbumentationsMultiCrop(spec, IMAGENET_MEAN, IMAGENET_STD)
    assert len(transform.pipelines) == spec.num_crops
    for pipeline, group in zip(transform.pipelines, spec.crops()):
        steps = _steps(pipeline)
        crop = steps["RandomResizedCrop"]
        assert tuple(crop.size) == (group.size, group.size) and tuple(crop.scale) == tuple(group.scale)
        assert np.allclose(crop.ratio, group.ratio) and crop.area_for_downscale == "image"  # INTER_AREA downscaling
        assert steps["HorizontalFlip"].p == group.flip_prob
        jitter = steps["ColorJitter"]
        assert jitter.p == group.color_jitter.probability
        assert np.allclose(jitter.brightness, (1 - group.color_jitter.brightness, 1 + group.color_jitter.brightness))
        assert np.allclose(jitter.hue, (-group.color_jitter.hue, group.color_jitter.hue))
        assert ("ToGray" in steps) == (group.grayscale_prob > 0)
        if group.blur_prob > 0:
            assert steps["GaussianBlur"].p == group.blur_prob
            assert np.allclose(steps["GaussianBlur"].sigma_limit, group.blur_sigma)
        else:
            assert "GaussianBlur" not in steps
        assert ("Solarize" in steps) == (group.solarize_prob > 0)


def test_albumentations_loader_gives_normalised_crops_of_the_specs_sizes(tmp_path):
    from dali_multicrop.benchmark.albumentations_baseline import albumentations_loader

    image = coordinate_image(60, 80)
    files = FileList.from_folder(write_folder(tmp_path, {"a": [image] * 3, "b": [image] * 3}, fmt="jpg"))
    spec = MultiCropSpec.parse("2x48,3x24")
    loader = albumentations_loader(files, spec, batch_size=3, workers=2, num_batches=2, mean=IMAGENET_MEAN,
                                   std=IMAGENET_STD, dtype=torch.float32, seed=1)
    batches = list(loader)
    assert len(batches) == 2
    crops, labels, indices = batches[0]
    assert [tuple(c.shape) for c in crops] == [(3, 3, 48, 48)] * 2 + [(3, 3, 24, 24)] * 3
    assert all(c.dtype == torch.float32 for c in crops) and labels.dtype == torch.int64
    # normalised: pixel values 0-255 map into [(0 - mean) / std, (1 - mean) / std] per channel
    low = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).view(1, 3, 1, 1)
    high = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).view(1, 3, 1, 1)
    for c in crops:
        assert (c >= low - 1e-4).all() and (c <= high + 1e-4).all() and c.std() > 0.1


def test_the_bench_runs_albumentations_beside_the_graph(tmp_path):
    import subprocess
    import sys

    env = {**__import__("os").environ, "DALI_MULTICROP_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "dali_multicrop", "bench", "--crops", "1x64,2x32", "--sample-images", "64",
           "--batch-size", "8", "--batches", "2", "--warmup", "1", "--threads", "2", "--backend", "dali-cpu",
           "--backend", "albumentations", "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    results = json.loads(next((tmp_path / "out").iterdir()).joinpath("results.json").read_text())["results"]
    assert [(r["backend"], r["status"]) for r in results] == [("dali-cpu", "ok"), ("albumentations", "ok")]
    assert all(r["images_per_s"] > 0 for r in results)
