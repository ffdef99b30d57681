"""The random parameters of a crop (see :mod:`dali_multicrop.step.draws`), compiled by Numba: drawn
from the sample's stream key in the graph's step, one pass, no temporary arrays. Imported when a batch is drawn,
not with the package."""

from __future__ import annotations

import numpy as np

from ..common.compiled import jit
from ..pixels.pil_colour import BRIGHTNESS as BRIGHTNESS_ID
from ..pixels.pil_colour import CONTRAST as CONTRAST_ID
from ..pixels.pil_colour import ROW_GRAY, ROW_ORDER, ROW_SHIFT, hue_shift
from ..pixels.pil_colour import SATURATION as SATURATION_ID
from .layout import (BLUR_DRAW, BLUR_PROB, BRIGHTNESS, CONTRAST, FACTOR_DRAWS, FLIP_DRAW, FLIP_PROB, GRAY_DRAW,
                     GRAY_PROB, HUE, JITTER_DRAW, JITTER_PROB, NO_BLUR_SIGMA, ORDER_DRAWS, PARAMS, PARAMS_FIRST,
                     SATURATION, SIGMA, SIGMA_DRAW, SOLARIZE_DRAW, SOLARIZE_OFFSET, SOLARIZE_PROB)
from .stream import uniform, unit

__all__ = ["crop_colour", "crop_flip", "crop_parameters"]


@jit
def _draw(key: np.uint64, crop: int, j: int) -> float:
    """Parameter draw ``j`` of crop ``crop`` of the stream ``key`` (apart from the windows' draws)."""
    return unit(key, PARAMS_FIRST + PARAMS * crop + j)


@jit
def _drawn_in(key: np.uint64, crop: int, j: int, d: np.ndarray, field: int) -> float:
    """Parameter draw ``j`` of crop ``crop`` mapped to the range of the constants ``d[field]``, ``d[field + 1]``."""
    return uniform(key, PARAMS_FIRST + PARAMS * crop + j, d[field], d[field + 1])


@jit
def crop_flip(key: np.uint64, crop: int, d: np.ndarray) -> bool:
    """Whether crop ``crop`` (constants ``d``) of the sample with stream ``key`` is mirrored."""
    return _draw(key, crop, FLIP_DRAW) < d[FLIP_PROB]


@jit
def crop_colour(row: np.ndarray, key: np.uint64, crop: int, d: np.ndarray) -> None:
    """Writes crop ``crop``'s colour row (float32 ``[ROW_FIELDS]``, :mod:`dali_multicrop.pixels.pil_colour`), drawn from
    the stream ``key`` with its constants ``d``: torchvision's ``ColorJitter`` applied with its probability (each
    factor uniform in its range, the hue's as its shift, the order a uniform permutation of the four operations,
    shuffled as Fisher and Yates; nothing where it is not applied), then ``RandomGrayscale``'s coin. Every draw has
    its own counter: no draw depends on which of the others are made."""
    row[BRIGHTNESS_ID] = row[CONTRAST_ID] = row[SATURATION_ID] = 1.0
    row[ROW_SHIFT] = -1.0
    for k in range(4):
        row[ROW_ORDER + k] = k
    if _draw(key, crop, JITTER_DRAW) < d[JITTER_PROB]:
        row[BRIGHTNESS_ID] = _drawn_in(key, crop, FACTOR_DRAWS, d, BRIGHTNESS)
        row[CONTRAST_ID] = _drawn_in(key, crop, FACTOR_DRAWS + 1, d, CONTRAST)
        row[SATURATION_ID] = _drawn_in(key, crop, FACTOR_DRAWS + 2, d, SATURATION)
        if d[HUE + 1] > 0:  # torchvision's shift of the hue channel
            row[ROW_SHIFT] = hue_shift(_drawn_in(key, crop, FACTOR_DRAWS + 3, d, HUE))
        for k in range(3, 0, -1):
            j = min(int(_draw(key, crop, ORDER_DRAWS[3 - k]) * (k + 1)), k)
            row[ROW_ORDER + k], row[ROW_ORDER + j] = row[ROW_ORDER + j], row[ROW_ORDER + k]
    row[ROW_GRAY] = 1.0 if _draw(key, crop, GRAY_DRAW) < d[GRAY_PROB] else 0.0


@jit
def crop_parameters(colour: np.ndarray, key: np.uint64, crop: int, d: np.ndarray) -> tuple[float, int]:
    """Crop ``crop``'s colour row (:func:`crop_colour`) written to ``colour``, and its ``(blur sigma, solarisation
    offset)``, drawn from the stream ``key`` with its constants ``d``."""
    crop_colour(colour, key, crop, d)
    sigma = NO_BLUR_SIGMA
    if _draw(key, crop, BLUR_DRAW) < d[BLUR_PROB]:
        sigma = _drawn_in(key, crop, SIGMA_DRAW, d, SIGMA)
    solar = SOLARIZE_OFFSET if _draw(key, crop, SOLARIZE_DRAW) < d[SOLARIZE_PROB] else 0
    return sigma, solar
