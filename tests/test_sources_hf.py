"""Hugging Face datasets as sources (issue #32): a ``datasets.Dataset`` passed directly (its Arrow table read, never
its PIL-decoding ``__getitem__``), and the Parquet files ``Dataset.to_parquet`` writes; both made offline here."""

from __future__ import annotations

import io
from pathlib import Path

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
    with pytest.raises(ValueError, match=r"a streaming datasets\.IterableDataset .* load it without streaming=True, "
                                         r"or pass its Parquet files \('parquet:PATTERN'"):
        DaliMultiCropLoader(dataset.to_iterable_dataset(), crops=CROPS, batch_size=4, device="cpu")


def test_string_labels_and_no_labels(tmp_path):
    strings = datasets.Dataset.from_dict({"image": [{"bytes": jpeg(i), "path": None} for i in range(9)],
                                          "species": ["owl", "cat", "dog"] * 3},
                                         features=datasets.Features({"image": datasets.Image(),
                                                                     "species": datasets.Value("string")}))
    table = ArrowDatasetTable(strings, label="species")
    assert table.classes == ("cat", "dog", "owl") and table.labels.tolist() == [2, 0, 1] * 3
    assert ArrowDatasetTable(strings, label=None).labels.tolist() == [0] * 9
    assert np.array_equal(np.frombuffer(table[4][0], np.uint8), np.frombuffer(jpeg(4), np.uint8))


def test_an_imagefolder_dataset_of_local_files_is_read_from_its_files(tmp_path, monkeypatch):
    """load_dataset("imagefolder", ...) keeps only the paths of local images (bytes null): the loader reads those
    files as a file list (DALI reads them); a table of such rows reads each row's file, and a missing file is named
    with its row and path."""
    from dali_multicrop.sources import FileList, resolve_source

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for i in range(12):
        folder = tmp_path / "photos" / "train" / NAMES[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:02d}.jpg").write_bytes(jpeg(i))
    dataset = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "photos"), split="train")
    assert dataset.data.table.column("image").chunk(0).field("bytes").null_count == 12  # what datasets keeps
    source = resolve_source(dataset)
    assert isinstance(source, FileList) and source.classes == tuple(NAMES)
    assert [(f.rsplit("/", 2)[-2], y) for f, y in zip(source.files, source.labels)] == [
        (NAMES[y], y) for y in source.labels]
    loader = DaliMultiCropLoader(dataset, crops=CROPS, batch_size=5, device="cpu", seed=1)
    seen = [(int(i), int(y)) for batch in loader for i, y in zip(batch.indices, batch.labels)]
    assert sorted(seen) == [(i, source.labels[i]) for i in range(12)]
    loader.close()

    table = ArrowDatasetTable(dataset)  # read row by row from the files the rows name
    assert bytes(table[3][0]) == Path(source.files[3]).read_bytes()
    assert [bytes(b) for b, _ in table.__getitems__([0, 5])] == [Path(source.files[i]).read_bytes() for i in (0, 5)]
    items = table.encoded_items([1, 2])
    assert [bytes(b) for b, _ in items] == [Path(source.files[i]).read_bytes() for i in (1, 2)]
    Path(source.files[4]).unlink()
    with pytest.raises(ValueError, match=r"\[4\]: the image column 'image' holds no bytes but the path '.*', which "
                                         r"cannot be read \(No such file or directory\)"):
        table[4]
    assert isinstance(table.encoded_items([4])[0], ValueError)


def test_rows_of_bytes_and_rows_naming_files_in_one_table(tmp_path):
    """A table whose rows hold bytes or, some of them, only a file's path (a Parquet file written from such a
    dataset): each row read from where it is."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = []
    for i in range(4):
        files.append(tmp_path / f"{i}.jpg")
        files[-1].write_bytes(jpeg(100 + i))
    rows = [{"bytes": jpeg(i), "path": None} if i % 2 else {"bytes": None, "path": str(files[i // 2])}
            for i in range(8)]
    pq.write_table(pa.table({"image": rows, "label": list(range(8))}), tmp_path / "mixed.parquet", row_group_size=3)
    table = ParquetTable(str(tmp_path / "mixed.parquet"))
    expected = [jpeg(i) if i % 2 else jpeg(100 + i // 2) for i in range(8)]
    assert [bytes(table[i][0]) for i in range(8)] == expected
    assert [bytes(b) for b, _ in table.__getitems__(list(range(8)))] == expected
    assert [bytes(b) for b, _ in table.encoded_items([7, 6, 0, 1])] == [expected[i] for i in (7, 6, 0, 1)]
    loader = DaliMultiCropLoader(table, crops=CROPS, batch_size=3, device="cpu", seed=2)
    assert sorted(int(i) for batch in loader for i in batch.indices) == list(range(8))
    loader.close()
