"""The side outputs' one host-to-device transfer: packing on the CPU, the copy itself on a GPU."""

from __future__ import annotations

import pytest
import torch

from dali_multicrop.loader.transfer import ALIGN, stage, to_device, unstage

from conftest import has_cuda


def _side_outputs(batch: int, crops: int) -> list[torch.Tensor]:
    """What the runner hands over: boxes float32 [B, n, 4], flips bool [B, n], labels and indices int64 [B]."""
    g = torch.Generator().manual_seed(batch * 31 + crops)
    return [torch.rand(batch, crops, 4, generator=g), torch.rand(batch, crops, generator=g) < 0.5,
            torch.randint(0, 1000, (batch,), generator=g), torch.randint(0, 10**9, (batch,), generator=g)]


@pytest.mark.parametrize("batch,crops", [(1, 1), (3, 5), (7, 8), (256, 10), (0, 8)])
def test_staging_keeps_every_value_dtype_and_shape(batch, crops):
    tensors = _side_outputs(batch, crops)
    buffer, offsets = stage(tensors, pin=False)
    assert buffer.dtype == torch.uint8 and buffer.dim() == 1
    assert all(o % ALIGN == 0 for o in offsets) and offsets == sorted(offsets)
    back = unstage(buffer, tensors, offsets)
    for original, view in zip(tensors, back):
        assert view.dtype == original.dtype and view.shape == original.shape
        assert torch.equal(view, original)
        assert view.data_ptr() % 8 == 0  # aligned for an int64 or float32 kernel


def test_staging_takes_a_non_contiguous_view_and_does_not_alias_its_inputs():
    windows = torch.arange(2 * 12 * 2, dtype=torch.float32).reshape(2, 12, 2)  # 3 crops: regions, then boxes
    boxes = windows[:, 6:].reshape(2, 3, 4)
    odd = torch.tensor([True, False, True])  # 3 bytes: the next tensor still starts aligned
    tensors = [odd, boxes, torch.tensor([5, 6])]
    buffer, offsets = stage(tensors, pin=False)
    back = unstage(buffer, tensors, offsets)
    assert offsets == [0, 8, 8 + 2 * 3 * 4 * 4] and torch.equal(back[1], boxes) and torch.equal(back[2], torch.tensor([5, 6]))
    back[1].zero_()  # the loader's views are the buffer's, not DALI's memory
    assert windows[0, 6, 0] == 12.0 and torch.equal(back[0], odd)


def test_on_the_cpu_nothing_is_copied():
    tensors = _side_outputs(4, 3)
    assert all(a is b for a, b in zip(to_device(tensors, torch.device("cpu")), tensors))


@pytest.mark.gpu
@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")
def test_one_pinned_copy_reaches_the_gpu_with_every_value():
    tensors = _side_outputs(256, 10)
    moved = to_device(tensors, torch.device("cuda", 0))
    storages = {t.untyped_storage().data_ptr() for t in moved}
    assert len(storages) == 1  # one device buffer: one copy
    for original, view in zip(tensors, moved):
        assert view.is_cuda and view.dtype == original.dtype
        assert torch.equal(view.cpu(), original)
