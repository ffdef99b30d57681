"""Where samples come from, one module per kind of source:

==================  ===================================================  ====================================
module              source                                               what the graph starts from
==================  ===================================================  ====================================
``files.py``        :class:`FileList`: an image-folder tree or a list    file paths (DALI reads the files)
                    of ``(path, label)`` pairs, local or ``s3://``
``arrays.py``       :class:`ArraySource`: decoded images in memory,      the pixels
                    CIFAR's pickles
``dataset.py``      :class:`DatasetSource`: a map-style torch Dataset    the pixels or the encoded bytes
``tar.py``          :class:`TarShards`: WebDataset tar shards            DALI's webdataset reader
``parquet.py``      :class:`ParquetTable`: Parquet files (an image        the encoded bytes (through
                    column of encoded bytes, a label column)             :class:`DatasetSource`)
``hf_dataset.py``   :class:`ArrowDatasetTable`: a Hugging Face           the encoded bytes (through
                    ``datasets.Dataset``, read from its Arrow table      :class:`DatasetSource`)
``blocks.py``       what those two share: rows in blocks (row groups,
                    record batches) read whole, cached and read ahead;
                    their windowed epoch order
``tar_index.py``    the shards' index files (DALI's ``v1.2`` format)
``s3.py``           object storage: listing, small reads, checks
==================  ===================================================  ====================================

Sample ``i`` (``batch.indices``) is the i-th sample of the source. :func:`resolve_source` turns what a user passes
(a path, a pattern, a Dataset, pairs) into one of these.
"""

from __future__ import annotations

import os
from typing import Any, Sequence, Union

from .arrays import ArraySource
from .blocks import GroupedRowsWarning
from .dataset import DatasetSource
from .files import IMAGE_EXTENSIONS, FileList
from .hf_dataset import ArrowDatasetTable, hf_source, is_hf_dataset
from .parquet import PREFIX as PARQUET, ParquetTable, parquet_source
from .tar import TarShards

__all__ = ["AnySource", "ArraySource", "ArrowDatasetTable", "DatasetSource", "FileList", "GroupedRowsWarning",
           "IMAGE_EXTENSIONS", "ParquetTable", "SourceLike", "TarShards", "parquet_source", "resolve_source"]

AnySource = Union[FileList, ArraySource, TarShards, DatasetSource]
"""A resolved source."""

# Any: a map-style torch Dataset (not imported here)
SourceLike = Union[str, os.PathLike, AnySource, Any, Sequence[tuple[Union[str, os.PathLike], int]], Sequence[str]]
"""What the loader's ``source`` argument takes (see :func:`resolve_source`)."""


def _is_tar(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike)) and os.fspath(item).lower().endswith(".tar")


def resolve_source(source: SourceLike) -> AnySource:
    """What a user passes as the loader's source, as the source object: a folder path (local or ``s3://``),
    ``"parquet:PATTERN"`` (Parquet files), ``"cifar10:PATH"`` / ``"cifar100:PATH"`` (the training split), tar shards
    (a ``.tar`` path or brace pattern, or a list of them), a Hugging Face ``datasets.Dataset`` (read from its Arrow
    table), a map-style torch ``Dataset`` of ``(image, label)``, a :class:`FileList`, an :class:`ArraySource`, a
    :class:`TarShards`, a :class:`DatasetSource` or ``(path, label)`` pairs."""
    if isinstance(source, (FileList, ArraySource, TarShards, DatasetSource)):
        return source
    if isinstance(source, str) and source.startswith(PARQUET):
        return parquet_source(source[len(PARQUET):])
    if isinstance(source, str) and source.split(":", 1)[0] in ("cifar10", "cifar100") and ":" in source:
        return ArraySource.cifar(source.split(":", 1)[1])
    if _is_tar(source) or (isinstance(source, (list, tuple)) and source and all(_is_tar(s) for s in source)):
        return TarShards(source)  # type: ignore[arg-type]
    if isinstance(source, (str, os.PathLike)):
        return FileList.from_folder(source)
    if isinstance(source, (list, tuple)):
        return FileList.from_pairs(source)
    if is_hf_dataset(source):  # its Arrow table, not its __getitem__ (which decodes with PIL)
        return hf_source(source)
    if hasattr(source, "__getitem__") and hasattr(source, "__len__"):
        files = FileList.from_torchvision(source)  # a plain ImageFolder: its files, read by DALI
        return files if files is not None else DatasetSource(source)
    raise ValueError(f"source must be an image folder path, tar shards ('train-{{000..127}}.tar'), 'parquet:PATTERN', "
                     f"'cifar10:PATH', a Hugging Face datasets.Dataset, a torch Dataset, a FileList, an ArraySource, a "
                     f"TarShards or a list of (path, label) pairs, got {type(source).__name__}")
