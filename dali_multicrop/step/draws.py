"""Every random parameter of every crop of a batch, keyed on ``(seed, shard, epoch, batch)``: one 64-bit stream key per
sample drawn with numpy before the graph runs, every crop's parameters drawn from it inside the graph.

A 64-bit key per epoch, hashed from ``(seed, shard, epoch)`` (:func:`epoch_key`), gives each sample of each batch
its stream key (:func:`batch_keys`, compiled: words ``batch * 2**32 + i`` of a SplitMix64 stream, so every sample of
an epoch has its own key): all the training loop's thread draws and hands to DALI. The graph's
crop step (:mod:`dali_multicrop.step`, compiled, in DALI's threads) draws from each key, with a counter-based
stream (the same numbers in whichever thread and order it runs), per crop:

* the window's tries (torchvision's ``RandomResizedCrop`` candidates: :mod:`dali_multicrop.step.windows`), at draws
  ``STREAM * crop`` onwards;
* its parameters, at draws ``PARAMS_FIRST + PARAMS * crop`` onwards: the horizontal flip; ``ColorJitter`` with its
  probability (the three factors, the hue's shift and the order of the four operations, a uniform permutation as
  torchvision's ``torch.randperm(4)``), then grayscale's coin, as one colour row per crop (its fields:
  :data:`dali_multicrop.pixels.pil_colour.ROW_FIELDS`; the graph's colour operators apply it as torchvision on PIL
  images does, :mod:`dali_multicrop.pixels.pil_colour`); the Gaussian blur's sigma
  (``NO_BLUR_SIGMA`` for a crop that is not blurred: an exact identity); solarisation (an index offset of 256 into
  the graph's solarising lookup table, 0 for no).

A batch's draws thus depend only on the key, not on the device, the thread count or the images: the CPU and
GPU graphs apply identical parameters (the step runs on the host in both), and a run resumed at a batch repeats
its crops. :func:`draw_batch` gives the same numbers in Python (the flips the training loop gets come from it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..recipes.spec import MultiCropSpec
from .layout import ATTEMPTS, KEY_BYTES, NO_BLUR_SIGMA, SOLARIZE_OFFSET, crop_constants

__all__ = ["ATTEMPTS", "KEY_BYTES", "NO_BLUR_SIGMA", "SOLARIZE_OFFSET", "BatchDraws", "batch_keys", "draw_batch",
           "epoch_key", "blurs", "solarizes"]

_KEY_TAG = 0xD4A3


def epoch_key(seed: int, shard: int, epoch: int) -> np.uint64:
    """The 64-bit key of an epoch's draws on one shard: a stable hash of all the bits of ``(seed, shard, epoch)``
    (integers >= 0 of any size; numpy's ``SeedSequence``), computed once per epoch."""
    return np.random.SeedSequence([int(seed), int(shard), int(epoch), _KEY_TAG]).generate_state(1, np.uint64)[0]


def batch_keys(key: np.uint64, batch: int, size: int) -> np.ndarray:
    """uint64 ``[size]``: the stream keys of the samples of batch ``batch`` (0 or more, below 2**31) of the epoch
    whose :func:`epoch_key` is ``key``, all the graph's crop step draws from. Compiled: a few microseconds a batch."""
    from .stream import batch_keys_into

    if not 0 <= batch < 2**31:
        raise ValueError(f"batch must be in [0, 2**31), got {batch}")
    out = np.empty(size, dtype=np.uint64)
    batch_keys_into(out, np.uint64(key), batch)
    return out


def key_rows(keys: np.ndarray) -> np.ndarray:
    """uint8 ``[B, KEY_BYTES]``: each uint64 key of ``keys`` (``[B]``) as its bytes, little-endian (a view where the
    machine is little-endian), as the graph's crop step reads it."""
    return np.ascontiguousarray(keys, dtype="<u8").view(np.uint8).reshape(-1, KEY_BYTES)


@dataclass(frozen=True)
class BatchDraws:
    """One batch's parameters (``B`` samples, ``n`` crops in the spec's order), as the graph's crop step draws them.

    - ``keys``: uint64 ``[B]``, each sample's stream key, from which every field below and the windows' tries
      (:func:`dali_multicrop.step.windows.window_candidates`) are drawn.
    - ``flips``: bool ``[B, n]``, True: the crop is mirrored left-right.
    - ``colour``: float32 ``[B, n, ROW_FIELDS]``, each crop's colour row (:mod:`dali_multicrop.pixels.pil_colour`: the
      brightness, contrast and saturation factors, the hue's shift, the jitter's order, grayscale).
    - ``blur_sigma``: float32 ``[B, n, 1]`` in output pixels (``NO_BLUR_SIGMA``: not blurred), or None where no
      crop of the spec is ever blurred.
    - ``solarize``: uint16 ``[B, n, 1]`` (0 or ``SOLARIZE_OFFSET``), or None where no crop is ever solarised.
    """

    keys: np.ndarray
    flips: np.ndarray
    colour: np.ndarray
    blur_sigma: Optional[np.ndarray]
    solarize: Optional[np.ndarray]


def blurs(spec: MultiCropSpec) -> bool:
    """Whether any crop of ``spec`` may be blurred (else the graph has no blur operator)."""
    return any(g.blur_prob > 0 for g in spec.groups)


def solarizes(spec: MultiCropSpec) -> bool:
    """Whether any crop of ``spec`` may be solarised (else the graph has no solarisation)."""
    return any(g.solarize_prob > 0 for g in spec.groups)


def draw_batch(spec: MultiCropSpec, keys: np.ndarray) -> BatchDraws:
    """All parameters of the crops of samples with stream ``keys`` (uint64 ``[B]``, e.g. :func:`batch_keys`; see
    :class:`BatchDraws`), computed by the crop step's own compiled functions (the graph's numbers)."""
    from .outputs import crop_flips, crop_parameters

    keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
    constants = crop_constants(spec)
    colour, blur, solarize = crop_parameters(constants, keys)
    return BatchDraws(keys=keys, flips=crop_flips(constants, keys), colour=colour,
                      blur_sigma=blur if blurs(spec) else None, solarize=solarize if solarizes(spec) else None)
