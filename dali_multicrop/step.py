"""The crop step: every crop's window and random parameters, per sample, compiled, in DALI's threads.

One operator per batch (DALI's ``numba_function``: a per-sample kernel compiled once per process with Numba, run in
DALI's threads with neither Python nor the GIL) turns three things into everything the pixel operators need:

* the sample's 64-bit stream key (the feed's only draw per sample: :func:`~dali_multicrop.draws.batch_keys`, keyed
  on seed, shard, epoch and batch), read from the last 8 bytes of the sample's row of the feed's keyed paths (or
  keys, for the other heads), little-endian (:func:`~dali_multicrop.draws.key_rows`);
* the image's size (int64 HWC, read from the encoded header before decoding: see :mod:`dali_multicrop.graph`);
* the spec's per-crop constants (float64 ``[n, FIELDS]``, :func:`crop_constants`: a constant of the graph, made
  once, never handed over by Python).

From the key, with a counter-based stream (SplitMix64: the same numbers in whichever thread and order the kernel
runs), it draws per crop the window's tries (:mod:`dali_multicrop.windows`) and the crop's flip, colour jitter,
grayscale, blur and solarisation (:mod:`dali_multicrop.draws`), and outputs per sample:

* ``rows`` float32 ``[4n, 2]``: rows ``2c, 2c+1`` crop ``c``'s resize region, start ``(y, x)`` then end, in pixels
  (a mirrored crop has its x start and end swapped, which makes the resize mirror it); rows ``2n + 2c, 2n + 2c +
  1`` its box ``(x0, y0), (x1, y1)`` as fractions of the image's width and height;
* ``colour`` float32 ``[n, ROW_FIELDS]``: each crop's colour row (its jitter's factors, hue shift and order, and
  grayscale: :mod:`dali_multicrop.pil_colour`);
* ``blur`` float32 ``[n, 1]``: each crop's blur sigma in output pixels (``NO_BLUR_SIGMA``: not blurred);
* ``solarize`` uint16 ``[n, 1]``: 0, or ``SOLARIZE_OFFSET`` for a solarised crop.

The same compiled functions serve Python callers (:func:`step_outputs`, :func:`crop_flips`,
:func:`~dali_multicrop.draws.draw_batch`): one implementation of the maths and of the stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .spec import MultiCropSpec

__all__ = ["FIELDS", "StepOutputs", "crop_constants", "crop_flips", "crop_step", "step_outputs"]

# the fields of one crop's row of the constants (float64)
SCALE_LOW, SCALE_HIGH, LOG_RATIO_LOW, LOG_RATIO_HIGH = 0, 1, 2, 3
"""Offsets of the window's draw ranges: its area fraction's, and the natural log of its aspect ratio's (w/h)."""
RATIO_LOW, RATIO_HIGH, CENTER, SIZE = 4, 5, 6, 7
"""Offsets of the window's other constants: its aspect-ratio range (w/h; the fallback clamps to it), its evaluation
fraction (NaN for random windows) and its side in pixels."""
FLIP_PROB, JITTER_PROB = 8, 9
"""Offsets of the flip's probability, and the colour jitter's (0 where the jitter changes nothing)."""
BRIGHTNESS, CONTRAST, SATURATION, HUE = 10, 12, 14, 16
"""Offsets of each jitter factor's range, low then high (brightness, contrast, saturation: ``ColorJitter``'s
``[max(0, 1 - s), 1 + s]``, ``[1, 1]`` for strength 0; hue in turns, ``[-h, h]``)."""
GRAY_PROB, BLUR_PROB, SIGMA, SOLARIZE_PROB = 18, 19, 20, 22
"""Offsets of the grayscale and blur probabilities, the blur sigma's range (low, high; output pixels) and the
solarisation probability."""
FIELDS = SOLARIZE_PROB + 1
"""Fields per crop of the constants."""


def _factor_range(strength: float) -> tuple[float, float]:
    return (max(0.0, 1.0 - strength), 1.0 + strength) if strength > 0 else (1.0, 1.0)


def crop_constants(spec: MultiCropSpec) -> np.ndarray:
    """float64 ``[n, FIELDS]``: per crop of ``spec`` (in its order) the constants the step reads (see the field
    offsets above)."""
    rows = []
    for g in spec.crops():
        j = g.color_jitter
        rows.append((g.scale[0], g.scale[1], math.log(g.ratio[0]), math.log(g.ratio[1]), g.ratio[0], g.ratio[1],
                     math.nan if g.center is None else g.center, g.size, g.flip_prob,
                     j.probability if j.active else 0.0, *_factor_range(j.brightness), *_factor_range(j.contrast),
                     *_factor_range(j.saturation), -j.hue, j.hue, g.grayscale_prob, g.blur_prob, *g.blur_sigma,
                     g.solarize_prob))
    return np.array(rows, dtype=np.float64).reshape(-1, FIELDS)


@dataclass(frozen=True)
class StepOutputs:
    """The step's outputs for a batch of ``B`` samples (see the module's docstring): ``rows`` float32 ``[B, 4n,
    2]``, ``colour`` float32 ``[B, n, ROW_FIELDS]``, ``blur`` float32 ``[B, n, 1]``, ``solarize`` uint16
    ``[B, n, 1]``."""

    rows: np.ndarray
    colour: np.ndarray
    blur: np.ndarray
    solarize: np.ndarray


def _keys(keys: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(keys, dtype=np.uint64).reshape(-1))


def step_outputs(constants: np.ndarray, keys: np.ndarray, shapes: np.ndarray) -> StepOutputs:
    """What the graph's step outputs for samples with stream ``keys`` (``[B]`` uint64) and images of ``shapes``
    (``[B, >=2]``, height and width first, in pixels), with :func:`crop_constants`' ``constants``."""
    from ._step_kernel import batch_step

    return StepOutputs(*batch_step(np.ascontiguousarray(constants, dtype=np.float64), _keys(keys),
                                   np.ascontiguousarray(np.asarray(shapes)[:, :2], dtype=np.int64)))


def crop_flips(constants: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """bool ``[B, n]``: the flips the step draws for samples with stream ``keys`` (``[B]`` uint64): compiled, a few
    microseconds a batch (the feed keeps them on the host for the training loop)."""
    from ._step_kernel import batch_flips

    return batch_flips(np.ascontiguousarray(constants, dtype=np.float64), _keys(keys))


def crop_step(keys: Any, shapes: Any, constants: np.ndarray) -> tuple[Any, Any, Any, Any]:
    """In a pipeline definition: the step's nodes ``(rows, colour, blur, solarize)`` (per sample, see the module's
    docstring) from the keys' node (uint8 per sample, the key in its last 8 bytes: the feed's ``keyed_paths`` or
    ``keys``, see :func:`~dali_multicrop.feed.feed_outputs`), the images' shapes (int64 HWC) and the spec's
    ``constants`` (:func:`crop_constants`), which become a constant of the graph (DALI's constants hold no
    float64: the bits travel as int64 and are reinterpreted, exactly)."""
    from nvidia.dali import fn, types

    from ._step_kernel import step_operator

    bits = np.ascontiguousarray(constants, dtype=np.float64).view(np.int64)
    node = fn.reinterpret(types.Constant(bits, dtype=types.INT64, device="cpu"), dtype=types.FLOAT64)
    return tuple(step_operator()(keys, node, shapes))
