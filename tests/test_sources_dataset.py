"""Any map-style torch Dataset as a source: PIL images, uint8 arrays or encoded bytes, fetched ahead by worker
threads (never the training thread); the same crops as the folder of the same images."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dali_multicrop import DaliMultiCropLoader, DatasetSource, FileList

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
    datasets = pytest.importorskip("torchvision.datasets")
    folder = datasets.ImageFolder(str(coord_folder))
    loader = DaliMultiCropLoader(folder, crops=CROPS, batch_size=4, device="cpu")
    assert loader.source.classes == ("cat", "dog", "emu")
    seen = [i for b in loader for i in b.indices.tolist()]
    assert sorted(seen) == list(range(12))


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
