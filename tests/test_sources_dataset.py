"""Any map-style torch Dataset as a source: PIL images, uint8 arrays or encoded bytes, fetched ahead by worker
threads (never the training thread); the same crops as the folder of the same images."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import coordinate_image
from dali_multicrop import DaliMultiCropLoader, DatasetSource, FileList, ImageDecodeError

CROPS = "1x32,2x16"


class Items(torch.utils.data.Dataset):
    """The coordinate folder's images as ``kind`` ("pil", "array", "tensor", "bytes"), noting which thread
    fetched each item."""

    def __init__(self, files: FileList, kind: str) -> None:
        self.files, self.kind, self.threads = files, kind, set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        self.threads.add(threading.get_ident())
        path, label = self.files.files[i], self.files.labels[i]
        if self.kind == "bytes":
            return Path(path).read_bytes(), torch.tensor(label)
        image = Image.open(path)
        image.load()
        if self.kind == "pil":
            return image, label
        array = np.asarray(image.convert("RGB"))
        return (torch.from_numpy(array.copy()) if self.kind == "tensor" else array), np.int64(label)


@pytest.mark.parametrize("kind", ["pil", "array", "tensor", "bytes"])
def test_dataset_items_give_the_folders_crops_off_the_training_thread(coord_folder, kind):
    files = FileList.from_folder(coord_folder)
    dataset = Items(files, kind)
    common = dict(crops=CROPS, batch_size=5, device="cpu", seed=6)
    loader = DaliMultiCropLoader(dataset, **common)
    assert isinstance(loader.source, DatasetSource)
    assert loader.source.kind == ("encoded" if kind == "bytes" else "images")
    dataset.threads.clear()  # the first item was read in the constructor to learn the kind
    for a, b in zip(loader, DaliMultiCropLoader(str(coord_folder), **common)):
        assert a.indices.tolist() == b.indices.tolist() and a.labels.tolist() == b.labels.tolist()
        assert all(torch.equal(x, y) for x, y in zip(a.crops, b.crops))
    assert dataset.threads and threading.get_ident() not in dataset.threads


def test_torchvision_dataset_is_a_drop_in_source(coord_folder):
    """A plain ImageFolder is read as the files it lists (DALI reads and decodes them): the folder's crops, in the
    dataset's numbering; one with a transform or a loader of its own stays a dataset whose items are fetched."""
    datasets = pytest.importorskip("torchvision.datasets")
    folder = datasets.ImageFolder(str(coord_folder))
    common = dict(crops=CROPS, batch_size=4, device="cpu", seed=2)
    loader = DaliMultiCropLoader(folder, **common)
    assert isinstance(loader.source, FileList) and loader.source.classes == ("cat", "dog", "emu")
    assert list(zip(loader.source.files, loader.source.labels)) == folder.samples
    for a, b in zip(loader, DaliMultiCropLoader(str(coord_folder), **common)):
        assert a.indices.tolist() == b.indices.tolist() and a.labels.tolist() == b.labels.tolist()
        assert all(torch.equal(x, y) for x, y in zip(a.crops, b.crops))
    own = datasets.ImageFolder(str(coord_folder), loader=lambda path: datasets.folder.pil_loader(path))
    for dataset in (datasets.ImageFolder(str(coord_folder), transform=lambda image: image), own):
        loader = DaliMultiCropLoader(dataset, **common)
        assert isinstance(loader.source, DatasetSource) and loader.source.classes == ("cat", "dog", "emu")
        assert sorted(i for b in loader for i in b.indices.tolist()) == list(range(12))


class Bad(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        if isinstance(self.items[i], Exception):
            raise self.items[i]
        return self.items[i]


def test_bad_items_are_clear_errors():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="the dataset is empty"):
        DatasetSource(Bad([]))
    with pytest.raises(ValueError, match="not an \\(image, label\\) pair"):
        DatasetSource(Bad([img]))
    with pytest.raises(ValueError, match="label must be an integer >= 0, got -1"):
        DatasetSource(Bad([(img, -1)]))
    with pytest.raises(ValueError, match="image must be uint8 HWC RGB .*without ToTensor.*float32 \\[3, 8, 8\\]"):
        list(DaliMultiCropLoader(Bad([(img, 0), (np.zeros((3, 8, 8), np.float32), 1)]), crops=CROPS,
                                 batch_size=2, device="cpu", shuffle=False))
    with pytest.raises(ValueError, match="item 1 holds encoded but item 0 held images"):
        list(DaliMultiCropLoader(Bad([(img, 0), (b"\xff\xd8", 1)]), crops=CROPS, batch_size=2, device="cpu",
                                 shuffle=False))
    with pytest.raises(KeyError, match="broken item"):  # the dataset's own error reaches the training loop
        list(DaliMultiCropLoader(Bad([(img, 0), KeyError("broken item")]), crops=CROPS, batch_size=2,
                                 device="cpu", shuffle=False))


def test_a_hanging_item_is_an_error_naming_it_not_a_hang():
    import time

    class Slow(Bad):
        def __getitem__(self, i):
            if i == 1:
                time.sleep(5)
            return super().__getitem__(i)

    img = np.zeros((8, 8, 3), np.uint8)
    source = DatasetSource(Slow([(img, 0), (img, 1)]), timeout_s=0.5)
    with pytest.raises(TimeoutError, match=r"dataset item 1 took more than 0.5 s \(Slow.__getitem__ hangs\?\)"):
        list(DaliMultiCropLoader(source, crops=CROPS, batch_size=2, device="cpu", shuffle=False))
    source.close()


class Flaky(torch.utils.data.Dataset):
    """Good items, except where ``bad`` says what an item does instead (raise an error, or return a non-image);
    counts the fetches of each item."""

    def __init__(self, good: list, bad: dict) -> None:
        self.good, self.bad = good, bad
        self.fetches = [0] * len(good)

    def __len__(self) -> int:
        return len(self.good)

    def __getitem__(self, i):
        self.fetches[i] += 1
        what = self.bad.get(i)
        if isinstance(what, Exception):
            raise what
        return (what if what is not None else self.good[i]), i % 3


def _skip_two_epochs(dataset: Flaky) -> tuple[DaliMultiCropLoader, list[list], list[str]]:
    import warnings

    from dali_multicrop.badsamples.policy import BadImageWarning

    loader = DaliMultiCropLoader(dataset, crops=CROPS, batch_size=4, device="cpu", seed=2, on_error="skip")
    epochs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            batches = list(loader)
            assert [len(b.indices) for b in batches] == [4, 4, 4]  # batches keep their size
            epochs.append([i for b in batches for i in b.indices.tolist()])
            for b in batches:  # a replaced slot carries the label of the item whose image it holds
                assert all(lab == (i % 3) for i, lab in zip(b.indices.tolist(), b.labels.tolist()) if i >= 0)
    return loader, epochs, [str(w.message) for w in caught if issubclass(w.category, BadImageWarning)]


def test_skip_replaces_dataset_items_that_raise_or_are_not_images():
    good = [coordinate_image(24 + k, 32) for k in range(12)]
    bad = {3: OSError("disk hiccup"), 5: (np.zeros((8, 8, 3), np.float32)), 8: "not an image"}
    dataset = Flaky(good, bad)
    loader, epochs, warned = _skip_two_epochs(dataset)
    for seen in epochs:  # every good item once per epoch, each bad one's slot -1
        assert sorted(seen) == [-1] * 3 + [i for i in range(12) if i not in bad]
    assert sorted(loader.skipped) == ["Flaky[3]", "Flaky[5]", "Flaky[8]"]
    assert "disk hiccup" in loader.skipped["Flaky[3]"] and "uint8 HWC RGB" in loader.skipped["Flaky[5]"]
    assert "PIL image, a uint8 HWC array or encoded bytes, got str" in loader.skipped["Flaky[8]"]
    assert len(warned) == 3  # once each, over both epochs
    assert [dataset.fetches[i] for i in sorted(bad)] == [1, 1, 1]  # a known-bad item is not fetched again
    loader.close()


def test_skip_replaces_encoded_items_that_do_not_decode():
    import io

    from bad_images import BAD

    def jpeg(k: int) -> bytes:
        out = io.BytesIO()
        Image.fromarray(coordinate_image(24 + k, 32)).save(out, "JPEG", quality=95)
        return out.getvalue()

    good = [jpeg(k) for k in range(12)]
    bad = {2: b"<!DOCTYPE html><html>404</html>", 4: good[4][:len(good[4]) // 2], 6: BAD["corrupt.jpg"][0](),
           9: KeyError("missing shard")}
    dataset = Flaky(good, bad)
    loader, epochs, warned = _skip_two_epochs(dataset)
    for seen in epochs:
        assert sorted(seen) == [-1] * 4 + [i for i in range(12) if i not in bad]
    assert sorted(loader.skipped) == ["Flaky[2]", "Flaky[4]", "Flaky[6]", "Flaky[9]"]
    assert "holds HTML" in loader.skipped["Flaky[2]"] and "truncated JPEG" in loader.skipped["Flaky[4]"]
    assert "DALI cannot decode (corrupt?)" in loader.skipped["Flaky[6]"]  # found after DALI failed, by the scan
    assert len(warned) == 4
    assert dataset.fetches[6] == 2  # fetched, then read again by the scan; never in the second epoch
    loader.close()
    with pytest.raises(ImageDecodeError, match=r"cannot decode image 'Flaky\[6\]': is a JPEG file DALI cannot"):
        list(DaliMultiCropLoader(Flaky(good, {6: bad[6]}), crops=CROPS, batch_size=4, device="cpu"))
