"""Hugging Face datasets as sources (issue #32): a ``datasets.Dataset`` passed directly (its Arrow table read, never
its PIL-decoding ``__getitem__``), and the Parquet files ``Dataset.to_parquet`` writes; both made offline here."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import coordinate_image, ranks_epoch
from dali_multicrop import DaliMultiCropLoader

datasets = pytest.importorskip("datasets")

from dali_multicrop.sources import ArrowDatasetTable, ParquetTable  # noqa: E402

CROPS = "2x32,2x16"
N = 50
NAMES = ["cat", "dog", "owl"]


def jpeg(k: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(coordinate_image(24 + k % 7, 32 + k % 3)).save(out, "JPEG", quality=95)
    return out.getvalue()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A dataset of N JPEGs (an Image column) and ClassLabel labels ``i % 3``, saved to disk and loaded back
    (memory-mapped Arrow, in record batches of 16 rows), and its Parquet file."""
    folder = tmp_path_factory.mktemp("hf")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=NAMES)})
    dataset = datasets.Dataset.from_dict({"image": [{"bytes": jpeg(i), "path": None} for i in range(N)],
                                          "label": [i % 3 for i in range(N)]}, features=features)
    dataset.save_to_disk(str(folder / "disk"), max_shard_size="20KB")
    dataset.to_parquet(str(folder / "train.parquet"), batch_size=16)
    return datasets.load_from_disk(str(folder / "disk")), str(folder / "train.parquet")


def test_a_dataset_passed_directly_is_read_from_its_arrow_table_over_ranks(saved, monkeypatch):
    dataset, _ = saved

    def decoded(self, key):
        raise AssertionError("the dataset's own __getitem__ (PIL decoding) was called")

    monkeypatch.setattr(type(dataset), "__getitem__", decoded)
    monkeypatch.setattr(type(dataset), "__getitems__", decoded, raising=False)
    loaders = [DaliMultiCropLoader(dataset, crops=CROPS, batch_size=6, device="cpu", seed=5, shard_id=r,
                                   num_shards=2) for r in range(2)]
    table = loaders[0].source.dataset
    assert isinstance(table, ArrowDatasetTable) and table.classes == tuple(NAMES)
    assert len(table.row_group_sizes) > 1  # several record batches: the windows have something to shuffle
    for epoch in (0, 1):
        assert sorted(ranks_epoch(loaders, epoch, lambda i: i % 3)) == list(range(N))
    image, label = table[17]
    assert bytes(image) == jpeg(17) and label == 17 % 3
    for loader in loaders:
        loader.close()


def test_the_files_to_parquet_writes_are_read_with_their_class_names(saved):
    _, path = saved
    table = ParquetTable(path)
    assert table.classes == tuple(NAMES) and table.labels.tolist() == [i % 3 for i in range(N)]
    assert bytes(table[33][0]) == jpeg(33)
    loader = DaliMultiCropLoader(f"parquet:{path}", crops=CROPS, batch_size=8, device="cpu")
    assert sorted(int(i) for b in loader for i in b.indices) == list(range(N))
    loader.close()


def test_what_cannot_be_read_as_it_is_says_what_to_pass(saved):
    dataset, _ = saved
    with pytest.raises(ValueError, match=r"a DatasetDict holds several splits \(train, test\): pass one, e\.g\. "
                                         r"dataset\['train'\]"):
        DaliMultiCropLoader(datasets.DatasetDict({"train": dataset, "test": dataset}), crops=CROPS, batch_size=4,
                            device="cpu")
    with pytest.raises(ValueError, match=r"flatten_indices\(\)"):
        ArrowDatasetTable(dataset.shuffle(seed=0))
    with pytest.raises(ValueError, match=r"has no column 'img' \(its columns: image, label\)"):
        ArrowDatasetTable(dataset, image="img")


def test_string_labels_and_no_labels(tmp_path):
    strings = datasets.Dataset.from_dict({"image": [{"bytes": jpeg(i), "path": None} for i in range(9)],
                                          "species": ["owl", "cat", "dog"] * 3},
                                         features=datasets.Features({"image": datasets.Image(),
                                                                     "species": datasets.Value("string")}))
    table = ArrowDatasetTable(strings, label="species")
    assert table.classes == ("cat", "dog", "owl") and table.labels.tolist() == [2, 0, 1] * 3
    assert ArrowDatasetTable(strings, label=None).labels.tolist() == [0] * 9
    assert np.array_equal(np.frombuffer(table[4][0], np.uint8), np.frombuffer(jpeg(4), np.uint8))
