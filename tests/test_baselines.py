"""The peers the benchmark compares against, built from the same CropGroup objects as the graph: torchvision (PIL)
and albumentations (OpenCV). Their recipes must be the graph's, or the comparison says nothing."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import coordinate_image, write_folder
from dali_multicrop.recipes.presets import load_preset
from dali_multicrop.recipes.spec import IMAGENET_MEAN, IMAGENET_STD

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
    """Its DataLoader forks its workers (as the peers' loaders do on Linux), so it runs in a process of its own, as
    the bench runs it: forking this test process, with DALI's and the validators' threads of earlier tests alive in
    it, can crash a worker (seen once in CI: a segmentation fault in a forked worker)."""
    import json
    import subprocess
    import sys

    image = coordinate_image(60, 80)
    folder = write_folder(tmp_path, {"a": [image] * 3, "b": [image] * 3}, fmt="jpg")
    script = f"""
import json, torch
from dali_multicrop import FileList, MultiCropSpec
from dali_multicrop.benchmark.albumentations_baseline import albumentations_loader
from dali_multicrop.recipes.spec import IMAGENET_MEAN, IMAGENET_STD
files = FileList.from_folder({str(folder)!r})
loader = albumentations_loader(files, MultiCropSpec.parse("2x48,3x24"), batch_size=3, workers=2, num_batches=2,
                               mean=IMAGENET_MEAN, std=IMAGENET_STD, dtype=torch.float32, seed=1)
batches = list(loader)
crops, labels, indices = batches[0]
low = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).view(1, 3, 1, 1)
high = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).view(1, 3, 1, 1)
print(json.dumps({{"batches": len(batches), "shapes": [list(c.shape) for c in crops],
                  "dtypes": sorted({{str(c.dtype) for c in crops}}), "labels": str(labels.dtype),
                  "in_range": all(bool((c >= low - 1e-4).all() and (c <= high + 1e-4).all()) for c in crops),
                  "spread": min(float(c.std()) for c in crops)}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["batches"] == 2
    assert found["shapes"] == [[3, 3, 48, 48]] * 2 + [[3, 3, 24, 24]] * 3
    assert found["dtypes"] == ["torch.float32"] and found["labels"] == "torch.int64"
    # normalised: pixel values 0-255 map into [(0 - mean) / std, (1 - mean) / std] per channel
    assert found["in_range"] and found["spread"] > 0.1


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
