"""Shared fixtures: synthetic image folders whose pixels say where they come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def pytest_addoption(parser, pluginmanager) -> None:
    """Where pytest-timeout is absent (a lent GPU machine's own Python), its ``timeout`` ini key is still known, so the
    suite collects under warnings-as-errors and runs without the per-test limit (the marker is in pyproject.toml)."""
    if not pluginmanager.has_plugin("timeout"):
        parser.addini("timeout", "pytest-timeout's per-test limit in seconds (unused: pytest-timeout is not installed)")


COMPILED_AT_IMPORT = ("dali_multicrop.step.step_kernel", "dali_multicrop.graph.cpu_crop")
"""The modules whose Numba C functions (the crop step, the CPU crop operator) compile as they are imported."""


def pytest_sessionstart(session) -> None:
    """Compiles the CPU graph's operators into Numba's disk cache once, before pytest-xdist starts its workers: on a
    fresh clone every worker and every subprocess of the first tests would otherwise compile them at the same time
    (about 10 s of a core each); after this they load them."""
    if hasattr(session.config, "workerinput"):  # a worker: the controller did it
        return
    import importlib

    for module in COMPILED_AT_IMPORT:
        importlib.import_module(module)


# Landscape, portrait and square sources, all at most 256 px wide/high so one pixel is about one code value.
COORD_SIZES = [(192, 256), (240, 160), (200, 200)]  # (H, W)


def coordinate_image(height: int, width: int) -> np.ndarray:
    """RGB uint8 image: R encodes x (0..255 over the width), G encodes y, B = 128."""
    ys, xs = np.mgrid[0:height, 0:width]
    red = np.rint(xs * 255.0 / (width - 1))
    green = np.rint(ys * 255.0 / (height - 1))
    return np.stack([red, green, np.full_like(red, 128)], axis=-1).astype(np.uint8)


def write_folder(root: Path, images: dict[str, list[np.ndarray]], fmt: str = "png") -> Path:
    """Writes ``{class: [images]}`` as ``root/class/NNN.fmt``; returns root."""
    for cls, arrays in images.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i, arr in enumerate(arrays):
            Image.fromarray(arr).save(root / cls / f"{i:03d}.{fmt}")
    return root


@pytest.fixture(scope="session")
def coord_folder(tmp_path_factory) -> Path:
    """12 coordinate images in 3 classes (4 each), sizes cycling through COORD_SIZES."""
    root = tmp_path_factory.mktemp("coords")
    images = {cls: [coordinate_image(*COORD_SIZES[(k + i) % 3]) for i in range(4)]
              for k, cls in enumerate(["cat", "dog", "emu"])}
    return write_folder(root, images)


def has_cuda() -> bool:
    return torch.cuda.is_available()


DEVICES = ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu,
                                             pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")])]
"""Parametrise a test over the loader's backends; the GPU case skips cleanly without CUDA."""


def pixels(crop: torch.Tensor, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> torch.Tensor:
    """Undoes the normalisation: float64 pixel values 0..255, same layout, on the CPU."""
    c = crop.detach().to("cpu", torch.float64)
    m = torch.tensor(mean, dtype=torch.float64).view(3, 1, 1) * 255
    s = torch.tensor(std, dtype=torch.float64).view(3, 1, 1) * 255
    return c * s + m


def write_shards(files: list[str], labels: list[int], out: Path, per_shard: int, labelled: bool = True) -> list[Path]:
    """Writes the files as WebDataset shards ``out/train-NNN.tar`` of ``per_shard`` samples each (image and, when
    ``labelled``, ``cls`` members), in the given order, without index files; returns the shard paths."""
    from dali_multicrop.sources.tar import pack_shards

    return pack_shards(files, labels if labelled else None, out, per_shard, digits=3)


@pytest.fixture(autouse=True)
def _index_cache(tmp_path_factory, monkeypatch):
    """Index files made on the fly go to a per-session folder, not the user's cache."""
    monkeypatch.setenv("DALI_MULTICROP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def ranks_epoch(loaders, epoch: int, label_of=None) -> list[int]:
    """Every sample index that ``loaders`` (one per rank) give in ``epoch``, each batch's labels checked against
    ``label_of(index)`` where given."""
    seen: list[int] = []
    for loader in loaders:
        loader.set_epoch(epoch)
        for batch in loader:
            seen += batch.indices.tolist()
            if label_of is not None:
                assert batch.labels.tolist() == [label_of(i) for i in batch.indices.tolist()]
    return seen
