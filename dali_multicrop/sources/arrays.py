"""Decoded images in memory as a source (numpy or torch arrays, CIFAR's pickles): the graph starts from the
pixels, with no read or decode step."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

__all__ = ["ArraySource"]


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
