"""Parquet files as a source: an image column of encoded bytes (Hugging Face's ``{bytes, path}`` structs, or plain
binary) and a label column, the bytes handed to the graph's decoder (on the GPU for ``device="gpu"``), never through
PIL. The files may lie on disk or in object storage (``s3://``, read by Arrow's S3 file system with the endpoint and
credentials the other ``s3://`` sources use).

:class:`ParquetTable` is the files as a map-style dataset whose items are ``(bytes, label)``; the loader fetches a
batch's items in one call (:meth:`ParquetTable.__getitems__`, a zero-copy slice of the Arrow buffers per row, grouped
by row group) in :class:`~dali_multicrop.sources.dataset.DatasetSource`'s threads, ahead of DALI.
:func:`parquet_source` (``"parquet:train-*.parquet"``) makes that source.

What is read when:

* at start, each file's footer (its row groups' row counts: ``len`` without reading an image byte) and the label
  column alone (a few bytes per row; string labels become class indices in sorted order, ``classes``);
* in the loop, whole row groups of the image column, kept in a cache of ``cache_row_groups`` row groups (least
  recently used out first). The epoch's order (:meth:`ParquetTable.epoch_order`) shuffles the row groups, then the
  rows within each ``shuffle_window`` consecutive row groups, so each stretch of batches reads only the row groups of
  its window: the cache holds a window and the next, about ``2 * shuffle_window`` row groups of image bytes per
  process. The next window is read ahead: the loader tells the table the rows it will fetch this epoch
  (:meth:`BlockTable.plan_reads`), and the first fetch from each row group starts reading the next
  ``shuffle_window`` row groups of that plan in a background thread, so that a batch entering a new window finds its
  row groups read (rather than waiting for them one after another).

Ranks take contiguous stretches of that order (:class:`~dali_multicrop.sources.epochs.ShardPlan`), so each rank
reads only the row groups its own rows lie in: about ``1/S`` of the dataset's bytes per epoch over ``S`` ranks, plus
the windows cut at its stretch's two ends.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import threading
from collections import OrderedDict, deque
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ..common.checks import check_int
from ..common.seeds import derive_seed
from . import s3

__all__ = ["BlockTable", "ParquetTable", "labels_of", "parquet_source"]

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


class BlockTable:
    """Encoded images and labels stored in blocks of rows (Parquet row groups, Arrow record batches) as a map-style
    dataset of ``(encoded bytes, label)`` items: the blocks read one at a time and cached, the epoch's order shuffled
    by blocks then within windows of blocks (see the module). A subclass gives the blocks' sizes, reads a block's
    image column (:meth:`_read_block`) and names a row (:meth:`item_name`)."""

    item_kind = "encoded"
    """What its items' images are, for :class:`~dali_multicrop.sources.dataset.DatasetSource` (so that no row is read
    at start)."""

    _TRANSIENT: tuple[str, ...] = ("_cache", "_lock", "_loading", "_ahead", "_queue", "_reading")
    """Attributes not pickled (made again by :meth:`_fresh`); a subclass adds its open files."""

    def _setup(self, image: str, sizes: Sequence[int], shuffle_window: int, cache_row_groups: Optional[int]) -> None:
        self.image = image
        self.shuffle_window = check_int("shuffle_window", shuffle_window, 1)
        self.cache_row_groups = (check_int("cache_row_groups", cache_row_groups, 1) if cache_row_groups is not None
                                 else 2 * self.shuffle_window + 2)
        self.row_group_sizes = np.array(sizes, dtype=np.int64)
        """Rows of each block (row group), in order."""
        self._starts = np.concatenate([[0], np.cumsum(self.row_group_sizes)]).astype(np.int64)
        self._fresh()

    def _fresh(self) -> None:
        """The empty cache and its locks (also after unpickling)."""
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Event] = {}
        self._ahead: dict[int, list[int]] = {}  # block -> the blocks to read ahead at its first fetch
        self._queue: deque[int] = deque()  # blocks the read-ahead thread reads next, in order
        self._reading = False  # whether that thread runs

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its cache, locks and open files (made again on unpickling)."""
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def plan_reads(self, indices: Sequence[int]) -> None:
        """The rows this process fetches next, in order (a rank's epoch, from the loader's feed): from now on the
        first fetch from each of their blocks has the next ``shuffle_window`` blocks of the plan read ahead, in order,
        by a background thread (replaces the previous plan)."""
        blocks = np.searchsorted(self._starts, np.asarray(indices, dtype=np.int64), side="right") - 1
        _, first = np.unique(blocks, return_index=True)
        sequence = blocks[np.sort(first)].tolist()
        ahead = {block: sequence[p + 1:p + 1 + self.shuffle_window] for p, block in enumerate(sequence)}
        with self._lock:
            self._ahead = ahead
            self._queue.clear()

    def _read_ahead(self, blocks: list[int]) -> None:
        """Queues ``blocks`` for the read-ahead thread (started when none runs)."""
        with self._lock:
            self._queue.extend(b for b in blocks if b not in self._cache)
            if self._reading or not self._queue:
                return
            self._reading = True
        threading.Thread(target=self._read_queued, name="dali-multicrop-read-ahead").start()

    def _read_queued(self) -> None:
        """The read-ahead thread: reads the queued blocks into the cache until none is left. A block that fails is
        left to the fetch that needs it (read again there, its error then that row's)."""
        while True:
            with self._lock:
                if not self._queue:
                    self._reading = False
                    return
                block = self._queue.popleft()
            try:
                self._block(block, fetched=False)
            except Exception:
                pass

    def _read_block(self, block: int) -> Any:
        """Block ``block``'s image column (an Arrow array)."""
        raise NotImplementedError

    def item_name(self, index: int) -> str:
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _where(self, index: int) -> tuple[int, int]:
        """Block and row within it of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} is out of range for {len(self)} rows")
        block = int(np.searchsorted(self._starts, index, side="right")) - 1
        return block, index - int(self._starts[block])

    def _block(self, block: int, fetched: bool = True) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """Block ``block``'s image bytes as ``(data, offsets, valid)``: one uint8 buffer, int64 offsets per row
        (row ``r`` is ``data[offsets[r]:offsets[r + 1]]``), and which rows hold an image (None: all). Read once and
        cached; threads asking for the same block wait for one read. ``fetched``: asked for a row's fetch (the
        first such ask starts the plan's read-ahead once this block is read), not by the read-ahead itself."""
        following = None
        if fetched and self._ahead:
            with self._lock:
                following = self._ahead.pop(block, None)
        try:
            return self._read_once(block)
        finally:
            if following:
                self._read_ahead(following)

    def _read_once(self, block: int) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """:meth:`_block`'s read: from the cache, or read by this thread, or waited for where another reads it."""
        while True:
            with self._lock:
                if block in self._cache:
                    self._cache.move_to_end(block)
                    return self._cache[block]
                waiting = self._loading.get(block)
                if waiting is None:
                    self._loading[block] = threading.Event()
                    break
            waiting.wait()
        try:
            read = _bytes_of(self._read_block(block), self.image, self.item_name(int(self._starts[block])))
            with self._lock:
                self._cache[block] = read
                while len(self._cache) > self.cache_row_groups:
                    self._cache.popitem(last=False)
            return read
        finally:
            with self._lock:
                self._loading.pop(block).set()

    def __getitem__(self, index: int) -> tuple[memoryview, int]:
        """Row ``index`` as ``(encoded bytes, label)``: the bytes a view of the block's buffer (no copy)."""
        block, row = self._where(int(index))
        data, offsets, valid = self._block(block)
        if valid is not None and not valid[row]:
            raise ValueError(f"{self.item_name(int(index))}: the image column '{self.image}' is empty (null)")
        return data[offsets[row]:offsets[row + 1]].data, int(self.labels[index])

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[memoryview, int]]:
        """The rows ``indices`` at once (torch's batched fetch): each block read once for them."""
        return [self[int(i)] for i in indices]

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """The whole table's order in ``epoch`` (identical on every rank): the blocks shuffled, then the rows of
        each ``shuffle_window`` consecutive blocks of that order shuffled together."""
        rng = np.random.default_rng(derive_seed(seed, epoch, 0x9A2E7))
        blocks = rng.permutation(len(self.row_group_sizes))
        parts = []
        for w in range(0, len(blocks), self.shuffle_window):
            window = blocks[w:w + self.shuffle_window]
            rows = np.concatenate([np.arange(self._starts[g], self._starts[g + 1]) for g in window])
            parts.append(rng.permutation(rows))
        return np.concatenate(parts).astype(np.int64)


def labels_of(values: list[Any], column: str, name_of: Callable[[int], str],
              classes: Sequence[str] = ()) -> tuple[np.ndarray, tuple[str, ...]]:
    """A label column's ``values`` as int64 class indices and the class names: strings in sorted order, integers
    >= 0 as they are (named by ``classes`` where the data says them); a null names its row (``name_of``)."""
    if any(v is None for v in values):
        raise ValueError(f"{name_of(next(i for i, v in enumerate(values) if v is None))}: the label column "
                         f"'{column}' is empty (null)")
    if all(isinstance(v, str) for v in values):
        names = tuple(sorted(set(values)))
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[v] for v in values], dtype=np.int64), names
    bad = next((v for v in values if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0)), None)
    if bad is not None:
        raise ValueError(f"the label column '{column}' must hold integers >= 0 or strings, got {bad!r}")
    return np.array(values, dtype=np.int64), tuple(classes)


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
        first_in_file: list[int] = []  # each row group's first row, counted within its file
        for f, reader in enumerate(self._readers):
            before = 0
            for g in range(reader.metadata.num_row_groups):
                groups.append((f, g))
                sizes.append(reader.metadata.row_group(g).num_rows)
                first_in_file.append(before)
                before += sizes[-1]
        self._groups = groups
        self._first_in_file = first_in_file
        self._setup(image, sizes, shuffle_window, cache_row_groups)
        if len(self) < 1:
            raise ValueError(f"the Parquet files {self.files[0]}{' ...' if len(self.files) > 1 else ''} hold no rows")
        if label is None:
            self.labels, self.classes = np.zeros(len(self), dtype=np.int64), ()
        else:
            values = [v for _, labels in opened for v in labels]
            self.labels, self.classes = labels_of(values, label, self.item_name,
                                                  _class_names(self._readers[0].schema_arrow, label))

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


def _bytes_of(column: Any, name: str, where: str) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """An Arrow column of images (struct with ``bytes``, or binary) as ``(data, offsets, valid)`` without copying the
    bytes."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_struct(column.type):
        field = column.type.get_field_index("bytes")
        if field < 0:
            raise ValueError(f"{where}: the image column '{name}' is a struct without a 'bytes' field "
                             f"(its fields: {', '.join(f.name for f in column.type)})")
        column = column.flatten()[field]  # null where the struct or its bytes are
    if pa.types.is_large_binary(column.type):
        offset_type = np.int64
    elif pa.types.is_binary(column.type):
        offset_type = np.int32
    else:
        raise ValueError(f"{where}: the image column '{name}' holds {column.type}, not encoded images "
                         f"(binary, or a struct with a 'bytes' field)")
    valid = np.asarray(column.is_valid()) if column.null_count else None
    _, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[column.offset:column.offset + len(column) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return data, offsets.astype(np.int64), valid


def parquet_source(files: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]], image: str = "image",
                   label: Optional[str] = "label", shuffle_window: int = 8, workers: Optional[int] = None) -> Any:
    """The loader's source for Parquet ``files`` (see :class:`ParquetTable`): a
    :class:`~dali_multicrop.sources.dataset.DatasetSource` of encoded images."""
    from .dataset import DatasetSource

    return DatasetSource(ParquetTable(files, image=image, label=label, shuffle_window=shuffle_window),
                         workers=workers)
