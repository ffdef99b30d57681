"""Where samples come from: an image-folder tree or an explicit list of files with labels.

A source is a :class:`FileList`: ``files[i]`` is the path of sample ``i`` and ``labels[i]`` its class.
Sample indices returned by the loader (``batch.indices``) are positions in this listing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

__all__ = ["FileList", "IMAGE_EXTENSIONS", "resolve_source"]

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
        object.__setattr__(self, "labels", tuple(self.labels))
        if len(self.files) != len(self.labels):
            raise ValueError(f"FileList has {len(self.files)} files but {len(self.labels)} labels; "
                             f"they must match one to one")
        if not self.files:
            raise ValueError("FileList is empty: the dataset has no samples")
        for path, label in zip(self.files, self.labels):
            if not isinstance(label, int) or isinstance(label, bool) or label < 0:
                raise ValueError(f"label of '{path}' must be an integer >= 0, got {label!r}")

    def __len__(self) -> int:
        return len(self.files)

    @classmethod
    def from_folder(cls, root: Union[str, os.PathLike]) -> "FileList":
        """Lists an image-folder tree as torchvision's ``ImageFolder`` does.

        ``root/<class>/**/<image>``: classes are the sub-folders sorted by name (label = position), files are
        sorted within each class; a class folder without images is an error. A folder with images but no
        class sub-folders is one class, label 0.
        """
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
            path = os.path.expanduser(os.fspath(path))
            if not os.path.isfile(path):
                raise ValueError(f"image file '{path}' does not exist")
            files.append(path)
            labels.append(label)
        return cls(tuple(files), tuple(labels))


SourceLike = Union[str, os.PathLike, FileList, Sequence[tuple[Union[str, os.PathLike], int]]]


def resolve_source(source: SourceLike) -> FileList:
    """A folder path, a :class:`FileList` or ``(path, label)`` pairs, as a :class:`FileList`."""
    if isinstance(source, FileList):
        return source
    if isinstance(source, (str, os.PathLike)):
        return FileList.from_folder(source)
    if isinstance(source, (list, tuple)):
        return FileList.from_pairs(source)
    raise ValueError(f"source must be an image folder path, a FileList or a list of (path, label) pairs, "
                     f"got {type(source).__name__}")
