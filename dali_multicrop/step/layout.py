"""The crop step's layout, at the bottom of :mod:`dali_multicrop.step`: the fields of the spec's per-crop constants
(:func:`crop_constants` fills them), where each crop reads its draws in a sample's stream, the sizes of the step's
outputs. Plain numbers only: the compiled kernels above read them, nothing here imports them back."""

from __future__ import annotations

import math

import numpy as np

from ..recipes.spec import MultiCropSpec

__all__ = ["FIELDS", "ATTEMPTS", "STREAM", "PARAMS_FIRST", "PARAMS", "KEY_BYTES", "NO_BLUR_SIGMA", "SOLARIZE_OFFSET",
           "ORDER_DRAWS", "crop_constants"]

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


# where a crop reads its draws in a sample's stream, and what the step hands over
ATTEMPTS = 10
"""Windows tried per crop before the fallback, as torchvision's ``RandomResizedCrop``."""

NO_BLUR_SIGMA = 1e-3
"""Sigma given to the blur for crops that are not blurred: its 3-tap kernel is [0, 1, 0] in float32, an exact
identity (``exp(-1 / (2 * sigma**2))`` underflows to 0)."""

SOLARIZE_OFFSET = 256
"""Added to the pixel values of a solarised crop, selecting the inverting half of the graph's lookup table."""

PARAMS_FIRST = 1 << 40
"""The first draw of a sample's stream that a crop's parameters read (the windows' tries read draws below
``STREAM * n``, far below this)."""
PARAMS = 16
"""Draws set aside per crop for its parameters: crop ``c`` reads draws ``PARAMS_FIRST + PARAMS * c + j``, with
``j`` one of the offsets below, so a crop's parameters depend neither on the other crops nor on its window."""
FLIP_DRAW, JITTER_DRAW, FACTOR_DRAWS, GRAY_DRAW, BLUR_DRAW, SIGMA_DRAW, SOLARIZE_DRAW = 0, 1, 2, 7, 8, 9, 10
"""A crop's parameter draws: its flip, its jitter's coin, the four factors (brightness, contrast, saturation, hue:
``FACTOR_DRAWS`` to ``FACTOR_DRAWS + 3``), grayscale's coin, the blur's coin and sigma, solarisation's coin."""
ORDER_DRAWS = (6, 11, 12)
"""The draws that shuffle the jitter's order (Fisher and Yates: the 4th place's, the 3rd's, the 2nd's)."""

STREAM = 32
"""Draws of a sample's stream set aside per crop for its window (``2 * ATTEMPTS + 2`` used): crop ``c`` reads draws
``STREAM * c`` onwards, so a crop's window does not depend on the other crops of the spec."""

KEY_BYTES = 8
"""Bytes of a sample's stream key where the feed hands it to the graph: the last ``KEY_BYTES`` of each row of
its ``keyed_paths`` or ``keys``, little-endian (:func:`key_rows`; the crop step's ``key_of`` reads them)."""
