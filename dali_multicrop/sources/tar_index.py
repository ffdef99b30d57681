"""The index files of WebDataset tar shards, in DALI's ``v1.2`` format: where they lie, how they are made (a scan of
the shard, checked for truncation) and read, and the cache of those made on the fly.

One line per sample: ``<ext> <data offset> <size> <member name>`` for each of its members; the first line is
``v1.2 <samples>``. DALI's webdataset reader takes them as ``index_paths``; :class:`~dali_multicrop.TarShards`
reads them too (each sample's image and label offsets).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path
from typing import Any, Optional

from ..common.system import cache_dir
from . import s3

__all__ = ["INDEX_VERSION", "Member", "index_path_for", "load_index", "split_member", "write_index"]

INDEX_VERSION = "v1.2"
"""The index format DALI's webdataset reader reads (``<ext> <data offset> <size> <member name>`` per member)."""

Member = tuple[str, int, int, str]
"""One member of a sample: ``(extension, data offset, size, name)``; offsets and sizes in bytes."""


def index_path_for(shard: str, folder: Optional[str] = None) -> str:
    """Where the index of ``shard`` lies: the shard's name up to its first dot + ``.idx`` (DALI's ``wds2idx``
    convention: ``train-000.tar`` -> ``train-000.idx``), beside the shard or, given, in ``folder`` (a path or an
    ``s3://`` prefix)."""
    head, name = shard.rsplit("/", 1) if "/" in shard else ("", shard)
    stem = name.split(".", 1)[0] if not name.startswith(".") else name
    if folder is not None:
        head = folder.rstrip("/")
    return f"{head}/{stem}.idx" if head else f"{stem}.idx"


def split_member(name: str) -> tuple[str, str]:
    """``(sample key, extension)``: the extension is everything after the first dot of the base name."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    return (name, "") if dot < 0 else (name[:dot], name[dot + 1:])


def _scan_tar(fileobj: Any, shard: str, size: Optional[int]) -> list[list[Member]]:
    """Samples of a tar stream: per sample its members ``(ext, data offset, size, name)``, in stored order."""
    samples: list[list[Member]] = []
    last = None
    end = 0  # where the last member's data blocks end
    try:
        with tarfile.open(fileobj=fileobj, mode="r|") as tar:
            for member in tar:
                end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                if not member.isreg():
                    continue
                key, ext = split_member(member.name)
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


def _format_index(samples: list[list[Member]]) -> str:
    lines = [f"{INDEX_VERSION} {len(samples)}"]
    lines += [" ".join(f"{ext} {offset} {size} {name}" for ext, offset, size, name in members)
              for members in samples]
    return "\n".join(lines) + "\n"


def _parse_index(text: str, where: str) -> list[list[Member]]:
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
    if s3.is_s3(index):
        s3.write_bytes(index, text.encode())
    else:
        Path(index).write_text(text)
    return index


def _scan(shard: str) -> list[list[Member]]:
    if s3.is_s3(shard):
        body, size = s3.open_stream(shard)
        with body:
            return _scan_tar(body, shard, size)
    if not os.path.isfile(shard):
        raise ValueError(f"tar shard '{shard}' does not exist")
    with open(shard, "rb") as f:
        return _scan_tar(f, shard, os.path.getsize(shard))


def load_index(shard: str, index_dir: Optional[str]) -> tuple[str, list[list[Member]]]:
    """``(index path, samples)`` of ``shard``: its index beside it or in ``index_dir`` if there, else one made
    now into ``index_dir`` (default the user cache, keyed on the shard's path, size and time)."""
    candidates = ([index_path_for(shard, index_dir)] if index_dir else []) + [index_path_for(shard)]
    for path in candidates:
        text = s3.read_text_if_exists(path)
        if text is not None:
            return path, _parse_index(text, path)
    if s3.is_s3(shard):
        size, stamp = s3.object_size(shard), ""
    else:  # TarShards checked that every shard exists
        stat = os.stat(shard)
        size, stamp = stat.st_size, str(stat.st_mtime_ns)
    key = hashlib.sha1(f"{os.path.abspath(shard) if not s3.is_s3(shard) else shard}|{size}|{stamp}"
                       .encode()).hexdigest()[:16]
    folder = Path(index_dir) if index_dir and not s3.is_s3(index_dir) else cache_dir() / "wds-index"
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / f"{key}-{index_path_for(shard).rsplit('/', 1)[-1]}")
    if os.path.isfile(path):
        return path, _parse_index(Path(path).read_text(), path)
    samples = _scan(shard)
    tmp = f"{path}.{os.getpid()}.tmp"
    Path(tmp).write_text(_format_index(samples))
    os.replace(tmp, path)  # atomic: ranks indexing the same shard at once never read half a file
    return path, samples
