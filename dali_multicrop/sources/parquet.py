"""Parquet files as a source: an image column of encoded bytes (Hugging Face's ``{bytes, path}`` structs, or plain
binary) and a label column, the bytes handed to the graph's decoder (on the GPU for ``device="gpu"``), never through
PIL. The files may lie on disk or in object storage (``s3://``, read by Arrow's S3 file system with the endpoint and
credentials the other ``s3://`` sources use).

:class:`ParquetTable` is the files as a map-style dataset whose items are ``(bytes, label)``; the loader fetches a
batch's items in one call (:meth:`ParquetTable.__getitems__`, a zero-copy slice of the Arrow buffers per row, grouped
by row group) in :class:`~dali_multicrop.sources.dataset.DatasetSource`'s threads, ahead of DALI.
:func:`parquet_source` (``"parquet:train-*.parquet"``) makes that source.

What is read when: at start, each file's footer (its row groups' row counts: ``len`` without reading an image
byte) and the label column alone (a few bytes per row; string labels become class indices in sorted order,
``classes``), several files at a time; in the loop, whole row groups of the image column, in the windowed order,
cached and read ahead as :mod:`~dali_multicrop.sources.blocks` says, each rank only the row groups of its own rows.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import threading
from typing import Any, Callable, Optional, Sequence, Union


from . import s3
from .blocks import BlockTable

__all__ = ["ParquetTable", "parquet_source"]

PREFIX = "parquet:"
"""The source string's prefix: ``"parquet:PATTERN"`` (a glob, or a single file)."""


def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise ModuleNotFoundError("reading Parquet files needs pyarrow: pip install 'dali-multicrop[parquet]'",
                                  name="pyarrow") from None
    return pq


def _open(pq: Any, file: str) -> Any:
    """``file`` (a path or an ``s3://`` URL) opened for reading row groups (read, not memory-mapped: a row group's
    first read through a map took 2-5x as long here, page by page)."""
    if not s3.is_s3(file):
        return pq.ParquetFile(file)
    bucket, key = s3.split_url(file)
    try:
        return pq.ParquetFile(_s3_filesystem().open_input_file(f"{bucket}/{key}"))
    except OSError as exc:
        raise ValueError(f"cannot read Parquet file '{file}' from {s3.endpoint()}: {exc}") from None


def _open_files(pq: Any, files: list[str],
                read: Callable[[str, Any], Any] = lambda file, reader: None) -> list[tuple[Any, Any]]:
    """``(reader, read(file, reader))`` for each of ``files`` (opened by :func:`_open`), in order, several at a time
    (:func:`~dali_multicrop.sources.s3.map_requests`: a footer's read waits mostly on the disk or the endpoint). The
    first file's error, in order, is raised."""
    def one(file: str) -> tuple[Any, Any]:
        reader = _open(pq, file)
        return reader, read(file, reader)

    return s3.map_requests(one, files)


def _s3_filesystem() -> Any:
    """Arrow's S3 file system for the AWS settings in the environment (the endpoint as the package's other
    ``s3://`` sources take it: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``; credentials and region Arrow reads)."""
    from pyarrow import fs

    url = s3.endpoint_url()
    settings: dict[str, Any] = {}
    if url:
        scheme, _, host = url.partition("://")
        settings.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        settings["region"] = region
    return fs.S3FileSystem(**settings)


def _files(pattern: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]) -> list[str]:
    """The Parquet files ``pattern`` names (a glob, a path or a list; local or ``s3://``), checked to exist."""
    if isinstance(pattern, (list, tuple)):
        files = [os.fspath(p) for p in pattern]
    elif s3.is_s3(os.fspath(pattern)):
        text = os.fspath(pattern)
        if glob.has_magic(text):
            folder = text[:text.rfind("/", 0, min(text.find(c) for c in "*?[" if c in text)) + 1]
            files = [url for url in s3.list_keys(folder) if fnmatch.fnmatchcase(url, text)]
        else:
            files = [text]
    else:
        text = os.path.expanduser(os.fspath(pattern))
        files = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
    if not files:
        raise ValueError(f"no Parquet file matches '{pattern}'")
    local = [f for f in files if not s3.is_s3(f)]
    for file in local:
        if not os.path.isfile(file):
            raise ValueError(f"Parquet file '{file}' does not exist")
    if len(local) < len(files) and not (isinstance(pattern, str) and glob.has_magic(pattern)):
        s3.check_objects(f for f in files if s3.is_s3(f))  # a pattern's objects were just listed
    return files


class ParquetTable(BlockTable):
    """Parquet ``files`` (a glob pattern, one path or a list) as a dataset of ``(encoded bytes, label)`` items, in the
    files' order (sorted, for a pattern), rows in order within each; the blocks are the row groups.

    ``image``: the column of encoded images (a struct with a ``bytes`` field, as Hugging Face writes it, or binary).
    ``label``: the column of labels (integers >= 0, named by the file's Hugging Face ``ClassLabel`` where it has one;
    or strings: class indices in sorted order), or None (every label 0). ``shuffle_window``: row groups whose rows
    are shuffled together (see the module); ``cache_row_groups``: row groups of image bytes kept per process
    (default ``2 * shuffle_window + 2``).
    """

    def __init__(self, files: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]], image: str = "image",
                 label: Optional[str] = "label", shuffle_window: int = 8,
                 cache_row_groups: Optional[int] = None) -> None:
        pq = _pyarrow()
        self.files = _files(files)

        def labels_in(file: str, reader: Any) -> Optional[list[Any]]:
            """The file's label column (its columns checked first), or None without one."""
            names = reader.schema_arrow.names
            for column in (image, label):
                if column is not None and column not in names:
                    raise ValueError(f"Parquet file '{file}' has no column '{column}' (its columns: "
                                     f"{', '.join(names)})")
            return None if label is None else reader.read(columns=[label], use_threads=False).column(0).to_pylist()

        opened = _open_files(pq, self.files, labels_in)
        self._readers = [reader for reader, _ in opened]
        self._file_locks = [threading.Lock() for _ in self.files]
        groups: list[tuple[int, int]] = []  # (file, row group) per row group, in order
        sizes: list[int] = []
        block_bytes: list[int] = []
        first_in_file: list[int] = []  # each row group's first row, counted within its file
        for f, reader in enumerate(self._readers):
            before = 0
            for g in range(reader.metadata.num_row_groups):
                groups.append((f, g))
                sizes.append(reader.metadata.row_group(g).num_rows)
                block_bytes.append(reader.metadata.row_group(g).total_byte_size)
                first_in_file.append(before)
                before += sizes[-1]
        self._groups = groups
        self._first_in_file = first_in_file
        self._setup(image, sizes, block_bytes, shuffle_window, cache_row_groups)
        if len(self) < 1:
            raise ValueError(f"the Parquet files {self.files[0]}{' ...' if len(self.files) > 1 else ''} hold no rows")
        self._label(None if label is None else [v for _, labels in opened for v in labels], label,
                    _class_names(self._readers[0].schema_arrow, label) if label is not None else ())

    def __repr__(self) -> str:
        return (f"ParquetTable({len(self.files)} file(s), {len(self)} rows in {len(self._groups)} row groups, "
                f"image='{self.image}')")

    def item_name(self, index: int) -> str:
        """How errors name row ``index``: its file and its row in that file."""
        group, row = self._where(index)
        return f"{self.files[self._groups[group][0]]} (row {self._first_in_file[group] + row})"

    def _read_block(self, block: int) -> Any:
        f, g = self._groups[block]
        with self._file_locks[f]:  # one read at a time per open file (Arrow's readers promise no more)
            # Arrow's own threads would fight the loader's and DALI's for the cores (a row group took 9x as long)
            return self._readers[f].read_row_group(g, columns=[self.image], use_threads=False).column(0)

    _TRANSIENT = BlockTable._TRANSIENT + ("_readers", "_file_locks")

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._readers = [reader for reader, _ in _open_files(_pyarrow(), self.files)]
        self._file_locks = [threading.Lock() for _ in self.files]
        self._fresh()


def _class_names(schema: Any, label: str) -> tuple[str, ...]:
    """The names of a Hugging Face ``ClassLabel`` column ``label``, from the schema's ``huggingface`` metadata (what
    ``Dataset.to_parquet`` writes); empty where there are none."""
    import json

    try:
        features = json.loads((schema.metadata or {})[b"huggingface"])["info"]["features"]
        names = features[label].get("names") if features[label].get("_type") == "ClassLabel" else None
    except (KeyError, ValueError, TypeError, AttributeError):
        return ()
    return tuple(str(n) for n in names) if names else ()


def parquet_source(files: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]], image: str = "image",
                   label: Optional[str] = "label", shuffle_window: int = 8, workers: Optional[int] = None) -> Any:
    """The loader's source for Parquet ``files`` (see :class:`ParquetTable`): a
    :class:`~dali_multicrop.sources.dataset.DatasetSource` of encoded images."""
    from .dataset import DatasetSource

    return DatasetSource(ParquetTable(files, image=image, label=label, shuffle_window=shuffle_window),
                         workers=workers)
