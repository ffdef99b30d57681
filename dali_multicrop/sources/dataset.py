"""Any map-style torch ``Dataset`` as a source: items ``(image, label)`` fetched ahead by a thread pool.

The image of an item may be a PIL image, a uint8 HWC array (numpy or torch; ``HW`` gray is made RGB) or
encoded bytes (JPEG, PNG, ...: DALI decodes them in the graph, on the GPU for device="gpu"). The kind is the
first item's and must stay the same. A ``torchvision.datasets.*`` object built without ``transform`` is a
drop-in source (``CIFAR10``, ...; a plain ``ImageFolder`` is read as its files instead:
:meth:`~dali_multicrop.sources.files.FileList.from_torchvision`).

Items are fetched by ``workers`` threads while DALI computes earlier batches: the training thread only waits
when the dataset is slower than the graph. PIL decodes with the GIL released, so threads scale there; a
dataset whose ``__getitem__`` is pure Python work is limited by the GIL (prefer tar shards or a folder then).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Optional, Union

import numpy as np

from ..common.checks import check_int
from ..badsamples.diagnose import diagnose_named

__all__ = ["DatasetSource"]

Fetched = tuple[int, Union[tuple[np.ndarray, int], Exception]]
"""One fetched item: ``(index, (image, label))``, or ``(index, the error its fetch raised)``."""
Part = tuple[list[int], Future]
"""Items fetched by one task: their indices and the future of their values, a list (each ``(image, label)`` or the
error its fetch raised)."""


def _kind(image: Any) -> str:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "encoded"
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return "images"
    if hasattr(image, "shape") and hasattr(image, "dtype"):
        return "images"
    raise ValueError(f"dataset items must be (image, label) with image a PIL image, a uint8 HWC array or encoded "
                     f"bytes, got {type(image).__name__}")


class DatasetSource:
    """A map-style dataset (``len(dataset)``, ``dataset[i] -> (image, label)``) as a loader source.

    ``workers``: threads fetching items ahead (default: the visible cores, at most 16). ``timeout_s``: the
    longest one fetch task (an item, or a batched call) may take (default 600 s) before the loop stops with an error
    naming it, rather than hang. The first item is read now to learn the kind of images (see the module), unless the
    dataset says it as ``item_kind`` (``"images"`` or ``"encoded"``); ``classes`` is the dataset's ``classes`` if it
    has them.

    What else a dataset may offer, each used where present: ``item_name(i)`` (how errors name item ``i``);
    ``__getitems__(indices)`` (torch's batched fetch: one call per thread for its share of a batch);
    ``encoded_items(indices)`` (an ``"encoded"`` dataset's items already as 1-D uint8 arrays and checked, each bad
    one as its error: :class:`~dali_multicrop.sources.blocks.BlockTable`'s); ``plan_reads(indices)`` (told at each
    epoch's start which items this process fetches, in order: a table reads its next blocks ahead).
    """

    def __init__(self, dataset: Any, workers: Optional[int] = None, timeout_s: float = 600.0) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise ValueError(f"a dataset source needs __len__ and __getitem__ (a map-style torch Dataset), got "
                             f"{type(dataset).__name__}")
        if len(dataset) < 1:
            raise ValueError("the dataset is empty: it has no samples")
        self.dataset = dataset
        if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not timeout_s > 0:
            raise ValueError(f"timeout_s must be a number of seconds > 0, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self.workers = check_int("workers", workers, 1) if workers is not None else min(16, os.cpu_count() or 1)
        declared = getattr(dataset, "item_kind", None)  # a dataset that says so is not read at start
        if declared not in (None, "images", "encoded"):
            raise ValueError(f"{type(dataset).__name__}.item_kind must be 'images' or 'encoded', got {declared!r}")
        self.kind = declared or _kind(self._item(0)[0])
        """``"images"`` (decoded pixels reach the graph) or ``"encoded"`` (the graph decodes)."""
        self.classes = tuple(getattr(dataset, "classes", ()) or ())
        self._pool: Optional[ThreadPoolExecutor] = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __repr__(self) -> str:
        return f"DatasetSource({type(self.dataset).__name__}, {len(self)} samples, {self.kind})"

    def _item(self, index: int) -> tuple[Any, int]:
        return self._pair(index, self.dataset[index])

    @staticmethod
    def _pair(index: int, item: Any) -> tuple[Any, int]:
        """Item ``index`` checked as ``(image, label)``, the label an int."""
        try:
            image, label = item
        except (TypeError, ValueError):
            raise ValueError(f"dataset item {index} is not an (image, label) pair: {type(item).__name__}") from None
        if hasattr(label, "item"):
            label = label.item()
        if not isinstance(label, (int, np.integer)) or isinstance(label, bool) or label < 0:
            raise ValueError(f"dataset item {index}: label must be an integer >= 0, got {label!r}")
        return image, int(label)

    def item_name(self, index: int) -> str:
        """How errors name item ``index``: the dataset's own ``item_name(index)`` if it has one, else
        ``ImageFolder[17]``."""
        own = getattr(self.dataset, "item_name", None)
        return own(index) if callable(own) else f"{type(self.dataset).__name__}[{index}]"

    def encoded(self, index: int) -> np.ndarray:
        """The encoded bytes of item ``index`` (an ``"encoded"`` dataset) as a 1-D uint8 array, read again."""
        return self._pixels(index, check=False)[0]

    def _pixels(self, index: int, check: bool = True) -> tuple[np.ndarray, int]:
        """Item ``index`` as the graph takes it: RGB HWC uint8 pixels or a 1-D uint8 array of bytes (checked
        for what can be seen without decoding: an image format DALI reads, not cut short)."""
        return self._as_taken(index, self._item(index), check)

    def _as_taken(self, index: int, item: tuple[Any, int], check: bool = True) -> tuple[np.ndarray, int]:
        """:meth:`_pixels` of item ``index`` already fetched (``(image, label)``, checked by :meth:`_item`)."""
        image, label = item
        if _kind(image) != self.kind:
            raise ValueError(f"dataset item {index} holds {_kind(image)} but item 0 held {self.kind}; every item's "
                             f"image must be of one kind")
        if self.kind == "encoded":
            data = np.frombuffer(image, dtype=np.uint8)  # no copy (bytes, or a view of the dataset's buffer)
            problem = diagnose_named(data, lambda: self.item_name(index)) if check else None
            if problem is not None:
                raise problem
            return data, label
        if hasattr(image, "convert"):
            return np.asarray(image.convert("RGB")), label
        array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
            raise ValueError(f"dataset item {index}: image must be uint8 HWC RGB (channels last; build the dataset "
                             f"without ToTensor/transform), got {array.dtype} {list(array.shape)}")
        return np.ascontiguousarray(array), label

    def plan(self, indices: np.ndarray) -> None:
        """Tells the dataset the items this process fetches next, in order (a rank's epoch), where it can use that
        (``dataset.plan_reads(indices)``: a Parquet table reads its next row groups ahead)."""
        plan_reads = getattr(self.dataset, "plan_reads", None)
        if callable(plan_reads):
            plan_reads(indices)

    def submit(self, indices: np.ndarray) -> list[Part]:
        """Starts fetching the items of ``indices`` on the pool (see :meth:`collect`): one task per item, or, for a
        dataset with torch's batched ``__getitems__``, one call per thread for its share of them."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="dali-multicrop-dataset")
        wanted = np.asarray(indices, dtype=np.int64)
        if not hasattr(self.dataset, "__getitems__") or len(wanted) == 0:
            return [([i], self._pool.submit(self._fetch_each, [i])) for i in wanted.tolist()]
        chunks = [chunk.tolist() for chunk in np.array_split(wanted, min(self.workers, len(wanted)))]
        return [(chunk, self._pool.submit(self._fetch_many, chunk)) for chunk in chunks]

    def _fetch_each(self, indices: list[int]) -> list[Union[tuple[np.ndarray, int], Exception]]:
        """Items ``indices`` one at a time, each ``(image, label)`` or the error its fetch raised."""
        values: list[Union[tuple[np.ndarray, int], Exception]] = []
        for index in indices:
            try:
                values.append(self._pixels(index))
            except Exception as exc:  # the item's own failure: the caller's policy decides
                values.append(exc)
        return values

    def _fetch_many(self, indices: list[int]) -> list[Union[tuple[np.ndarray, int], Exception]]:
        """Items ``indices`` by one ``__getitems__`` call (or the dataset's ``encoded_items``, which returns them as
        taken and checked, each bad one as its error); where that call fails, one at a time, so that each item's own
        error is its own."""
        try:
            if self.kind == "encoded" and callable(getattr(self.dataset, "encoded_items", None)):
                return self.dataset.encoded_items(indices)
            items = self.dataset.__getitems__(indices)
            return [self._as_taken(i, self._pair(i, item)) for i, item in zip(indices, items)]
        except Exception:
            return self._fetch_each(indices)

    def collect(self, parts: list[Part]) -> list[Fetched]:
        """The submitted items, in order, each ``(index, (image, label))`` or ``(index, the error it raised)``,
        waiting for those not fetched yet (each task at most ``timeout_s``, then ``TimeoutError`` naming its first
        item)."""
        items: list[Fetched] = []
        for indices, part in parts:
            try:
                items.extend(zip(indices, part.result(timeout=self.timeout_s)))
            except FutureTimeout:
                more = f" (or one of the {len(indices) - 1} fetched with it)" if len(indices) > 1 else ""
                raise TimeoutError(f"dataset item {indices[0]}{more} took more than {self.timeout_s:g} s "
                                   f"({type(self.dataset).__name__}.__getitem__ hangs?)") from None
        return items

    def close(self) -> None:
        """Stops the fetching threads (items in flight finish first) and the dataset's reads ahead (an empty plan)."""
        self.plan(np.zeros(0, dtype=np.int64))
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pool": None}
