"""Image files as a source: an image-folder tree (local or ``s3://``) or an explicit list of files with labels.

``files[i]`` is the path of sample ``i`` (``batch.indices``), ``labels[i]`` its class; the graph reads and decodes
the files (``fn.io.file.read``, in DALI's threads).
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..common.checks import check_int
from . import s3

__all__ = ["FileList", "IMAGE_EXTENSIONS", "encode_paths", "is_image"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""File name endings taken as images when listing a folder (case-insensitive, as torchvision)."""


_FS_ENCODING = sys.getfilesystemencoding()  # os.fsencode's rule (with surrogateescape), without its per-call checks


def encode_paths(paths: Sequence[str]) -> np.ndarray:
    """File paths as one uint8 array ``[N, L]`` for ``fn.io.file.read``: each row a path's bytes as the OS spells
    it (``os.fsencode``'s rule), NUL-padded to the longest. One array, not one per path: DALI converts a list of
    per-sample arrays one sample at a time, under the GIL (about 2 ms per batch of 256 paths, measured), an array at
    once."""
    return np.array([p.encode(_FS_ENCODING, "surrogateescape") for p in paths]).view(np.uint8).reshape(len(paths), -1)


def is_image(name: str) -> bool:
    """True for a file name ending in one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _images_under(folder: str) -> list[str]:
    """Every image below ``folder`` (recursively, following links), sorted by path."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if is_image(f))
    return found


@dataclass(frozen=True)
class FileList:
    """Samples as parallel tuples: ``files`` (paths) and ``labels`` (class ids >= 0).

    ``classes[k]`` names class ``k`` where it is known (folders), else it is empty.
    """

    files: tuple[str, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(str(f) for f in self.files))
        object.__setattr__(self, "labels", tuple(check_int(f"label of '{path}'", label, 0)
                                                for path, label in zip(self.files, self.labels)))
        if len(self.files) != len(self.labels):
            raise ValueError(f"FileList has {len(self.files)} files but {len(self.labels)} labels; "
                             f"they must match one to one")
        if not self.files:
            raise ValueError("FileList is empty: the dataset has no samples")

    def __len__(self) -> int:
        return len(self.files)

    @functools.cached_property
    def path_bytes(self) -> np.ndarray:
        """Every path as the graph's file reader takes it (:func:`encode_paths`): uint8 ``[N, L]``, made on first
        use, so that a batch's paths are one gather (``path_bytes[indices]``) instead of a Python step per sample.
        Costs ``N * L`` bytes, ``L`` the longest path's (ImageNet's 1.28M paths of about 60 bytes: about 80 MB)."""
        return encode_paths(self.files)

    @classmethod
    def from_folder(cls, root: Union[str, os.PathLike]) -> "FileList":
        """Lists an image-folder tree as torchvision's ``ImageFolder`` does.

        ``root/<class>/**/<image>``: classes are the sub-folders sorted by name (label = position), files are
        sorted within each class; a class folder without images is an error. A folder with images but no
        class sub-folders is one class, label 0.
        """
        if s3.is_s3(str(root)):
            return cls._from_s3_folder(str(root))
        path = Path(root).expanduser()
        if not path.exists():
            raise ValueError(f"image folder '{root}' does not exist")
        if not path.is_dir():
            raise ValueError(f"image folder '{root}' is not a folder")
        class_dirs = sorted(e.name for e in os.scandir(path) if e.is_dir())
        files: list[str] = []
        labels: list[int] = []
        classes: list[str] = []
        empty: list[str] = []
        for name in class_dirs:
            found = _images_under(str(path / name))
            if not found:
                empty.append(name)
            labels.extend([len(classes)] * len(found))
            classes.append(name)
            files.extend(found)
        if files and empty:
            raise ValueError(f"class folder(s) {', '.join(repr(e) for e in empty)} in image folder '{root}' hold no "
                             f"images; remove them or add images (labels follow the sorted class folders, as "
                             f"torchvision's ImageFolder, which refuses them too)")
        if not files:
            files = sorted(str(path / e.name) for e in os.scandir(path) if e.is_file() and is_image(e.name))
            labels = [0] * len(files)
            classes = [path.name]
        if not files:
            raise ValueError(f"image folder '{root}' holds no images (looked for {', '.join(IMAGE_EXTENSIONS)} "
                             f"in its class sub-folders and in the folder itself)")
        return cls(tuple(files), tuple(labels), tuple(classes))

    @classmethod
    def _from_s3_folder(cls, root: str) -> "FileList":
        """``from_folder`` for ``s3://bucket/prefix``: the same class rule over the objects' keys."""
        base = root.rstrip("/") + "/"
        images = [url for url in s3.list_keys(root) if is_image(url)]
        by_class: dict[str, list[str]] = {}
        loose: list[str] = []
        for url in images:
            rest = url[len(base):]
            if "/" in rest:
                by_class.setdefault(rest.split("/", 1)[0], []).append(url)
            else:
                loose.append(url)
        if not images:
            raise ValueError(f"'{root}' holds no images (looked for {', '.join(IMAGE_EXTENSIONS)} below it)")
        if not by_class:
            return cls(tuple(loose), (0,) * len(loose), (base.rstrip("/").rsplit("/", 1)[-1],))
        names = sorted(by_class)
        files = [url for name in names for url in by_class[name]]
        labels = [k for k, name in enumerate(names) for _ in by_class[name]]
        return cls(tuple(files), tuple(labels), tuple(names))

    @classmethod
    def from_torchvision(cls, dataset: Any) -> Optional["FileList"]:
        """A torchvision ``ImageFolder`` (a ``DatasetFolder``) built without transforms and with its default image
        loader, as the files it lists (``dataset.samples``, in its order, and its ``classes``): DALI then reads and
        decodes them (on the GPU for ``device="gpu"``) rather than PIL in threads. None for any other dataset (one
        with a transform, a loader of its own or another kind), which stays a ``DatasetSource``."""
        if not type(dataset).__module__.startswith("torchvision.datasets") or not hasattr(dataset, "samples"):
            return None
        from torchvision.datasets.folder import DatasetFolder, accimage_loader, default_loader, pil_loader

        plain = all(getattr(dataset, name, None) is None for name in ("transform", "target_transform", "transforms"))
        if not (isinstance(dataset, DatasetFolder) and plain
                and dataset.loader in (default_loader, pil_loader, accimage_loader)):
            return None
        return cls(tuple(str(path) for path, _ in dataset.samples), tuple(int(y) for _, y in dataset.samples),
                   tuple(dataset.classes))

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[Union[str, os.PathLike], int]]) -> "FileList":
        """Builds a list from ``(path, label)`` pairs; every path must be an existing file."""
        items = list(pairs)
        if not items:
            raise ValueError("the list of files is empty: the dataset has no samples")
        files, labels = [], []
        for item in items:
            try:
                path, label = item
            except (TypeError, ValueError):
                raise ValueError(f"each entry of the file list must be a (path, label) pair, got {item!r}") from None
            path = os.fspath(path)
            if not s3.is_s3(path):
                path = os.path.expanduser(path)
                if not os.path.isfile(path):
                    raise ValueError(f"image file '{path}' does not exist")
            files.append(path)
            labels.append(label)
        remote = [f for f in files if s3.is_s3(f)]
        s3.check_objects(remote[:1])  # endpoint, bucket and the first object; not a request per file
        return cls(tuple(files), tuple(labels))
