"""Every random parameter of every crop of a batch, keyed on ``(seed, shard, epoch, batch)``: one 64-bit stream key per
sample drawn with numpy before the graph runs, every crop's parameters drawn from it inside the graph.

A 64-bit key per epoch, hashed from ``(seed, shard, epoch)`` (:func:`epoch_key`), gives each sample of each batch
its stream key (:func:`batch_keys`, compiled: words ``batch * 2**32 + i`` of a SplitMix64 stream, so every sample of
an epoch has its own key): all the training loop's thread draws and hands to DALI. The graph's
crop step (:mod:`dali_multicrop.step`, compiled, in DALI's threads) draws from each key, with a counter-based
stream (the same numbers in whichever thread and order it runs), per crop:

* the window's tries (torchvision's ``RandomResizedCrop`` candidates: :mod:`dali_multicrop.windows`), at draws
  ``STREAM * crop`` onwards;
* its parameters, at draws ``PARAMS_FIRST + PARAMS * crop`` onwards: the horizontal flip; the colour transform
  (``ColorJitter`` with its probability, then grayscale) as one affine map of RGB in 0-255 units,
  ``out = M @ rgb + T``, passed as the 3x4 block ``[M | T]`` (see :func:`colour_blocks`); the Gaussian blur's sigma
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

from .spec import MultiCropSpec

__all__ = ["ATTEMPTS", "KEY_BYTES", "NO_BLUR_SIGMA", "SOLARIZE_OFFSET", "BatchDraws", "ColourFactors", "batch_keys",
           "colour_blocks", "draw_batch", "epoch_key", "blurs", "solarizes", "LUMA"]

ATTEMPTS = 10
"""Windows tried per crop before the fallback, as torchvision's ``RandomResizedCrop``."""

NO_BLUR_SIGMA = 1e-3
"""Sigma given to the blur for crops that are not blurred: its 3-tap kernel is [0, 1, 0] in float32, an exact
identity (``exp(-1 / (2 * sigma**2))`` underflows to 0)."""

SOLARIZE_OFFSET = 256
"""Added to the pixel values of a solarised crop, selecting the inverting half of the graph's lookup table."""

LUMA = np.array([0.2989, 0.587, 0.114])
"""Luma weights (RGB) of torchvision's ``rgb_to_grayscale``, which grayscale and saturation blend with (they sum
to 0.9999, as torchvision's: a grey loses 0.01% to them)."""

PARAMS_FIRST = 1 << 40
"""The first draw of a sample's stream that a crop's parameters read (the windows' tries read draws below
``STREAM * n``, far below this)."""
PARAMS = 16
"""Draws set aside per crop for its parameters: crop ``c`` reads draws ``PARAMS_FIRST + PARAMS * c + j``, with
``j`` one of the offsets below, so a crop's parameters depend neither on the other crops nor on its window."""
FLIP_DRAW, JITTER_DRAW, FACTOR_DRAWS, ORDER_DRAW, GRAY_DRAW, BLUR_DRAW, SIGMA_DRAW, SOLARIZE_DRAW = 0, 1, 2, 6, 7, 8, 9, 10
"""A crop's parameter draws: its flip, its jitter's coin, the four factors (brightness, contrast, saturation, hue:
``FACTOR_DRAWS`` to ``FACTOR_DRAWS + 3``), the order coin (brightness after contrast), grayscale's coin, the blur's
coin and sigma, solarisation's coin."""

# YIQ with torchvision's luma as its Y: hue rotates the (I, Q) chroma plane. H = C0 + cos*C1 + sin*C2.
_RGB_TO_YIQ = np.array([LUMA, [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)
_C0 = np.outer(_YIQ_TO_RGB[:, 0], _RGB_TO_YIQ[0])
_C1 = _YIQ_TO_RGB[:, 1:] @ _RGB_TO_YIQ[1:]
_C2 = _YIQ_TO_RGB[:, 1:] @ np.array([[0.0, -1.0], [1.0, 0.0]]) @ _RGB_TO_YIQ[1:]
_TO_LUMA = np.outer(np.ones(3), LUMA)  # grayscale: luma in every channel
CHROMA_BASIS = np.stack([c @ m for c in (_C0, _C1, _C2) for m in (np.eye(3), _TO_LUMA)]).reshape(6, 9)
"""Hue (``C0 + cos C1 + sin C2``) times saturation (``s I + (1 - s) L``): the six products, flattened, from which
the colour kernel builds ``M``."""
GRAY_CHROMA_BASIS = np.stack([_TO_LUMA @ c @ m for c in (_C0, _C1, _C2) for m in (np.eye(3), _TO_LUMA)]).reshape(6, 9)
"""The same six products followed by grayscale."""
MID_GREY = 128.0
"""The grey contrast blends with (0-255 units)."""
_KEY_TAG = 0xD4A3


def epoch_key(seed: int, shard: int, epoch: int) -> np.uint64:
    """The 64-bit key of an epoch's draws on one shard: a stable hash of all the bits of ``(seed, shard, epoch)``
    (integers >= 0 of any size; numpy's ``SeedSequence``), computed once per epoch."""
    return np.random.SeedSequence([int(seed), int(shard), int(epoch), _KEY_TAG]).generate_state(1, np.uint64)[0]


def batch_keys(key: np.uint64, batch: int, size: int) -> np.ndarray:
    """uint64 ``[size]``: the stream keys of the samples of batch ``batch`` (0 or more, below 2**31) of the epoch
    whose :func:`epoch_key` is ``key``, all the graph's crop step draws from. Compiled: a few microseconds a batch."""
    from ._stream import batch_keys_into

    if not 0 <= batch < 2**31:
        raise ValueError(f"batch must be in [0, 2**31), got {batch}")
    out = np.empty(size, dtype=np.uint64)
    batch_keys_into(out, np.uint64(key), batch)
    return out


KEY_BYTES = 8
"""Bytes of a sample's stream key where the feed hands it to the graph: the last ``KEY_BYTES`` of each row of
its ``keyed_paths`` or ``keys``, little-endian (:func:`key_rows`; the crop step's ``key_of`` reads them)."""


def key_rows(keys: np.ndarray) -> np.ndarray:
    """uint8 ``[B, KEY_BYTES]``: each uint64 key of ``keys`` (``[B]``) as its bytes, little-endian (a view where the
    machine is little-endian), as the graph's crop step reads it."""
    return np.ascontiguousarray(keys, dtype="<u8").view(np.uint8).reshape(-1, KEY_BYTES)


@dataclass(frozen=True)
class BatchDraws:
    """One batch's parameters (``B`` samples, ``n`` crops in the spec's order), as the graph's crop step draws them.

    - ``keys``: uint64 ``[B]``, each sample's stream key, from which every field below and the windows' tries
      (:func:`dali_multicrop.windows.window_candidates`) are drawn.
    - ``flips``: bool ``[B, n]``, True: the crop is mirrored left-right.
    - ``colour``: float32 ``[B, n, 3, 4]``, ``[M | T]`` per crop (RGB, 0-255 units).
    - ``blur_sigma``: float32 ``[B, n, 1]`` in output pixels (``NO_BLUR_SIGMA``: not blurred), or None where no
      crop of the spec is ever blurred.
    - ``solarize``: uint16 ``[B, n, 1]`` (0 or ``SOLARIZE_OFFSET``), or None where no crop is ever solarised.
    """

    keys: np.ndarray
    flips: np.ndarray
    colour: np.ndarray
    blur_sigma: Optional[np.ndarray]
    solarize: Optional[np.ndarray]


@dataclass(frozen=True)
class ColourFactors:
    """The colour parameters of ``count`` crops (float64 / bool arrays ``[count]``), neutral where a crop is not
    jittered: ``brightness``, ``contrast``, ``saturation`` factors (1 = unchanged), ``hue`` in turns (0 =
    unchanged; HSV's direction), ``brightness_last`` (brightness applied after contrast), ``gray``."""

    brightness: np.ndarray
    contrast: np.ndarray
    saturation: np.ndarray
    hue: np.ndarray
    brightness_last: np.ndarray
    gray: np.ndarray


def colour_blocks(f: ColourFactors) -> np.ndarray:
    """The colour transforms as float64 ``[count, 3, 4]`` blocks ``[M | T]``: ``out = M @ rgb + T``, RGB in
    0-255 units, clamped to [0, 255] once after the whole map (torchvision clamps after each part). The crop step
    builds each crop's block with the same compiled function from the factors it draws.

    Brightness ``b`` scales; contrast ``c`` blends with mid-grey 128 (torchvision blends with the image's mean
    grey, which is not known before the image is); saturation ``s`` blends with the luma (torchvision's
    ``adjust_saturation``); hue rotates the YIQ chroma plane by ``hue`` turns, in the direction of an HSV hue
    shift (torchvision shifts HSV hue: close, not equal); grayscale, after the jitter, puts the luma in every
    channel (``rgb_to_grayscale``). Neutral factors and no grayscale give exactly the identity.

    All parts are affine and compose into one map. Saturation and hue commute (both scale or turn the chroma
    plane), and both keep a grey (up to the 0.01% of the luma weights), so of ``ColorJitter``'s random order
    only whether brightness comes after contrast changes the map (brightness then also scales contrast's
    offset): ``brightness_last``, a fair coin, as likely as in a random permutation. The map is that of the
    order brightness, contrast, saturation, hue (or contrast, saturation, hue, brightness), then grayscale.
    """
    from ._draw_kernel import colour_blocks_into

    def as_f64(values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values, dtype=np.float64)

    out = np.empty((len(f.brightness), 3, 4))
    colour_blocks_into(out, as_f64(f.brightness), as_f64(f.contrast), as_f64(f.saturation), as_f64(f.hue),
                       np.ascontiguousarray(f.brightness_last, dtype=np.bool_),
                       np.ascontiguousarray(f.gray, dtype=np.bool_))
    return out


def blurs(spec: MultiCropSpec) -> bool:
    """Whether any crop of ``spec`` may be blurred (else the graph has no blur operator)."""
    return any(g.blur_prob > 0 for g in spec.groups)


def solarizes(spec: MultiCropSpec) -> bool:
    """Whether any crop of ``spec`` may be solarised (else the graph has no solarisation)."""
    return any(g.solarize_prob > 0 for g in spec.groups)


def draw_batch(spec: MultiCropSpec, keys: np.ndarray) -> BatchDraws:
    """All parameters of the crops of samples with stream ``keys`` (uint64 ``[B]``, e.g. :func:`batch_keys`; see
    :class:`BatchDraws`), computed by the crop step's own compiled functions (the graph's numbers)."""
    from .step import crop_constants, crop_flips, step_outputs

    keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
    constants = crop_constants(spec)
    out = step_outputs(constants, keys, np.ones((len(keys), 2), dtype=np.int64))  # the parameters ignore the sizes
    return BatchDraws(keys=keys, flips=crop_flips(constants, keys), colour=out.colour,
                      blur_sigma=out.blur if blurs(spec) else None,
                      solarize=out.solarize if solarizes(spec) else None)
