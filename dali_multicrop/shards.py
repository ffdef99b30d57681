"""WebDataset tar shards as a source: shard lists and brace patterns, DALI index files, and the reader's epochs.

A shard is a ``.tar`` whose members group into samples by name (``a/b/x123.jpg`` + ``a/b/x123.cls``: sample
``a/b/x123``), as WebDataset writes them. Each sample holds one image (``jpg``, ``jpeg``, ``png``, ... any
case) and, for labels, a ``cls`` member with the class as decimal text. DALI's own reader
(``fn.readers.webdataset``) reads them; it needs an index file per shard (DALI's ``v1.2`` format): one found
beside the shard (``train-000.tar`` -> ``train-000.idx``) is used, otherwise one is made on the fly into a
cache folder, or ahead of time by ``dali-multicrop index-shards``.

Sample ``i`` (``batch.indices``) is the i-th sample of the shards in the order given (brace patterns expand
in order). Epochs: see :class:`TarShards` and ``docs/sources.md``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import storage
from .sample_data import default_cache_dir
from .sharding import derive_seed

__all__ = ["TarMembers", "TarShards", "TarEpoch", "expand_shards", "index_path_for", "write_index", "INDEX_VERSION",
           "TAR_IMAGE_EXTENSIONS"]

INDEX_VERSION = "v1.2"
"""The index format DALI's webdataset reader reads (``<ext> <data offset> <size> <member name>`` per member)."""

TAR_IMAGE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "ppm", "pgm")
"""Member extensions taken as a sample's image (case-insensitive)."""

_LABEL_EXT = "cls"


def expand_shards(shards: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]) -> list[str]:
    """Shard paths from a path, a brace pattern (``train-{000000..000127}.tar``, ``{a,b}.tar``) or a list of
    either, in order; a pattern with nothing to expand stays one path."""
    from braceexpand import braceexpand

    items = [shards] if isinstance(shards, (str, os.PathLike)) else list(shards)
    if not items:
        raise ValueError("the list of tar shards is empty")
    paths: list[str] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise ValueError(f"a tar shard must be a path or a brace pattern, got {item!r}")
        text = os.fspath(item)
        if text.count("{") != text.count("}"):
            raise ValueError(f"shard pattern '{text}' has unbalanced braces (expected e.g. train-{{000..127}}.tar)")
        paths.extend(p if storage.is_s3(p) else os.path.expanduser(p) for p in braceexpand(text))
    return paths


def index_path_for(shard: str) -> str:
    """Where the index of ``shard`` is looked for: beside it, the name up to its first dot + ``.idx``
    (DALI's ``wds2idx`` convention: ``train-000.tar`` -> ``train-000.idx``)."""
    head, name = shard.rsplit("/", 1) if "/" in shard else ("", shard)
    stem = name.split(".", 1)[0] if not name.startswith(".") else name
    return f"{head}/{stem}.idx" if head else f"{stem}.idx"


def _split_member(name: str) -> tuple[str, str]:
    """``(sample key, extension)``: the extension is everything after the first dot of the base name."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    return (name, "") if dot < 0 else (name[:dot], name[dot + 1:])


def _scan_tar(fileobj: Any, shard: str, size: Optional[int]) -> list[list[tuple[str, int, int, str]]]:
    """Samples of a tar stream: per sample its members ``(ext, data offset, size, name)``, in stored order."""
    samples: list[list[tuple[str, int, int, str]]] = []
    last = None
    end = 0  # where the last member's data blocks end
    try:
        with tarfile.open(fileobj=fileobj, mode="r|") as tar:
            for member in tar:
                end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                if not member.isreg():
                    continue
                key, ext = _split_member(member.name)
                base = key.rsplit("/", 1)[-1]
                if not base or base.startswith("."):
                    continue
                if size is not None and member.offset_data + member.size > size:
                    raise ValueError(f"tar shard '{shard}' is truncated: member '{member.name}' ends at byte "
                                     f"{member.offset_data + member.size}, past the end of the file ({size} bytes)")
                entry = (ext, member.offset_data, member.size, member.name)
                if key != last:
                    samples.append([entry])
                    last = key
                else:
                    samples[-1].append(entry)
    except tarfile.TarError as exc:
        raise ValueError(f"tar shard '{shard}' cannot be read as a tar archive ({exc}): truncated or not a tar "
                         f"file") from None
    if size is not None and end + 2 * tarfile.BLOCKSIZE > size:
        raise ValueError(f"tar shard '{shard}' is truncated: it stops after {end} of its bytes without the "
                         f"end-of-archive blocks every tar writer adds (copy it again)")
    if not samples:
        raise ValueError(f"tar shard '{shard}' holds no samples")
    return samples


def _format_index(samples: list[list[tuple[str, int, int, str]]]) -> str:
    lines = [f"{INDEX_VERSION} {len(samples)}"]
    lines += [" ".join(f"{ext} {offset} {size} {name}" for ext, offset, size, name in members)
              for members in samples]
    return "\n".join(lines) + "\n"


def _parse_index(text: str, where: str) -> list[list[tuple[str, int, int, str]]]:
    lines = text.splitlines()
    head = lines[0].split() if lines else []
    if len(head) != 2 or head[0] != INDEX_VERSION or not head[1].isdigit():
        raise ValueError(f"index file '{where}' is not a {INDEX_VERSION} webdataset index (first line "
                         f"{lines[0][:40] if lines else ''!r}); re-create it with `dali-multicrop index-shards`")
    samples = []
    for n, line in enumerate(lines[1:], 2):
        parts = line.split()
        if not parts:
            continue
        if len(parts) % 4:
            raise ValueError(f"index file '{where}' line {n} is not '<ext> <offset> <size> <name> ...': {line[:80]!r}")
        try:
            samples.append([(parts[i], int(parts[i + 1]), int(parts[i + 2]), parts[i + 3])
                            for i in range(0, len(parts), 4)])
        except ValueError:
            raise ValueError(f"index file '{where}' line {n} has a non-numeric offset or size: {line[:80]!r}") from None
    if len(samples) != int(head[1]):
        raise ValueError(f"index file '{where}' announces {head[1]} samples but lists {len(samples)}: it is "
                         f"truncated; re-create it with `dali-multicrop index-shards`")
    return samples


def write_index(shard: str, index: Optional[str] = None) -> str:
    """Scans ``shard`` (local or ``s3://``) and writes its DALI index to ``index`` (default
    :func:`index_path_for`); returns the index path."""
    index = index or index_path_for(shard)
    text = _format_index(_scan(shard))
    if storage.is_s3(index):
        storage.write_bytes(index, text.encode())
    else:
        Path(index).write_text(text)
    return index


def _scan(shard: str) -> list[list[tuple[str, int, int, str]]]:
    if storage.is_s3(shard):
        body, size = storage.open_stream(shard)
        with body:
            return _scan_tar(body, shard, size)
    if not os.path.isfile(shard):
        raise ValueError(f"tar shard '{shard}' does not exist")
    with open(shard, "rb") as f:
        return _scan_tar(f, shard, os.path.getsize(shard))


def _load_index(shard: str, index_dir: Optional[str]) -> tuple[str, list[list[tuple[str, int, int, str]]]]:
    """``(index path, samples)`` of ``shard``: its index beside it or in ``index_dir`` if there, else one made
    now into ``index_dir`` (default the user cache, keyed on the shard's path, size and time)."""
    name = index_path_for(shard).rsplit("/", 1)[-1]
    candidates = ([f"{index_dir.rstrip('/')}/{name}"] if index_dir else []) + [index_path_for(shard)]
    for path in candidates:
        text = storage.read_text_if_exists(path)
        if text is not None:
            return path, _parse_index(text, path)
    if storage.is_s3(shard):
        size, stamp = storage.object_size(shard), ""
    else:  # TarShards checked that every shard exists
        stat = os.stat(shard)
        size, stamp = stat.st_size, str(stat.st_mtime_ns)
    key = hashlib.sha1(f"{os.path.abspath(shard) if not storage.is_s3(shard) else shard}|{size}|{stamp}"
                       .encode()).hexdigest()[:16]
    folder = Path(index_dir) if index_dir and not storage.is_s3(index_dir) else default_cache_dir() / "wds-index"
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / f"{key}-{name}")
    if os.path.isfile(path):
        return path, _parse_index(Path(path).read_text(), path)
    samples = _scan(shard)
    tmp = f"{path}.{os.getpid()}.tmp"
    Path(tmp).write_text(_format_index(samples))
    os.replace(tmp, path)  # atomic: ranks indexing the same shard at once never read half a file
    return path, samples


@dataclass(frozen=True)
class TarEpoch:
    """What DALI's webdataset reader reads in one epoch on one rank: the shards in this epoch's order, the
    rank's contiguous range of samples of their concatenation, shuffled in a buffer of ``initial_fill``."""

    paths: tuple[str, ...]
    index_paths: tuple[str, ...]
    shard_id: int
    num_shards: int
    shuffle: bool
    seed: int
    initial_fill: int
    labelled: bool
    info_bytes: int

    def nodes(self) -> tuple[Any, Any]:
        """The reader in a pipeline: ``(encoded image, label text)`` (label text ``None`` without labels)."""
        from ._dali import dali_modules

        _, fn, _ = dali_modules()
        ext = [";".join(TAR_IMAGE_EXTENSIONS)] + ([_LABEL_EXT] if self.labelled else [])
        out = fn.readers.webdataset(paths=list(self.paths), index_paths=list(self.index_paths), ext=ext,
                                    shard_id=self.shard_id, num_shards=self.num_shards, pad_last_batch=True,
                                    random_shuffle=self.shuffle, initial_fill=self.initial_fill, seed=self.seed,
                                    case_sensitive_extensions=False, missing_component_behavior="error",
                                    name="tar_reader")
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        return out[0], (out[1] if self.labelled else None)


class TarShards:
    """WebDataset tar shards (local paths or ``s3://``), read by DALI's webdataset reader.

    Args:
        shards: a path, a brace pattern (``"shards/train-{000000..000127}.tar"``) or a list of either.
        index_dir: where index files are looked for (before beside each shard) and made when missing; default
            the user cache (``$DALI_MULTICROP_CACHE`` or ``~/.cache/dali-multicrop``).
        initial_fill: samples in the reader's shuffle buffer (DALI's ``initial_fill``). Default 1024.

    Epochs (``shuffle=True``): every rank puts the shards in the same order, a permutation keyed on
    ``(seed, epoch)``; rank ``k`` of ``S`` reads samples ``[floor(N*k/S), floor(N*(k+1)/S))`` of their
    concatenation (DALI shards by samples, so ranks get ``floor(N/S)`` or ``ceil(N/S)``), through a shuffle
    buffer seeded by ``(seed, epoch, k)``. Every rank runs the same number of batches (the loader's ``len``);
    DALI pads a rank's range with its last sample (``pad_last_batch``) and the loader drops that padding, so each
    sample comes exactly once per epoch over all ranks, and a rank's last batches may be short or empty.
    ``drop_last=True`` keeps only full batches: each rank skips the tail of its own range.
    """

    def __init__(self, shards: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]], *,
                 index_dir: Optional[str] = None, initial_fill: int = 1024) -> None:
        from ._checks import check_int

        self.initial_fill = check_int("initial_fill", initial_fill, 1)
        self.paths = tuple(expand_shards(shards))
        missing = [p for p in self.paths if not storage.is_s3(p) and not os.path.isfile(p)]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ValueError(f"tar shard '{missing[0]}' does not exist{more}")
        storage.check_objects([p for p in self.paths if storage.is_s3(p)])
        index_paths, counts, offsets, labelled, sizes, labels_at = [], [], [], [], [], []
        for shard in self.paths:
            path, samples = _load_index(shard, index_dir)
            index_paths.append(path)
            counts.append(len(samples))
            image, has_label, size, label_at = [], [], [], []
            for members in samples:
                exts = {ext.lower(): (offset, length) for ext, offset, length, _ in members}
                found = [exts[e] for e in TAR_IMAGE_EXTENSIONS if e in exts]
                if not found:
                    raise ValueError(f"tar shard '{shard}': sample '{_split_member(members[0][3])[0]}' has no image "
                                     f"member (found {', '.join(sorted(exts))}; expected one of "
                                     f"{', '.join(TAR_IMAGE_EXTENSIONS)})")
                if len(found) > 1:
                    raise ValueError(f"tar shard '{shard}': sample '{_split_member(members[0][3])[0]}' has "
                                     f"{len(found)} image members; keep one per sample")
                image.append(found[0][0])
                size.append(found[0][1])
                has_label.append(_LABEL_EXT in exts)
                label_at.append(exts.get(_LABEL_EXT, (0, 0)))
            offsets.append(np.asarray(image, dtype=np.int64))
            sizes.append(np.asarray(size, dtype=np.int64))
            labels_at.append(np.asarray(label_at, dtype=np.int64).reshape(-1, 2))
            labelled.append(has_label)
        flat = [flag for flags in labelled for flag in flags]
        self.labelled = all(flat)
        """True when every sample has a ``cls`` member (labels read from it); False when none has (labels 0)."""
        if any(flat) and not self.labelled:
            s, j = next((s, j) for s, flags in enumerate(labelled) for j, flag in enumerate(flags) if not flag)
            raise ValueError(f"tar shard '{self.paths[s]}': sample {j} has no '{_LABEL_EXT}' member while other "
                             f"samples have one; give every sample its label or none")
        self.index_paths = tuple(index_paths)
        self.counts = tuple(counts)
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._offsets = offsets
        self._sizes = sizes
        self._labels_at = labels_at
        self._index_dir = index_dir
        self._shard_of = {p: s for s, p in enumerate(self.paths)}
        if len(self._shard_of) != len(self.paths):
            raise ValueError("the same tar shard is listed twice; each shard once")
        self.classes: tuple[str, ...] = ()
        self.info_bytes = max(len(p) for p in self.paths) + 2 + max(
            len(str(int(o.max()))) for o in offsets) + 256
        """Bytes that hold any sample's DALI source info (``path:offset:member``), member names up to 255."""

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __repr__(self) -> str:
        return f"TarShards({len(self.paths)} shards, {len(self)} samples)"

    def epoch(self, epoch: int, shard_id: int, num_shards: int, shuffle: bool, seed: int) -> TarEpoch:
        """The reader's settings for ``epoch`` on rank ``shard_id`` (see the class's epoch rules)."""
        order = np.arange(len(self.paths))
        if shuffle:
            order = np.random.default_rng(derive_seed(seed, epoch, 0x7A5)).permutation(len(self.paths))
        return TarEpoch(paths=tuple(self.paths[i] for i in order),
                        index_paths=tuple(self.index_paths[i] for i in order), shard_id=shard_id,
                        num_shards=num_shards, shuffle=shuffle, seed=derive_seed(seed, epoch, shard_id, 0xB0F),
                        initial_fill=self.initial_fill, labelled=self.labelled,
                        info_bytes=self.info_bytes)

    def range_size(self, shard_id: int, num_shards: int) -> int:
        """Samples rank ``shard_id`` of ``num_shards`` reads per epoch (DALI's split by samples)."""
        n = len(self)
        return n * (shard_id + 1) // num_shards - n * shard_id // num_shards

    _INFO = re.compile(rb":(\d+):")

    def index_of(self, info: bytes) -> int:
        """The sample index of a DALI source-info string ``path:offset:member``."""
        match = self._INFO.search(info, info.find(b"://") + 3 if b"://" in info else 0)
        shard = self._shard_of.get(info[:match.start()].decode()) if match else None
        if shard is None:
            raise RuntimeError(f"DALI's webdataset reader returned a sample this source does not list: {info!r}")
        offset = int(match.group(1))
        row = int(np.searchsorted(self._offsets[shard], offset))
        if row >= self.counts[shard] or self._offsets[shard][row] != offset:
            raise RuntimeError(f"no sample of tar shard '{self.paths[shard]}' starts at byte {offset} ({info!r}): "
                               f"is its index file stale? re-create it with `dali-multicrop index-shards`")
        return int(self._starts[shard]) + row

    def locate(self, index: int) -> tuple[int, int]:
        """``(shard number, row in that shard)`` of sample ``index``."""
        shard = int(np.searchsorted(self._starts, index, side="right")) - 1
        return shard, index - int(self._starts[shard])

    def member(self, index: int) -> tuple[str, int, int, int, int]:
        """Where sample ``index`` lies: ``(shard path, image offset, image size, label offset, label size)``
        (label size 0 without labels)."""
        shard, row = self.locate(index)
        label_offset, label_size = self._labels_at[shard][row]
        return (self.paths[shard], int(self._offsets[shard][row]), int(self._sizes[shard][row]), int(label_offset),
                int(label_size))

    def member_name(self, index: int) -> str:
        """``shard.tar:member`` of sample ``index``'s image (read again from the index: for error messages)."""
        shard, row = self.locate(index)
        _, samples = _load_index(self.paths[shard], self._index_dir)
        offset = int(self._offsets[shard][row])
        name = next((n for _, o, _, n in samples[row] if o == offset), samples[row][0][3])
        return f"{self.paths[shard]}:{name}"


class TarMembers:
    """The samples of local tar shards read by the loader itself, as a map-style dataset of ``(encoded image
    bytes, label)`` (``os.pread`` at the offsets the index files give): the path ``on_error="skip"`` takes, where a
    bad sample can be replaced in its batch, which DALI's reader cannot do. Item ``i`` is sample ``i`` of the
    shards (the same numbering as ``batch.indices`` from the reader)."""

    def __init__(self, shards: TarShards) -> None:
        remote = [p for p in shards.paths if storage.is_s3(p)]
        if remote:
            raise ValueError(f"on_error='skip' reads tar shards itself, from local files only; '{remote[0]}' is in "
                             f"object storage (use on_error='raise', or copy the shards to local disk)")
        self.shards = shards
        self._files: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.shards)

    def _fd(self, path: str) -> int:
        fd = self._files.get(path)
        if fd is None:
            with self._lock:  # the loader's fetch threads share the open files (pread needs no position)
                fd = self._files.get(path)
                if fd is None:
                    fd = self._files[path] = os.open(path, os.O_RDONLY)
        return fd

    def __getitem__(self, index: int) -> tuple[bytes, int]:
        path, offset, size, label_offset, label_size = self.shards.member(int(index))
        data = os.pread(self._fd(path), size, offset)
        if len(data) != size:
            raise ValueError(f"tar shard '{path}' ends before its sample at byte {offset} ({len(data)} of {size} "
                             f"bytes): truncated since it was indexed?")
        if not label_size:
            return data, 0
        text = os.pread(self._fd(path), label_size, label_offset).strip()
        if not text.isdigit():
            raise ValueError(f"the label ('cls' member) of {self.item_name(index)} is {text[:40]!r}, not a class "
                             f"number >= 0")
        return data, int(text)

    def item_name(self, index: int) -> str:
        """How errors and ``loader.skipped`` name sample ``index``: ``shard.tar:member``."""
        return self.shards.member_name(int(index))

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
