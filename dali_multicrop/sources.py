"""Where samples come from: an image-folder tree, an explicit list of files with labels (local or ``s3://``),
images in memory, or tar shards (:mod:`dali_multicrop.shards`).

A source is a :class:`FileList` (``files[i]`` is the path of sample ``i``, ``labels[i]`` its class; the graph
reads and decodes the files) or an :class:`ArraySource` (decoded uint8 images in memory, e.g. CIFAR: the graph
starts from the pixels). Sample indices returned by the loader (``batch.indices``) are positions in it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from . import storage
from ._checks import check_int

__all__ = ["ArraySource", "FileList", "IMAGE_EXTENSIONS", "resolve_source"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""File name endings taken as images when listing a folder (case-insensitive, as torchvision)."""


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _images_under(folder: str) -> list[str]:
    """Every image below ``folder`` (recursively, following links), sorted by path."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if _is_image(f))
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

    @classmethod
    def from_folder(cls, root: Union[str, os.PathLike]) -> "FileList":
        """Lists an image-folder tree as torchvision's ``ImageFolder`` does.

        ``root/<class>/**/<image>``: classes are the sub-folders sorted by name (label = position), files are
        sorted within each class; a class folder without images is an error. A folder with images but no
        class sub-folders is one class, label 0.
        """
        if storage.is_s3(str(root)):
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
            files = sorted(str(path / e.name) for e in os.scandir(path) if e.is_file() and _is_image(e.name))
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
        images = [url for url in storage.list_keys(root) if _is_image(url)]
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
            if not storage.is_s3(path):
                path = os.path.expanduser(path)
                if not os.path.isfile(path):
                    raise ValueError(f"image file '{path}' does not exist")
            files.append(path)
            labels.append(label)
        remote = [f for f in files if storage.is_s3(f)]
        storage.check_objects(remote[:1])  # endpoint, bucket and the first object; not a request per file
        return cls(tuple(files), tuple(labels))


class ArraySource:
    """Decoded images in memory: ``images`` uint8 ``[N, H, W, 3]`` (RGB, numpy or a CPU torch tensor), or a
    list of uint8 ``[H, W, 3]`` arrays of any sizes, and ``labels`` ``[N]`` (integers >= 0). No decode step:
    the graph starts from these pixels. ``classes`` names the labels where known (CIFAR)."""

    def __init__(self, images: Any, labels: Any, classes: Sequence[str] = ()) -> None:
        if isinstance(images, (list, tuple)):
            arrays = [np.asarray(im.detach().cpu() if hasattr(im, "detach") else im) for im in images]
            for k, im in enumerate(arrays):
                if im.dtype != np.uint8 or im.ndim != 3 or im.shape[-1] != 3 or 0 in im.shape:
                    raise ValueError(f"image {k} must be uint8 [H, W, 3] (RGB, channels last), got {im.dtype} "
                                     f"{list(im.shape)}")
            if not arrays:
                raise ValueError("images is an empty list: the dataset has no samples")
            stored: Any = [np.ascontiguousarray(im) for im in arrays]
        else:
            if hasattr(images, "detach"):  # a torch tensor
                images = images.detach().cpu().numpy()
            images = np.asarray(images)
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"images must be uint8 [N, H, W, 3] (RGB, channels last) or a list of [H, W, 3], "
                                 f"got {images.dtype} {list(images.shape)}")
            if len(images) == 0 or 0 in images.shape[1:3]:
                raise ValueError(f"images must hold at least one non-empty image, got shape {list(images.shape)}")
            stored = np.ascontiguousarray(images)
        labels = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
        if labels.shape != (len(stored),) or not np.issubdtype(labels.dtype, np.integer) or (labels < 0).any():
            raise ValueError(f"labels must be {len(stored)} integers >= 0 (one per image), got {labels.dtype} "
                             f"{list(labels.shape)}")
        self.images = stored
        """``[N, H, W, 3]`` uint8, or a list of ``[H, W, 3]`` uint8 arrays."""
        self.labels = tuple(int(v) for v in labels)
        self.classes = tuple(classes)

    def take(self, indices: np.ndarray) -> Any:
        """The images of ``indices``: one array ``[B, H, W, 3]`` or a list of ``[H, W, 3]``."""
        if isinstance(self.images, list):
            return [self.images[i] for i in indices]
        return self.images[indices]

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def cifar(cls, root: Union[str, os.PathLike], train: bool = True) -> "ArraySource":
        """CIFAR-10 or CIFAR-100 in its standard python-pickle layout under ``root`` (the folder holding
        ``cifar-10-batches-py`` or ``cifar-100-python``, or that folder itself), no torchvision needed."""
        import pickle

        base = Path(root).expanduser()
        for name, files, key in (("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] if train
                                  else ["test_batch"], b"labels"),
                                 ("cifar-100-python", ["train" if train else "test"], b"fine_labels")):
            folder = base / name if (base / name).is_dir() else base if base.name == name else None
            if folder is not None:
                break
        else:
            raise ValueError(f"'{root}' holds no CIFAR data: expected cifar-10-batches-py/ or cifar-100-python/ "
                             f"(the python versions)")
        data, labels = [], []
        for file in files:
            path = folder / file
            if not path.is_file():
                raise ValueError(f"CIFAR file '{path}' is missing")
            try:
                with open(path, "rb") as f:
                    entry = pickle.load(f, encoding="bytes")
                data.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels.extend(entry[key])
            except Exception as exc:  # a truncated or foreign pickle: say which file
                raise ValueError(f"CIFAR file '{path}' cannot be read: {exc}") from None
        meta = folder / ("batches.meta" if key == b"labels" else "meta")
        classes: tuple[str, ...] = ()
        if meta.is_file():
            with open(meta, "rb") as f:
                names = pickle.load(f, encoding="bytes")
            raw = names.get(b"label_names") or names.get(b"fine_label_names") or []
            classes = tuple(n.decode() for n in raw)
        return cls(np.concatenate(data).transpose(0, 2, 3, 1), labels, classes)


# Any: a TarShards, a DatasetSource or a map-style torch Dataset (not imported here)
SourceLike = Union[str, os.PathLike, FileList, ArraySource, Any,
                   Sequence[tuple[Union[str, os.PathLike], int]], Sequence[str]]


def _is_tar(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike)) and os.fspath(item).lower().endswith(".tar")


def resolve_source(source: SourceLike) -> Any:
    """A folder path (local or ``s3://``), ``"cifar10:PATH"`` / ``"cifar100:PATH"`` (the training split), tar
    shards (a ``.tar`` path or brace pattern, or a list of them), a map-style torch ``Dataset`` of ``(image,
    label)``, a :class:`FileList`, an :class:`ArraySource`, a :class:`~dali_multicrop.TarShards`, a
    :class:`~dali_multicrop.DatasetSource` or ``(path, label)`` pairs, as the source object."""
    from .dataset_source import DatasetSource
    from .shards import TarShards

    if isinstance(source, (FileList, ArraySource, TarShards, DatasetSource)):
        return source
    if isinstance(source, str) and source.split(":", 1)[0] in ("cifar10", "cifar100") and ":" in source:
        return ArraySource.cifar(source.split(":", 1)[1])
    if _is_tar(source) or (isinstance(source, (list, tuple)) and source and all(_is_tar(s) for s in source)):
        return TarShards(source)  # type: ignore[arg-type]
    if isinstance(source, (str, os.PathLike)):
        return FileList.from_folder(source)
    if isinstance(source, (list, tuple)):
        return FileList.from_pairs(source)
    if hasattr(source, "__getitem__") and hasattr(source, "__len__"):
        return DatasetSource(source)
    raise ValueError(f"source must be an image folder path, tar shards ('train-{{000..127}}.tar'), 'cifar10:PATH', "
                     f"a torch Dataset, a FileList, an ArraySource, a TarShards or a list of (path, label) pairs, got "
                     f"{type(source).__name__}")
