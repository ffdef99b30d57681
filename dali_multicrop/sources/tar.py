"""WebDataset tar shards as a source: shard lists and brace patterns, the samples' members, and the reader's epochs.

A shard is a ``.tar`` whose members group into samples by name (``a/b/x123.jpg`` + ``a/b/x123.cls``: sample
``a/b/x123``), as WebDataset writes them. Each sample holds one image (``jpg``, ``jpeg``, ``png``, ... any
case) and, for labels, a ``cls`` member with the class as decimal text. DALI's own reader
(``fn.readers.webdataset``) reads them; it needs an index file per shard (DALI's ``v1.2`` format): one found
beside the shard (``train-000.tar`` -> ``train-000.idx``) is used, otherwise one is made on the fly into a
cache folder, or ahead of time by ``dali-multicrop index-shards`` (:mod:`~dali_multicrop.sources.tar_index`).

Sample ``i`` (``batch.indices``) is the i-th sample of the shards in the order given (brace patterns expand
in order). Epochs: see :class:`TarShards` and ``docs/sources.md``.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..common.checks import check_int
from ..common.seeds import derive_seed
from .epochs import EpochPlan, ShardPlan
from . import s3
from .files import IMAGE_EXTENSIONS
from .tar_index import load_index, split_member

__all__ = ["READER_NAME", "TarMembers", "TarShards", "TarEpoch", "expand_shards", "pack_shards", "TAR_IMAGE_EXTENSIONS"]

TAR_IMAGE_EXTENSIONS: tuple[str, ...] = tuple(ext[1:] for ext in IMAGE_EXTENSIONS)
"""Member extensions taken as a sample's image (case-insensitive): the image files' extensions, without the dot."""

_LABEL_EXT = "cls"

READER_NAME = "tar_reader"
"""The webdataset reader's name in the graph: DALI's iterator reads the epoch's size and padding from it."""


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
        paths.extend(p if s3.is_s3(p) else os.path.expanduser(p) for p in braceexpand(text))
    return paths


def pack_shards(files: Sequence[str], labels: Optional[Sequence[int]], folder: Path, per_shard: int,
                digits: int = 6) -> list[Path]:
    """Packs image ``files`` in order into WebDataset shards ``folder/train-<s>.tar`` (``s`` with ``digits``
    digits), ``per_shard`` samples each: members ``<index>.<ext>`` (the file's bytes, ``index`` of 8 digits) and,
    with ``labels``, ``<index>.cls``; returns the shard paths. No index files (see
    :func:`~dali_multicrop.sources.tar_index.write_index`)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s, start in enumerate(range(0, len(files), per_shard)):
        path = folder / f"train-{s:0{digits}d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(start, min(start + per_shard, len(files))):
                members = [(Path(files[i]).suffix[1:].lower(), Path(files[i]).read_bytes())]
                if labels is not None:
                    members.append(("cls", str(labels[i]).encode()))
                for ext, payload in members:
                    info = tarfile.TarInfo(f"{i:08d}.{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
        paths.append(path)
    return paths


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
        from ..common.dali import dali_modules

        _, fn, _ = dali_modules()
        ext = [";".join(TAR_IMAGE_EXTENSIONS)] + ([_LABEL_EXT] if self.labelled else [])
        out = fn.readers.webdataset(paths=list(self.paths), index_paths=list(self.index_paths), ext=ext,
                                    shard_id=self.shard_id, num_shards=self.num_shards, pad_last_batch=True,
                                    random_shuffle=self.shuffle, initial_fill=self.initial_fill, seed=self.seed,
                                    case_sensitive_extensions=False, missing_component_behavior="error",
                                    name=READER_NAME)
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
    DALI pads a rank's range with its last sample (``pad_last_batch``) and DALI's iterator (given the reader's
    name) cuts it off, so each sample comes exactly once per epoch over all ranks, and a rank's last batches may be
    short or empty.
    ``drop_last=True`` keeps only full batches: each rank skips the tail of its own range.
    """

    def __init__(self, shards: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]], *,
                 index_dir: Optional[str] = None, initial_fill: int = 1024) -> None:
        self.initial_fill = check_int("initial_fill", initial_fill, 1)
        self.paths = tuple(expand_shards(shards))
        missing = [p for p in self.paths if not s3.is_s3(p) and not os.path.isfile(p)]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ValueError(f"tar shard '{missing[0]}' does not exist{more}")
        self._shard_of = {p: s for s, p in enumerate(self.paths)}
        if len(self._shard_of) != len(self.paths):  # before indexing: two threads would write one index file
            raise ValueError("the same tar shard is listed twice; each shard once")
        s3.check_objects([p for p in self.paths if s3.is_s3(p)])
        index_paths, counts, offsets, labelled, sizes, labels_at = [], [], [], [], [], []
        indexes = s3.map_requests(lambda shard: load_index(shard, index_dir), self.paths,  # a round trip per shard
                                  parallel=any(s3.is_s3(p) for p in self.paths))
        for shard, (path, samples) in zip(self.paths, indexes):
            index_paths.append(path)
            counts.append(len(samples))
            image, has_label, size, label_at = [], [], [], []
            for members in samples:
                exts = {ext.lower(): (offset, length) for ext, offset, length, _ in members}
                found = [exts[e] for e in TAR_IMAGE_EXTENSIONS if e in exts]
                if not found:
                    raise ValueError(f"tar shard '{shard}': sample '{split_member(members[0][3])[0]}' has no image "
                                     f"member (found {', '.join(sorted(exts))}; expected one of "
                                     f"{', '.join(TAR_IMAGE_EXTENSIONS)})")
                if len(found) > 1:
                    raise ValueError(f"tar shard '{shard}': sample '{split_member(members[0][3])[0]}' has "
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
        self.classes: tuple[str, ...] = ()
        self.info_bytes = max(len(p) for p in self.paths) + 2 + max(
            len(str(int(o.max()))) for o in offsets) + 256
        """Bytes that hold any sample's DALI source info (``path:offset:member``), member names up to 255."""

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __repr__(self) -> str:
        return f"TarShards({len(self.paths)} shards, {len(self)} samples)"

    def epoch_plan(self, plan: ShardPlan, epoch: int) -> EpochPlan:
        """Rank ``plan.shard_id``'s batches of ``epoch`` and the reader's settings for it (see the class's epoch
        rules): the rank's range in full batches, the last short, then empty ones up to ``len(plan)`` (the same
        on every rank); with ``drop_last``, full batches only."""
        order = np.arange(len(self.paths))
        if plan.shuffle:
            order = np.random.default_rng(derive_seed(plan.seed, epoch, 0x7A5)).permutation(len(self.paths))
        reader = TarEpoch(paths=tuple(self.paths[i] for i in order),
                          index_paths=tuple(self.index_paths[i] for i in order), shard_id=plan.shard_id,
                          num_shards=plan.num_shards, shuffle=plan.shuffle,
                          seed=derive_seed(plan.seed, epoch, plan.shard_id, 0xB0F), initial_fill=self.initial_fill,
                          labelled=self.labelled, info_bytes=self.info_bytes)
        left, size = self.range_size(plan.shard_id, plan.num_shards), plan.batch_size
        sizes = tuple(min(size, max(0, left - j * size)) for j in range(len(plan)))
        return EpochPlan(epoch=epoch, sizes=sizes, reader=reader, batch_size=size, drop_last=plan.drop_last)

    def range_size(self, shard_id: int, num_shards: int) -> int:
        """Samples rank ``shard_id`` of ``num_shards`` reads per epoch (DALI's split by samples)."""
        n = len(self)
        return n * (shard_id + 1) // num_shards - n * shard_id // num_shards

    def sample_ids(self, info: Any, label_text: Optional[Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, labels)`` int64 of a batch from the reader's side outputs: each sample's source info and its
        label member's text (zero-padded byte rows, ``[B, bytes]`` arrays; ``label_text`` None without labels)."""
        infos = [row.tobytes().rstrip(b"\0") for row in np.asarray(info)]
        indices = np.array([self.index_of(i) for i in infos], dtype=np.int64)
        labels = np.zeros(len(infos), dtype=np.int64)
        for k, row in enumerate(np.asarray(label_text) if label_text is not None else ()):
            text = row.tobytes().rstrip(b"\0").strip()
            if not text.isdigit():
                raise ValueError(f"the label ('cls' member) of tar sample {infos[k].decode(errors='replace')} is "
                                 f"{text[:40]!r}, not a class number >= 0")
            labels[k] = int(text)
        return indices, labels

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
        _, samples = load_index(self.paths[shard], self._index_dir)
        offset = int(self._offsets[shard][row])
        name = next((n for _, o, _, n in samples[row] if o == offset), samples[row][0][3])
        return f"{self.paths[shard]}:{name}"


class TarMembers:
    """The samples of local tar shards read by the loader itself, as a map-style dataset of ``(encoded image
    bytes, label)`` (``os.pread`` at the offsets the index files give): the path ``on_error="skip"`` takes, where a
    bad sample can be replaced in its batch, which DALI's reader cannot do. Item ``i`` is sample ``i`` of the
    shards (the same numbering as ``batch.indices`` from the reader)."""

    def __init__(self, shards: TarShards) -> None:
        remote = [p for p in shards.paths if s3.is_s3(p)]
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
