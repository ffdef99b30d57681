"""Decoded images in memory and CIFAR as sources: no decode step, the same crops as from files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from conftest import coordinate_image, write_folder
from dali_multicrop import ArraySource, ColorJitter, DaliMultiCropLoader, MultiCropSpec

SPEC = MultiCropSpec.parse("2x48,2x24").with_global(color_jitter=ColorJitter(0.0)).with_local(
    color_jitter=ColorJitter(0.0))


def images(n: int = 6) -> np.ndarray:
    out = np.stack([coordinate_image(64, 80) for _ in range(n)])
    out[..., 2] = (np.arange(n) * 30)[:, None, None]  # blue tells the images apart
    return out


def all_batches(loader) -> list:
    return [(b.indices.clone(), b.labels.clone(), torch.cat([c.flatten() for c in b.crops]), b.boxes.clone())
            for _ in range(2) for b in loader]


def test_arrays_give_the_crops_the_same_pngs_give(tmp_path):
    pixels = images()
    labels = np.array([0, 0, 1, 1, 2, 2])
    folder = write_folder(tmp_path, {c: [pixels[i] for i in range(6) if labels[i] == k]
                                     for k, c in enumerate("abc")})
    kw = dict(crops=SPEC, batch_size=4, device="cpu", num_threads=2, seed=7)
    from_files = all_batches(DaliMultiCropLoader(folder, **kw))
    for source in (ArraySource(pixels, labels), ArraySource(torch.from_numpy(pixels), torch.from_numpy(labels))):
        from_memory = all_batches(DaliMultiCropLoader(source, **kw))
        assert len(from_memory) == len(from_files) == 4
        for x, y in zip(from_files, from_memory):
            for t, u in zip(x, y):
                assert torch.equal(t, u)


def _write_cifar(root, kind: str, per_file: int = 3) -> np.ndarray:
    """A small CIFAR folder in the python layout; returns its training images, HWC."""
    rng = np.random.default_rng(0)
    if kind == "cifar10":
        folder = root / "cifar-10-batches-py"
        files, key, meta = [f"data_batch_{i}" for i in range(1, 6)], b"labels", ("batches.meta", b"label_names")
    else:
        folder = root / "cifar-100-python"
        files, key, meta = ["train"], b"fine_labels", ("meta", b"fine_label_names")
    folder.mkdir()
    train = []
    for name in files + ["test_batch" if kind == "cifar10" else "test"]:
        data = rng.integers(0, 256, (per_file, 3 * 32 * 32), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, key: list(range(per_file))}, f)
        if name in files:
            train.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    with open(folder / meta[0], "wb") as f:
        pickle.dump({meta[1]: [f"class{k}".encode() for k in range(per_file)]}, f)
    return np.concatenate(train)


@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_in_its_pickle_layout(tmp_path, kind):
    want = _write_cifar(tmp_path, kind)
    source = ArraySource.cifar(tmp_path)
    assert np.array_equal(source.images, want) and source.classes == ("class0", "class1", "class2")
    assert len(ArraySource.cifar(tmp_path, train=False)) == 3
    loader = DaliMultiCropLoader(f"{kind}:{tmp_path}", crops="2x32,4x16", batch_size=5, device="cpu",
                                 num_threads=2)
    seen = torch.cat([b.indices for b in loader])
    assert sorted(seen.tolist()) == list(range(len(want)))


@pytest.mark.parametrize("make, words", [
    (lambda: ArraySource(np.zeros((2, 8, 8, 3), np.float32), [0, 1]), r"uint8 \[N, H, W, 3\].*float32"),
    (lambda: ArraySource(np.zeros((2, 3, 8, 8), np.uint8), [0, 1]), r"channels last.*\[2, 3, 8, 8\]"),
    (lambda: ArraySource(np.zeros((2, 8, 8, 3), np.uint8), [0]), r"labels must be 2 integers"),
    (lambda: ArraySource(np.zeros((2, 8, 8, 3), np.uint8), [0, -1]), r"labels must be 2 integers >= 0"),
    (lambda: ArraySource(np.zeros((0, 8, 8, 3), np.uint8), []), "at least one non-empty image"),
])
def test_bad_arrays_say_what_is_wrong(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_bad_cifar_folders_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="holds no CIFAR data"):
        ArraySource.cifar(tmp_path)
    _write_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04truncated")
    with pytest.raises(ValueError, match="data_batch_3' cannot be read"):
        ArraySource.cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="data_batch_3' is missing"):
        ArraySource.cifar(tmp_path)


def test_a_list_of_arrays_of_any_sizes_gives_the_folders_crops(coord_folder):
    from PIL import Image

    from dali_multicrop import FileList

    files = FileList.from_folder(coord_folder)
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files.files]
    assert len({a.shape for a in arrays}) == 3  # landscape, portrait and square
    kw = dict(crops=SPEC, batch_size=5, device="cpu", num_threads=2, seed=3)
    for x, y in zip(all_batches(DaliMultiCropLoader(coord_folder, **kw)),
                    all_batches(DaliMultiCropLoader(ArraySource(arrays, list(files.labels)), **kw))):
        for t, u in zip(x, y):
            assert torch.equal(t, u)
    with pytest.raises(ValueError, match=r"image 1 must be uint8 \[H, W, 3\] .*got float32 \[4, 4, 3\]"):
        ArraySource([arrays[0], np.zeros((4, 4, 3), np.float32)], [0, 1])
