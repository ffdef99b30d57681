"""Bad input is a clear error naming the bad thing, raised before DALI runs where it can be."""

from __future__ import annotations

import pytest

from conftest import coordinate_image, write_folder
from dali_multicrop import DaliMultiCropLoader, FileList, ImageDecodeError, ImageReadError, MultiCropSpec


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "data", {"a": [coordinate_image(40, 50)] * 3, "b": [coordinate_image(50, 40)] * 3})


@pytest.mark.parametrize("spec, words", [
    ("2x", "missing a size"),
    ("x96", "missing a count"),
    ("0x224", "count 0"),
    ("2x0", "size 0"),
    ("2x224,", "empty group at position 2"),
    ("", "is empty"),
    ("2x224,6y96", "not COUNTxSIZE"),
    ("2xabc", "not a whole number"),
    ("-1x96", "not a whole number"),
])
def test_malformed_crop_spec(folder, spec, words):
    with pytest.raises(ValueError, match=words) as info:
        DaliMultiCropLoader(folder, crops=spec, device="cpu")
    message = str(info.value)
    assert f"'{spec}'" in message and "COUNTxSIZE" in message


@pytest.mark.parametrize("change, words", [
    (dict(scale=(0.0, 0.5)), r"scale must lie in \(0, 1\]"),
    (dict(scale=(0.5, 1.2)), r"scale must lie in \(0, 1\]"),
    (dict(scale=(0.8, 0.4)), "min <= max"),
    (dict(scale=0.5), "pair"),
    (dict(flip_prob=-0.1), "flip_prob must be a probability"),
    (dict(blur_prob=1.5), "blur_prob must be a probability"),
    (dict(ratio=(0, 2)), "ratio must lie in"),
])
def test_bad_group_settings(change, words):
    with pytest.raises(ValueError, match=words) as info:
        MultiCropSpec.parse("2x224,6x96").with_global(**change)
    assert repr(next(iter(change.values()))) in str(info.value)


def test_bad_colour_jitter():
    from dali_multicrop import ColorJitter

    with pytest.raises(ValueError, match=r"probability must be a probability in \[0, 1\], got -0.5"):
        ColorJitter(probability=-0.5)
    with pytest.raises(ValueError, match="hue must be in"):
        ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match="brightness must be a strength >= 0, got -1"):
        ColorJitter(brightness=-1)


@pytest.mark.parametrize("kw, words", [
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (dict(device="tpu"), r"device must be one of gpu, cpu, auto \(or torch's 'cuda', 'cuda:N'\), got 'tpu'"),
    (dict(device="cuda:x"), r"device 'cuda:x' is not a CUDA device name \(expected 'cuda' or 'cuda:N'\)"),
    (dict(mean=(123.7, 116.3, 103.5)), r"mean must be in \[0, 1\] units .* divide by 255: \(0.485, 0.456, 0.406\)"),
    (dict(std=(58.4, 57.1, 57.4)), r"std must be in \[0, 1\] units .*divide by 255: \(0.229, 0.224, 0.225\)"),
    (dict(dtype="int8"), "dtype must be one of"),
    (dict(shard_id=3, num_shards=3), r"shard_id must be in \[0, num_shards=3\), got 3"),
    (dict(num_shards=0), "num_shards must be an integer >= 1, got 0"),
    (dict(std=(0.2, 0.0, 0.2)), "std must be three positive numbers"),
    (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(batch_size=5, num_shards=2, shard_id=0, drop_last=True), "leaves no full batch"),
])
def test_bad_loader_arguments(folder, kw, words):
    with pytest.raises(ValueError, match=words):
        DaliMultiCropLoader(folder, crops="1x16", **{"device": "cpu", **kw})


def test_gpu_without_cuda_is_a_clear_error(folder):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for name in ("gpu", "cuda", "cuda:0", torch.device("cuda", 1)):  # torch's spellings mean the GPU too
        with pytest.raises(ValueError, match=f"device='{name}' but torch sees no CUDA GPU"):  # as the user wrote it
            DaliMultiCropLoader(folder, device=name)


def test_torch_device_names_pick_the_gpu(folder, monkeypatch):
    """"cuda:N" is device "gpu" with device_id N (checked with torch told it has 2 GPUs; nothing is built)."""
    import torch

    from dali_multicrop.loader.loader import _resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _resolve_device("cuda") == ("gpu", None) and _resolve_device("cuda:1") == ("gpu", 1)
    assert _resolve_device(torch.device("cuda:0")) == ("gpu", 0) and _resolve_device("cpu") == ("cpu", None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match="device='cuda:1' and device_id=0 name different GPUs"):
        DaliMultiCropLoader(folder, device="cuda:1", device_id=0)


def test_numpy_integers_work_wherever_python_integers_do(folder, tmp_path):
    import numpy as np

    from dali_multicrop import CropGroup, FileList

    loader = DaliMultiCropLoader(folder, crops="1x16", device="cpu", batch_size=np.int64(2), seed=np.uint32(3),
                                 num_threads=np.int32(1), prefetch=np.int16(1))
    assert loader.batch_size == 2 and type(loader.batch_size) is int and loader.seed == 3
    files = FileList.from_folder(folder)
    pairs = FileList.from_pairs([(f, np.int64(label)) for f, label in zip(files.files, files.labels)])
    assert pairs.labels == files.labels and all(type(v) is int for v in pairs.labels)
    group = CropGroup(count=np.int64(2), size=np.int32(32), scale=(0.5, 1.0), flip_prob=np.float32(0.5))
    assert (group.count, group.size) == (2, 32)
    from dali_multicrop import masks_to_indices

    import torch

    idx, _ = masks_to_indices(torch.ones(2, 9, dtype=torch.bool), num=np.int64(4))
    assert idx.shape == (2, 4)


def test_the_whole_seed_counts(folder):
    """seed=2**32 is not seed=0 (seeds were cut to 32 bits)."""
    def boxes(seed):
        return next(iter(DaliMultiCropLoader(folder, crops="1x16,2x8", device="cpu", batch_size=4, seed=seed))).boxes

    assert not torch_equal(boxes(0), boxes(2**32)) and torch_equal(boxes(2**32), boxes(2**32))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_crop_count_is_bounded_with_a_clear_error():
    with pytest.raises(ValueError, match=r"1000 crops per image is more than the 256 one graph is built for .*"
                                         r"a typo such as '600x96' for '6x96'"):
        MultiCropSpec.parse("1000x32")


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(ValueError, match=f"image folder '{tmp_path / 'nope'}' does not exist"):
        DaliMultiCropLoader(tmp_path / "nope", device="cpu")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "cls" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="holds no images"):
        DaliMultiCropLoader(tmp_path / "empty", device="cpu")
    with pytest.raises(ValueError, match="does not exist"):
        DaliMultiCropLoader([(tmp_path / "missing.jpg", 0)], device="cpu")
    with pytest.raises(ValueError, match="list of files is empty"):
        DaliMultiCropLoader([], device="cpu")
    with pytest.raises(ValueError, match="2 files but 1 labels"):
        FileList(("a.jpg", "b.jpg"), (0,))


def test_flat_folder_is_one_class(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(coordinate_image(30, 30)).save(tmp_path / f"{i}.png")
    listing = FileList.from_folder(tmp_path)
    assert listing.labels == (0, 0, 0) and len(listing.files) == 3


def test_undecodable_image_is_named(folder):
    bad = folder / "b" / "001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not image data" * 20)
    loader = DaliMultiCropLoader(folder, crops="1x16", batch_size=2, device="cpu", shuffle=False, num_threads=1)
    with pytest.raises(ImageDecodeError, match="cannot decode image '.*001.png'") as info:
        for _ in loader:
            pass
    assert info.value.path == str(bad)
    assert "nvImageCodec" in info.value.reason or "decode" in info.value.reason.lower()
    assert "Critical error" not in str(info.value)


def test_undecodable_image_then_loader_recovers_for_good_data(tmp_path):
    good = write_folder(tmp_path / "good", {"a": [coordinate_image(40, 50)] * 4})
    files = sorted(str(p) for p in (good / "a").iterdir())
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    loader = DaliMultiCropLoader(FileList.from_pairs([(f, 0) for f in files] + [(tmp_path / "junk.jpg", 1)]),
                                 crops="1x16", batch_size=2, device="cpu", shuffle=False, num_threads=1)
    with pytest.raises(ImageDecodeError, match="junk.jpg"):
        list(loader)
    with pytest.raises(ImageDecodeError, match="junk.jpg"):  # the next epoch rebuilds and meets it again
        list(loader)
    good_only = DaliMultiCropLoader(FileList.from_pairs([(f, 0) for f in files]), crops="1x16", batch_size=2,
                                    device="cpu", num_threads=1)
    assert sorted(sum((b.indices.tolist() for b in good_only), [])) == [0, 1, 2, 3]


def test_empty_file_is_named(folder):
    (folder / "a" / "000.png").write_bytes(b"")
    loader = DaliMultiCropLoader(folder, crops="1x16", batch_size=2, device="cpu", num_threads=1)
    with pytest.raises(ImageReadError, match="000.png' is empty"):
        list(loader)


def test_file_removed_after_listing_is_named(folder):
    loader = DaliMultiCropLoader(folder, crops="1x16", batch_size=2, device="cpu", num_threads=1)
    (folder / "b" / "002.png").unlink()
    with pytest.raises(ImageReadError, match=r"cannot read image '.*002.png': it does not exist \(removed after"):
        list(loader)


def test_empty_class_folder_is_refused(folder):
    (folder / "a_empty").mkdir()
    with pytest.raises(ValueError, match="class folder\\(s\\) 'a_empty' in image folder .* hold no images"):
        DaliMultiCropLoader(folder, device="cpu")
