"""Every random parameter of every crop of a batch, drawn at once with numpy before the graph runs (the crop
windows' candidates excepted: the graph's window step draws those, from a key per sample drawn here).

One :class:`numpy.random.Generator` per batch, keyed on ``(seed, shard, epoch, batch)`` (:func:`batch_generator`),
draws for all samples and crops at once:

* the crop windows' key: one 64-bit word per sample, the key of a counter-based stream from which the graph's
  window step draws, per crop, torchvision's ``RandomResizedCrop`` candidates (``ATTEMPTS`` pairs of area
  fraction and aspect ratio, one position pair) in DALI's threads, where the image's size is known
  (:mod:`dali_multicrop.windows`; :meth:`WindowInput.candidates <dali_multicrop.windows.WindowInput>` gives the
  same numbers in Python);
* the horizontal flips;
* the colour transform of each crop (jitter, then grayscale) as one affine map of RGB in 0-255 units,
  ``out = M @ rgb + T``, passed as the 3x4 block ``[M | T]`` (see :func:`colour_blocks`);
* the Gaussian blur's sigma (``NO_BLUR_SIGMA`` for a crop that is not blurred: an exact identity);
* solarisation (an index offset of 256 into the graph's solarising lookup table, 0 for no).

A batch's draws thus depend only on the key, not on the device, the thread count or the images: the CPU and
GPU graphs apply identical parameters (the window step runs on the host in both), and a run resumed at a batch
repeats its crops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._seeds import derive_seed
from .spec import ColorJitter, MultiCropSpec

__all__ = ["ATTEMPTS", "NO_BLUR_SIGMA", "SOLARIZE_OFFSET", "BatchDraws", "ColourFactors", "batch_generator",
           "colour_blocks", "draw_batch", "draw_colour", "blurs", "solarizes", "LUMA"]

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

# YIQ with torchvision's luma as its Y: hue rotates the (I, Q) chroma plane. H = C0 + cos*C1 + sin*C2.
_RGB_TO_YIQ = np.array([LUMA, [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)
_C0 = np.outer(_YIQ_TO_RGB[:, 0], _RGB_TO_YIQ[0])
_C1 = _YIQ_TO_RGB[:, 1:] @ _RGB_TO_YIQ[1:]
_C2 = _YIQ_TO_RGB[:, 1:] @ np.array([[0.0, -1.0], [1.0, 0.0]]) @ _RGB_TO_YIQ[1:]
_TO_LUMA = np.outer(np.ones(3), LUMA)  # grayscale: luma in every channel
# hue (C0 + cos C1 + sin C2) times saturation (s I + (1 - s) L): the six products, flattened, for colour_blocks
_CHROMA_BASIS = np.stack([c @ m for c in (_C0, _C1, _C2) for m in (np.eye(3), _TO_LUMA)]).reshape(6, 9)
_GRAY_CHROMA_BASIS = np.stack([_TO_LUMA @ c @ m for c in (_C0, _C1, _C2) for m in (np.eye(3), _TO_LUMA)]).reshape(6, 9)
_MID_GREY = 128.0
_KEY_TAG = 0xD4A3


def batch_generator(seed: int, shard: int, epoch: int, batch: int) -> np.random.Generator:
    """The generator of one batch's draws, keyed on ``(seed, shard, epoch, batch)`` (independent streams)."""
    return np.random.default_rng(derive_seed(seed, shard, epoch, batch, _KEY_TAG))


@dataclass(frozen=True)
class BatchDraws:
    """One batch's parameters (``B`` samples, ``n`` crops in the spec's order).

    - ``window_keys``: uint64 ``[B]``, each sample's stream key for its crops' window draws (see
      :mod:`dali_multicrop.windows`).
    - ``flips``: bool ``[B, n]``, True: the crop is mirrored left-right.
    - ``colour``: float32 ``[B, n, 3, 4]``, ``[M | T]`` per crop (RGB, 0-255 units).
    - ``blur_sigma``: float32 ``[B, n, 1]`` in output pixels (``NO_BLUR_SIGMA``: not blurred), or None where no
      crop of the spec is ever blurred.
    - ``solarize``: uint16 ``[B, n, 1]`` (0 or ``SOLARIZE_OFFSET``), or None where no crop is ever solarised.
    """

    window_keys: np.ndarray
    flips: np.ndarray
    colour: np.ndarray
    blur_sigma: Optional[np.ndarray]
    solarize: Optional[np.ndarray]


def _uniform(rng: np.random.Generator, low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
    return low + (high - low) * rng.random(shape)


def _factor(rng: np.random.Generator, strength: float, count: int) -> np.ndarray:
    """``ColorJitter``'s factor: uniform in ``[max(0, 1 - s), 1 + s]``; exactly 1 where ``s`` is 0."""
    if strength <= 0:
        return np.ones(count)
    return _uniform(rng, max(0.0, 1.0 - strength), 1.0 + strength, (count,))


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


def draw_colour(rng: np.random.Generator, jitter: ColorJitter, grayscale_prob: float, count: int) -> ColourFactors:
    """As torchvision's ``ColorJitter`` (with probability ``jitter.probability``) then ``RandomGrayscale``:
    each factor drawn as ``ColorJitter`` draws it, the order coin fair, grayscale independent."""
    b = _factor(rng, jitter.brightness, count)
    c = _factor(rng, jitter.contrast, count)
    s = _factor(rng, jitter.saturation, count)
    h = _uniform(rng, -jitter.hue, jitter.hue, (count,)) if jitter.hue > 0 else np.zeros(count)
    brightness_last = rng.random(count) < 0.5
    jittered = rng.random(count) < jitter.probability if jitter.active else np.zeros(count, dtype=bool)
    gray = rng.random(count) < grayscale_prob if grayscale_prob > 0 else np.zeros(count, dtype=bool)
    b, c, s, h = (np.where(jittered, v, neutral) for v, neutral in ((b, 1.0), (c, 1.0), (s, 1.0), (h, 0.0)))
    return ColourFactors(b, c, s, h, brightness_last & jittered, gray)


def colour_blocks(f: ColourFactors) -> np.ndarray:
    """The colour transforms as float64 ``[count, 3, 4]`` blocks ``[M | T]``: ``out = M @ rgb + T``, RGB in
    0-255 units, clamped to [0, 255] once after the whole map (torchvision clamps after each part).

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
                       np.ascontiguousarray(f.gray, dtype=np.bool_), _CHROMA_BASIS, _GRAY_CHROMA_BASIS, _MID_GREY)
    return out


def blurs(spec: MultiCropSpec) -> bool:
    """Whether any crop of ``spec`` may be blurred (else the graph has no blur operator)."""
    return any(g.blur_prob > 0 for g in spec.groups)


def solarizes(spec: MultiCropSpec) -> bool:
    """Whether any crop of ``spec`` may be solarised (else the graph has no solarisation)."""
    return any(g.solarize_prob > 0 for g in spec.groups)


def draw_batch(spec: MultiCropSpec, batch: int, rng: np.random.Generator) -> BatchDraws:
    """All parameters of a batch of ``batch`` samples (see :class:`BatchDraws`), drawn group by group, each
    group's crops of all samples at once."""
    n = spec.num_crops
    keys = rng.integers(0, 2**64, size=batch, dtype=np.uint64)
    flips = np.empty((batch, n), dtype=bool)
    colour = np.empty((batch, n, 3, 4), dtype=np.float32)
    sigma = np.full((batch, n, 1), NO_BLUR_SIGMA, dtype=np.float32) if blurs(spec) else None
    solar = np.zeros((batch, n, 1), dtype=np.uint16) if solarizes(spec) else None
    first = 0
    for group in spec.groups:
        crops = slice(first, first + group.count)
        shape = (batch, group.count)
        flips[:, crops] = rng.random(shape) < group.flip_prob
        factors = draw_colour(rng, group.color_jitter, group.grayscale_prob, batch * group.count)
        colour[:, crops] = colour_blocks(factors).reshape(batch, group.count, 3, 4)
        if sigma is not None and group.blur_prob > 0:
            blurred = rng.random(shape) < group.blur_prob
            sigma[:, crops, 0] = np.where(blurred, _uniform(rng, *group.blur_sigma, shape), NO_BLUR_SIGMA)
        if solar is not None and group.solarize_prob > 0:
            solar[:, crops, 0] = np.where(rng.random(shape) < group.solarize_prob, SOLARIZE_OFFSET, 0)
        first = crops.stop
    return BatchDraws(window_keys=keys, flips=flips, colour=colour, blur_sigma=sigma, solarize=solar)
