"""The same images as each kind of source, for ``dali-multicrop bench --source``.

``folder``: the image files as they are. ``arrays``: every image decoded once into memory (an
:class:`~dali_multicrop.ArraySource` of varied sizes; the graph skips decoding). ``tar``: the files packed in
order into WebDataset shards of :data:`SAMPLES_PER_SHARD` with index files (written once into the cache).
``dataset``: a map-style torch Dataset giving PIL images (the usual ``torchvision.datasets`` item), fetched by
worker threads. ``parquet``: the files' bytes in Parquet files as Hugging Face writes them (an ``image`` column of
``{bytes, path}`` structs, a ``label`` column; :data:`ROWS_PER_GROUP` rows per row group, written once into the
cache), read by :class:`~dali_multicrop.sources.ParquetTable` (needs pyarrow). ``hf``: the same as a Hugging Face
``datasets.Dataset`` (``save_to_disk`` into the cache, ``load_from_disk``: memory-mapped Arrow), read from its Arrow
table (:class:`~dali_multicrop.sources.ArrowDatasetTable`); ``hf-pil``: that dataset the usual way, its
``__getitem__`` decoding each image with PIL, in a :class:`~dali_multicrop.DatasetSource` (needs datasets).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..sources import ArraySource, DatasetSource, FileList, TarShards, parquet_source
from ..sources.hf_dataset import hf_source
from ..sources.tar import pack_shards
from ..sources.tar_index import write_index

__all__ = ["ROWS_PER_GROUP", "SOURCES", "SAMPLES_PER_SHARD", "bench_source", "hf_dataset", "write_parquet",
           "write_tar_shards"]

SOURCES = ("folder", "arrays", "tar", "dataset", "parquet", "hf", "hf-pil")
SAMPLES_PER_SHARD = 256
"""Samples per tar shard the benchmark writes (small shards: many shard switches per epoch, the hard case)."""
ROWS_PER_GROUP = 256
"""Rows per Parquet row group the benchmark writes (as small as the tar shards)."""


def _write_once(files: FileList, folder: Path, write: Callable[[], Any]) -> None:
    """Runs ``write()`` (which writes ``files`` into ``folder``) unless a previous run completed it: its marker,
    ``folder/complete``, holds the count of files written."""
    done = folder / "complete"
    if done.is_file() and done.read_text() == str(len(files)):
        return
    folder.mkdir(parents=True, exist_ok=True)
    write()
    done.write_text(str(len(files)))


def _cache_folder(files: FileList, cache: Path, kind: str) -> Path:
    """Where ``files`` as a source of ``kind`` is written under ``cache`` (named by the files' paths)."""
    key = hashlib.sha1("\n".join(files.files).encode()).hexdigest()[:12]
    return cache / f"bench-{kind}-{key}"


def write_parquet(files: FileList, folder: Path, rows_per_group: int = ROWS_PER_GROUP) -> str:
    """``files``' bytes and labels in order into ``folder/train.parquet`` (Hugging Face's image struct); returns its
    path. Kept when already complete."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / "train.parquet"

    def write() -> None:
        images = [{"bytes": Path(f).read_bytes(), "path": Path(f).name} for f in files.files]
        pq.write_table(pa.table({"image": images, "label": list(files.labels)}), path, row_group_size=rows_per_group)

    _write_once(files, folder, write)
    return str(path)


def hf_dataset(files: FileList, folder: Path) -> Any:
    """``files``' bytes and labels as a ``datasets.Dataset`` saved in ``folder`` (an ``Image`` column and a
    ``ClassLabel``), loaded back memory-mapped; written once."""
    import datasets

    def write() -> None:
        images = [{"bytes": Path(f).read_bytes(), "path": None} for f in files.files]
        features = datasets.Features({"image": datasets.Image(),
                                      "label": datasets.ClassLabel(names=list(files.classes) or ["0"])})
        datasets.Dataset.from_dict({"image": images, "label": list(files.labels)}, features=features).save_to_disk(
            str(folder / "dataset"))

    _write_once(files, folder, write)
    return datasets.load_from_disk(str(folder / "dataset"))


class _HfPairs:
    """A ``datasets.Dataset`` as ``(PIL image, label)`` items, through its own ``__getitem__`` (PIL decodes)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        row = self.dataset[int(i)]
        return row["image"].convert("RGB"), row["label"]


def write_tar_shards(files: FileList, folder: Path, per_shard: int = SAMPLES_PER_SHARD) -> str:
    """Packs ``files`` in order into ``folder/train-NNNNNN.tar`` (members ``<index>.<ext>`` and ``<index>.cls``)
    with their index files; returns the brace pattern of the shards. Kept when already complete."""
    count = -(-len(files) // per_shard)
    pattern = str(folder / f"train-{{000000..{count - 1:06d}}}.tar")

    def write() -> None:
        for path in pack_shards(files.files, files.labels, folder, per_shard):
            write_index(str(path))

    _write_once(files, folder, write)
    return pattern


class _PilDataset:
    """A map-style dataset of PIL images and labels, as ``torchvision.datasets.ImageFolder`` without transform."""

    def __init__(self, files: FileList) -> None:
        self.files = files
        self.classes = files.classes

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        with Image.open(self.files.files[i]) as image:
            return image.convert("RGB"), self.files.labels[i]


def _decoded(files: FileList, threads: int) -> ArraySource:
    from PIL import Image

    def load(path: str) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    with ThreadPoolExecutor(threads) as pool:
        images = list(pool.map(load, files.files))
    return ArraySource(images, list(files.labels), files.classes)


def bench_source(kind: str, files: FileList, cache: Path, threads: int) -> Any:
    """``files`` as a source of ``kind`` (see :data:`SOURCES`); tar shards, the Parquet file and the ``datasets``
    dataset are written under ``cache``."""
    if kind == "folder":
        return files
    if kind == "arrays":
        return _decoded(files, threads)
    if kind == "tar":
        return TarShards(write_tar_shards(files, _cache_folder(files, cache, "shards")))
    if kind == "dataset":
        return DatasetSource(_PilDataset(files), workers=threads)
    if kind == "parquet":
        return parquet_source(write_parquet(files, _cache_folder(files, cache, "parquet")), workers=threads)
    if kind in ("hf", "hf-pil"):
        dataset = hf_dataset(files, _cache_folder(files, cache, "hf"))
        return hf_source(dataset, workers=threads) if kind == "hf" else DatasetSource(_HfPairs(dataset),
                                                                                      workers=threads)
    raise ValueError(f"unknown source '{kind}' (choose from {', '.join(SOURCES)})")


