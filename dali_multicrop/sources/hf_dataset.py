"""A Hugging Face ``datasets.Dataset`` (a ``DatasetDict``'s split) as a source, read from its Arrow table.

``datasets`` keeps a dataset as Arrow files in its cache, memory-mapped; an ``Image`` column stores the encoded bytes
(a struct ``{bytes, path}``) whether or not the dataset decodes them on access. :class:`ArrowDatasetTable` reads that
storage directly, never through ``Dataset.__getitem__`` (which decodes every image with PIL): the blocks are the
table's record batches, each a view of the mapped file (see :mod:`dali_multicrop.sources.blocks` for the epoch
order, the cache and the items). A row that holds no bytes but a file's path (``load_dataset("imagefolder", ...)``
keeps only the paths of local files) is read from that file; where every row does, the dataset is read as those
files (:func:`hf_source`). Needs ``datasets`` only to be given one; nothing here imports it.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence


from .blocks import BlockTable

__all__ = ["ArrowDatasetTable", "hf_source", "is_hf_dataset"]


def is_hf_dataset(source: Any) -> bool:
    """Whether ``source`` is a ``datasets.Dataset`` or ``DatasetDict`` (told by its type's module, without importing
    ``datasets``); ``ValueError`` for a streaming one (``IterableDataset``), which the loader cannot read."""
    kind = type(source)
    if kind.__module__.split(".")[0] != "datasets":
        return False
    if kind.__name__ in ("IterableDataset", "IterableDatasetDict"):
        raise ValueError("a streaming datasets.IterableDataset (load_dataset(..., streaming=True)) has no length and "
                         "no random access, which the loader needs to shuffle and shard its rows: load it without "
                         "streaming=True, or pass its Parquet files ('parquet:PATTERN', local or s3://)")
    return kind.__name__ in ("Dataset", "DatasetDict")


class ArrowDatasetTable(BlockTable):
    """A ``datasets.Dataset`` as a dataset of ``(encoded bytes, label)`` items, in its order; ``image`` and ``label``
    its columns (``label=None``: every label 0; a ``ClassLabel``'s names become ``classes``, string labels class
    indices in sorted order). ``shuffle_window`` and ``cache_row_groups`` as for
    :class:`~dali_multicrop.sources.parquet.ParquetTable`, over the table's record batches."""

    def __init__(self, dataset: Any, image: str = "image", label: Optional[str] = "label", shuffle_window: int = 8,
                 cache_row_groups: Optional[int] = None) -> None:
        if type(dataset).__name__ == "DatasetDict":
            raise ValueError(f"a DatasetDict holds several splits ({', '.join(dataset)}): pass one, e.g. "
                             f"dataset['{next(iter(dataset), 'train')}']")
        if getattr(dataset, "_indices", None) is not None:
            raise ValueError("the dataset has an indices mapping (after shuffle, select, filter or train_test_split): "
                             "the loader shuffles by itself; pass the dataset before it, or dataset.flatten_indices()")
        self.dataset = dataset
        self.name = getattr(getattr(dataset, "info", None), "dataset_name", None) or "Dataset"
        table = dataset.data.table  # pyarrow.Table (memory-mapped from the cache's Arrow files)
        names = table.schema.names
        for column in (image, label):
            if column is not None and column not in names:
                raise ValueError(f"the dataset has no column '{column}' (its columns: {', '.join(names)})")
        self._column = table.column(image)
        chunks = self._column.chunks
        self._setup(image, [len(c) for c in chunks], [c.nbytes for c in chunks], shuffle_window, cache_row_groups)
        if len(self) < 1:
            raise ValueError("the dataset is empty: it has no rows")
        self.file_paths = _file_paths(chunks)
        """The files the rows name, where no row holds bytes and every row names a file (what ``load_dataset(
        "imagefolder", ...)`` keeps of local images): :func:`hf_source` reads them as a file list; else None."""
        self._label(None if label is None else table.column(label).to_pylist(), label,
                    tuple(getattr(dataset.features.get(label), "names", None) or ()) if label is not None else (),
                    windows=self.file_paths is None)

    def __repr__(self) -> str:
        return (f"ArrowDatasetTable({self.name}, {len(self)} rows in {len(self.row_group_sizes)} record batches, "
                f"image='{self.image}')")

    def item_name(self, index: int) -> str:
        """How errors name row ``index``: ``Dataset[17]`` (the dataset's name where it has one)."""
        return f"{self.name}[{index}]"

    def _read_block(self, block: int) -> Any:
        return self._column.chunk(block)

    _TRANSIENT = BlockTable._TRANSIENT + ("_column",)  # pickled as its dataset (by its cache files) and settings

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._column = self.dataset.data.table.column(self.image)
        self._fresh()


def _file_paths(chunks: Sequence[Any]) -> Optional[list[str]]:
    """The paths an image column's ``chunks`` (struct arrays) name, where none holds bytes and each names a file;
    else None (found at the first chunk holding bytes: nothing read beyond it)."""
    import pyarrow as pa

    paths: list[str] = []
    for chunk in chunks:
        if not pa.types.is_struct(chunk.type) or min(chunk.type.get_field_index(f) for f in ("bytes", "path")) < 0:
            return None
        fields = chunk.flatten()  # the struct's own nulls and offset applied
        named = fields[chunk.type.get_field_index("path")]
        if fields[chunk.type.get_field_index("bytes")].null_count < len(chunk) or named.null_count:
            return None
        paths += named.to_pylist()
    return paths


def hf_source(dataset: Any, image: str = "image", label: Optional[str] = "label",
              workers: Optional[int] = None) -> Any:
    """The loader's source for a ``datasets.Dataset`` (see :class:`ArrowDatasetTable`): the table through a
    :class:`~dali_multicrop.sources.dataset.DatasetSource`, or, where its rows only name files (a local
    ``imagefolder``), those files as a :class:`~dali_multicrop.sources.files.FileList` (DALI reads them, shuffled
    as a folder is)."""
    from .dataset import DatasetSource
    from .files import FileList

    table = ArrowDatasetTable(dataset, image=image, label=label)
    if table.file_paths is not None:
        return FileList(tuple(table.file_paths), tuple(table.labels.tolist()), table.classes)
    return DatasetSource(table, workers=workers)
