"""The evaluation loader: torchvision's Resize + CenterCrop through the same graph, every sample once per rank."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import coordinate_image
from dali_multicrop import DaliMultiCropLoader, MultiCropSpec
from dali_multicrop.sample_data import sample_image
from dali_multicrop.recipes.spec import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def eval_folder(tmp_path_factory):
    """5 photo-like JPEGs (ImageNet sizes) and 4 coordinate PNGs, in two classes: 9 images."""
    root = tmp_path_factory.mktemp("eval")
    (root / "jpeg").mkdir()
    (root / "png").mkdir()
    for i in range(5):
        (root / "jpeg" / f"{i}.jpg").write_bytes(sample_image(i))
    for i, hw in enumerate([(300, 400), (400, 300), (256, 256), (333, 500)]):
        Image.fromarray(coordinate_image(*hw)).save(root / "png" / f"{i}.png")
    return root


def to_pixels(crop: torch.Tensor) -> np.ndarray:
    mean, std = np.array(IMAGENET_MEAN) * 255, np.array(IMAGENET_STD) * 255
    return crop.permute(1, 2, 0).double().numpy() * std + mean


@pytest.mark.parametrize("size, resize", [(224, 256), (160, 192)])
def test_matches_torchvision_resize_and_centre_crop(eval_folder, size, resize):
    from torchvision.transforms import v2

    loader = DaliMultiCropLoader.for_evaluation(eval_folder, size=size, resize=resize, batch_size=9, device="cpu",
                                                num_threads=2)
    reference = v2.Compose([v2.Resize(resize), v2.CenterCrop(size)])  # PIL, antialiased bilinear
    batch = next(iter(loader))
    assert batch.crops[0].shape == (9, 3, size, size) and not batch.flipped.any()
    for k, i in enumerate(batch.indices.tolist()):
        with Image.open(loader.source.files[i]) as img:
            want = np.asarray(reference(img.convert("RGB")), dtype=np.float64)
        diff = np.abs(to_pixels(batch.crops[0][k]) - want)
        # the same source region and sampling points: rounding of the filters' weights only
        assert diff.max() <= 1.01 and diff.mean() < 0.3, (loader.source.files[i], diff.max(), diff.mean())


@pytest.mark.parametrize("num_shards", [1, 2, 3])
def test_every_sample_once_across_shards_without_padding(eval_folder, num_shards):
    seen, steps = [], set()
    for shard in range(num_shards):
        loader = DaliMultiCropLoader.for_evaluation(eval_folder, batch_size=2, device="cpu", num_threads=2,
                                                    shard_id=shard, num_shards=num_shards)
        batches = list(loader)
        steps.add(len(batches))
        indices = torch.cat([b.indices for b in batches]).tolist()
        assert indices == list(range(shard, 9, num_shards))  # the source's order, this rank's share
        labels = torch.cat([b.labels for b in batches]).tolist()
        assert labels == [0 if i < 5 else 1 for i in indices]
        seen += indices
    assert sorted(seen) == list(range(9)) and len(steps) == 1  # once each; the same step count on every rank


def test_evaluation_is_deterministic_and_refuses_drop_last(eval_folder):
    loader = DaliMultiCropLoader.for_evaluation(eval_folder, batch_size=4, device="cpu", num_threads=2)
    first = torch.cat([b.crops[0] for b in loader])
    second = torch.cat([b.crops[0] for b in loader])
    assert torch.equal(first, second)
    with pytest.raises(ValueError, match="drop_last=True would leave samples out"):
        DaliMultiCropLoader.for_evaluation(eval_folder, drop_last=True)
    with pytest.raises(ValueError, match="size=300 is larger than resize=256"):
        MultiCropSpec.evaluation(300, 256)
