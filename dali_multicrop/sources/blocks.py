"""Encoded images stored in blocks of rows (Parquet row groups, the record batches of a Hugging Face dataset's
Arrow table) as a map-style dataset of ``(encoded bytes, label)``: :class:`BlockTable`, the base of
:class:`~dali_multicrop.sources.parquet.ParquetTable` and :class:`~dali_multicrop.sources.hf_dataset.ArrowDatasetTable`.

* Blocks of the image column are read whole, kept in a cache of ``cache_row_groups`` blocks (least recently used out
  first); a row is a zero-copy view of its block's buffer.
* The epoch's order (:meth:`BlockTable.epoch_order`) shuffles the blocks, then the rows within each ``shuffle_window``
  consecutive blocks of that order, so each stretch of batches reads only the blocks of its window: the cache holds
  a window and the next, about ``2 * shuffle_window`` blocks of image bytes per process.
* The next window is read ahead: the loader tells the table the rows it will fetch this epoch
  (:meth:`BlockTable.plan_reads`), and the first fetch from each block starts reading the next ``shuffle_window``
  blocks of that plan in background threads (:data:`READ_AHEAD_THREADS`), so that a batch entering a new window
  finds its blocks read (rather than waiting for them one after another).
* Ranks take contiguous stretches of the order (:class:`~dali_multicrop.sources.epochs.ShardPlan`), so each rank
  reads only the blocks its own rows lie in: about ``1/S`` of the dataset's bytes per epoch over ``S`` ranks, plus
  the windows cut at its stretch's two ends.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict, deque
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np

from ..badsamples.diagnose import diagnose_named, whole_jpegs
from ..common.checks import check_int
from ..common.seeds import derive_seed

__all__ = ["BlockTable", "GroupedRowsWarning", "labels_of"]

READ_AHEAD_THREADS = 4
"""Threads that read a table's next blocks ahead at most (blocks of different files are read at once; over object
storage each read waits mostly on the endpoint's latency)."""

GROUPED_BELOW = 0.5
"""A shuffle window whose rows hold fewer than this share of the classes that as many rows in random order would
hold means rows stored grouped by label (:meth:`BlockTable.mixing`): the table warns."""


class Block(NamedTuple):
    """One block's image bytes: one uint8 buffer, int64 offsets per row (row ``r`` is ``data[offsets[r]:offsets[r +
    1]]``), which rows hold bytes (None: all) and, for rows without bytes, the file each names instead where it
    names one (``{row: path}``; Hugging Face's image structs of local files, ``{bytes: null, path}``)."""

    data: np.ndarray
    offsets: np.ndarray
    valid: Optional[np.ndarray]
    paths: dict[int, str]


class GroupedRowsWarning(UserWarning):
    """A table's rows are stored grouped by label, so that a shuffle window, and each batch, holds few of the classes
    (see :meth:`BlockTable.mixing`)."""


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

    def _setup(self, image: str, sizes: Sequence[int], block_bytes: Sequence[int], shuffle_window: int,
               cache_row_groups: Optional[int]) -> None:
        self.image = image
        self.row_group_bytes = np.array(block_bytes, dtype=np.int64)
        """Bytes of each block as stored in memory once read (the image column's, or the row group's)."""
        self.shuffle_window = check_int("shuffle_window", shuffle_window, 1)
        self.cache_row_groups = (check_int("cache_row_groups", cache_row_groups, 1) if cache_row_groups is not None
                                 else 2 * self.shuffle_window + 2)
        self.row_group_sizes = np.array(sizes, dtype=np.int64)
        """Rows of each block (row group), in order."""
        self._starts = np.concatenate([[0], np.cumsum(self.row_group_sizes)]).astype(np.int64)
        self._fresh()

    @property
    def cache_bytes(self) -> int:
        """About how many bytes the cache holds when full: ``cache_row_groups`` blocks of the mean block's bytes."""
        return int(self.cache_row_groups * self.row_group_bytes.mean()) if len(self.row_group_bytes) else 0

    def _label(self, values: Optional[list[Any]], column: Optional[str], classes: Sequence[str] = (),
               windows: bool = True) -> None:
        """Sets ``labels`` and ``classes`` from a label column's ``values`` (:func:`labels_of`; None: every label 0),
        and warns (:class:`GroupedRowsWarning`) where the rows are stored grouped by label (:meth:`mixing`) and are
        read in windows (``windows``)."""
        if values is None or column is None:
            self.labels, self.classes = np.zeros(len(self), dtype=np.int64), ()
            return
        self.labels, self.classes = labels_of(values, column, self.item_name, classes)
        if not windows:
            return
        held, expected = self.mixing()
        if held < GROUPED_BELOW * expected:
            rows = int(self.row_group_sizes.mean() * min(self.shuffle_window, len(self.row_group_sizes)))
            warnings.warn(
                f"{self!r}: the rows are stored grouped by label: a shuffle window of {self.shuffle_window} row "
                f"groups (about {rows} rows) holds {held:.1f} classes on average, where as many rows in random order "
                f"would hold {expected:.1f}, so every batch sees few classes. Shuffle the rows once when writing "
                f"(datasets: dataset.shuffle(seed=0).flatten_indices(), then to_parquet or save_to_disk), or raise "
                f"shuffle_window (the cache keeps 2 * shuffle_window + 2 row groups of about "
                f"{self.row_group_bytes.mean() / 2**20:.1f} MB each)", GroupedRowsWarning, stacklevel=3)

    def mixing(self, windows: int = 64, seed: int = 0) -> tuple[float, float]:
        """``(held, expected)``: the mean count of classes among the rows of a shuffle window (``windows`` windows of
        ``shuffle_window`` blocks drawn at random, as the epoch's order makes them), and the mean count that as many
        rows drawn at random from the whole table would hold (by the labels' frequencies). Rows stored grouped by
        label (files written class by class) make ``held`` far smaller: each batch then draws from few classes."""
        count = len(self.row_group_sizes)
        frequencies = np.unique(self.labels, return_counts=True)[1] / len(self)  # labels may be large integers
        rng = np.random.default_rng(seed)
        held, expected = [], []
        for _ in range(windows):
            blocks = rng.choice(count, size=min(self.shuffle_window, count), replace=False)
            rows = np.concatenate([self.labels[self._starts[b]:self._starts[b + 1]] for b in blocks])
            held.append(len(np.unique(rows)))
            expected.append(float(np.sum(1.0 - (1.0 - frequencies) ** len(rows))))
        return float(np.mean(held)), float(np.mean(expected))

    def _fresh(self) -> None:
        """The empty cache and its locks (also after unpickling)."""
        self._cache: OrderedDict[int, Block] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Event] = {}
        self._ahead: dict[int, list[int]] = {}  # block -> the blocks to read ahead at its first fetch
        self._queue: deque[int] = deque()  # blocks the read-ahead threads read next, in order
        self._reading = 0  # read-ahead threads running

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its cache, locks and open files (made again on unpickling)."""
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def plan_reads(self, indices: Sequence[int]) -> None:
        """The rows this process fetches next, in order (a rank's epoch, from the loader's feed): from now on the
        first fetch from each of their blocks has the next ``shuffle_window`` blocks of the plan read ahead, started in
        order, by up to :data:`READ_AHEAD_THREADS` background threads (replaces the previous plan)."""
        blocks = self._blocks_of(np.asarray(indices, dtype=np.int64))
        _, first = np.unique(blocks, return_index=True)
        sequence = blocks[np.sort(first)].tolist()
        ahead = {block: sequence[p + 1:p + 1 + self.shuffle_window] for p, block in enumerate(sequence)}
        with self._lock:
            self._ahead = ahead
            self._queue.clear()

    def _read_ahead(self, blocks: list[int]) -> None:
        """Queues ``blocks`` for the read-ahead threads (more started, up to :data:`READ_AHEAD_THREADS`, while
        blocks wait)."""
        with self._lock:
            self._queue.extend(b for b in blocks if b not in self._cache)
            more = min(READ_AHEAD_THREADS - self._reading, len(self._queue))
            self._reading += max(more, 0)
        for _ in range(more):
            threading.Thread(target=self._read_queued, name="dali-multicrop-read-ahead").start()

    def _read_queued(self) -> None:
        """A read-ahead thread: reads queued blocks into the cache until none is left. A block that fails is left to
        the fetch that needs it (read again there, its error then that row's)."""
        while True:
            with self._lock:
                if not self._queue:
                    self._reading -= 1
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

    def _blocks_of(self, rows: Any) -> Any:
        """The block of each sample of ``rows`` (an int or an int64 array, in range)."""
        return np.searchsorted(self._starts, rows, side="right") - 1

    def _where(self, index: int) -> tuple[int, int]:
        """Block and row within it of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} is out of range for {len(self)} rows")
        block = int(self._blocks_of(index))
        return block, index - int(self._starts[block])

    def _block(self, block: int, fetched: bool = True) -> Block:
        """Block ``block``'s image bytes (a :class:`Block`). Read once and cached; threads asking for the same block
        wait for one read. ``fetched``: asked for a row's fetch (the first such ask starts the plan's read-ahead once
        this block is read), not by the read-ahead itself."""
        following = None
        if fetched and self._ahead:
            with self._lock:
                following = self._ahead.pop(block, None)
        try:
            return self._read_once(block)
        finally:
            if following:
                self._read_ahead(following)

    def _read_once(self, block: int) -> Block:
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
        data, offsets, valid, paths = self._block(block)
        if valid is not None and not valid[row]:
            return self._without_bytes(int(index), paths.get(row)).data, int(self.labels[index])
        return data[offsets[row]:offsets[row + 1]].data, int(self.labels[index])

    def _without_bytes(self, index: int, path: Optional[str]) -> np.ndarray:
        """Row ``index``'s image where the row holds no bytes: the file it names instead (read now), else
        ``ValueError`` (a null image) naming the row."""
        if path is None:
            raise ValueError(f"{self.item_name(index)}: the image column '{self.image}' is empty (null)")
        try:
            return np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            raise ValueError(f"{self.item_name(index)}: the image column '{self.image}' holds no bytes but the path "
                             f"'{path}', which cannot be read ({exc.strerror or exc})") from None

    def _rows(self, indices: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """``indices`` as an int64 array and their labels; an index out of range raises its ``IndexError``."""
        rows = np.asarray(indices, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            self._where(int(rows[(rows < 0) | (rows >= len(self))][0]))  # raises its IndexError
        return rows, self.labels[rows].tolist()

    def _by_block(self, rows: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                             Optional[np.ndarray], dict[int, str], np.ndarray]]:
        """The samples ``rows`` (:meth:`_rows`) walked block by block (their blocks found in one search, each asked
        for once): per block ``(positions in rows, its data, the rows' starts, ends, which hold bytes (None: all),
        the paths of those that name a file instead (by position in rows), those rows)``."""
        blocks = self._blocks_of(rows)
        within = rows - self._starts[blocks]
        for block in np.unique(blocks).tolist():
            data, offsets, valid, paths = self._block(block)
            at = np.flatnonzero(blocks == block)
            mine = within[at]
            named = {j: paths[r] for j, r in enumerate(mine.tolist()) if r in paths} if paths else {}
            yield at, data, offsets[mine], offsets[mine + 1], None if valid is None else valid[mine], named, rows[at]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[memoryview, int]]:
        """The rows ``indices`` at once (torch's batched fetch; :meth:`_by_block`). A row :meth:`__getitem__` would
        refuse raises its error."""
        rows, labels = self._rows(indices)
        items: list[Any] = [None] * len(labels)
        for at, data, starts, ends, valid, named, mine in self._by_block(rows):
            for k, start, end in zip(at.tolist(), starts.tolist(), ends.tolist()):
                items[k] = (data[start:end].data, labels[k])
            for j in (np.flatnonzero(~valid).tolist() if valid is not None else []):
                items[at[j]] = (self._without_bytes(int(mine[j]), named.get(j)).data, labels[at[j]])
        return items

    def encoded_items(self, indices: Sequence[int]) -> list[Union[tuple[np.ndarray, int], Exception]]:
        """The rows ``indices`` as :class:`~dali_multicrop.sources.dataset.DatasetSource` takes encoded items, checked
        as it checks them (``diagnose_data(..., decode=False)``): ``(1-D uint8 view, label)`` each, or the row's
        error (a null image, bytes that are no image, a cut JPEG), named by :meth:`item_name`. Whole JPEGs are told
        apart for a whole block at once (:func:`~dali_multicrop.badsamples.diagnose.whole_jpegs`); only the other
        rows are checked one by one: the Python per row is a slice."""
        rows, labels = self._rows(indices)
        items: list[Any] = [None] * len(labels)
        for at, data, starts, ends, valid, named, mine in self._by_block(rows):
            whole = whole_jpegs(data, starts, ends)
            for k, start, end in zip(at.tolist(), starts.tolist(), ends.tolist()):
                items[k] = (data[start:end], labels[k])
            for j in np.flatnonzero(~whole).tolist():
                row, image = int(mine[j]), items[at[j]][0]
                if valid is not None and not valid[j]:
                    try:
                        image = self._without_bytes(row, named.get(j))
                    except ValueError as exc:
                        items[at[j]] = exc
                        continue
                    items[at[j]] = (image, labels[at[j]])
                problem = diagnose_named(image, lambda: self.item_name(row))
                if problem is not None:
                    items[at[j]] = problem
        return items

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


def _bytes_of(column: Any, name: str, where: str) -> Block:
    """An Arrow column of images (struct with ``bytes`` and maybe ``path``, or binary) as a :class:`Block`, without
    copying the bytes."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    paths: dict[int, str] = {}
    if pa.types.is_struct(column.type):
        field = column.type.get_field_index("bytes")
        if field < 0:
            raise ValueError(f"{where}: the image column '{name}' is a struct without a 'bytes' field "
                             f"(its fields: {', '.join(f.name for f in column.type)})")
        fields = column.flatten()  # null where the struct or its field is
        if column.type.get_field_index("path") >= 0 and fields[field].null_count:
            named = fields[column.type.get_field_index("path")]
            only = np.flatnonzero(~np.asarray(fields[field].is_valid()) & np.asarray(named.is_valid()))
            paths = dict(zip(only.tolist(), named.take(pa.array(only)).to_pylist()))
        column = fields[field]
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
    return Block(data, offsets.astype(np.int64), valid, paths)
