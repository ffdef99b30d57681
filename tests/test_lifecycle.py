"""A loader's threads and memory come back however its use ends: close(), a with block, del alone (no garbage
collection), a loop left early, an exception in the training loop, Ctrl-C; and the next loader works."""

from __future__ import annotations

import gc
import os
import signal

import pytest
import torch

from dali_multicrop import DaliMultiCropLoader

CROPS = "1x32,2x16"


def threads() -> int:
    """Threads of this process, DALI's native ones included."""
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("Threads")).split()[1])


@pytest.fixture
def no_gc():
    """Garbage collection off: what is freed here is freed by reference counting alone."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def _loader(folder, **kw):
    return DaliMultiCropLoader(str(folder), crops=CROPS, batch_size=3, device="cpu", num_threads=2, **kw)


def _works(folder) -> None:
    assert sorted(i for b in _loader(folder) for i in b.indices.tolist()) == list(range(12))


def test_close_and_with_block_free_the_threads_mid_epoch(coord_folder, no_gc):
    _works(coord_folder)  # the process's own pools (started by the first loader, kept for the process) come first
    before = threads()
    loader = _loader(coord_folder)
    it = iter(loader)
    next(it)
    assert threads() > before  # DALI's workers are running
    loader.close()
    assert threads() == before
    with pytest.raises(RuntimeError, match="the loader was closed"):
        next(it)
    assert len(list(loader)) == len(loader)  # a later loop builds the graph again
    loader.close()
    with _loader(coord_folder) as other:
        next(iter(other))
    assert threads() == before
    _works(coord_folder)


def test_del_alone_frees_a_loader_left_mid_epoch(coord_folder, no_gc):
    before = threads()
    for _ in range(5):
        loader = _loader(coord_folder)
        it = iter(loader)
        next(it)
        del it, loader
    assert threads() == before, "a loader dropped without gc.collect() kept its threads"


def test_a_loop_broken_out_of_and_an_exception_in_the_loop(coord_folder, no_gc):
    before = threads()
    loader = _loader(coord_folder)
    for _ in loader:
        break
    with pytest.raises(ZeroDivisionError):
        for batch in loader:
            1 / 0
    assert [len(b.indices) for b in loader] == [3, 3, 3, 3]  # the next epoch runs whole
    del loader, batch
    assert threads() == before
    _works(coord_folder)


def test_ctrl_c_during_iteration(coord_folder, no_gc):
    before = threads()
    loader = _loader(coord_folder)
    with pytest.raises(KeyboardInterrupt):
        for k, batch in enumerate(loader):
            if k == 1:
                os.kill(os.getpid(), signal.SIGINT)
                torch.zeros(1).sum()  # the signal lands while the loop runs
                for _ in range(10**6):
                    pass
    del loader, batch
    assert threads() == before
    _works(coord_folder)
