"""The random parameters of a crop and its colour map (see :mod:`dali_multicrop.draws`), compiled by Numba: drawn
from the sample's stream key in the graph's step, one pass, no temporary arrays. Imported when a batch is drawn,
not with the package."""

from __future__ import annotations

import math

import numpy as np

from ._numba import jit
from ._stream import uniform, unit
from .draws import (BLUR_DRAW, CHROMA_BASIS, FACTOR_DRAWS, FLIP_DRAW, GRAY_CHROMA_BASIS, GRAY_DRAW, JITTER_DRAW,
                    MID_GREY, NO_BLUR_SIGMA, ORDER_DRAW, PARAMS, PARAMS_FIRST, SIGMA_DRAW, SOLARIZE_DRAW,
                    SOLARIZE_OFFSET)
from .step import (BLUR_PROB, BRIGHTNESS, CONTRAST, FLIP_PROB, GRAY_PROB, HUE, JITTER_PROB, SATURATION, SIGMA,
                   SOLARIZE_PROB)

__all__ = ["colour_block", "colour_blocks_into", "crop_factors", "crop_flip", "crop_parameters"]


@jit
def colour_block(out: np.ndarray, b: float, c: float, s: float, h: float, brightness_last: bool,
                 gray: bool) -> None:
    """Writes ``out`` (``[3, 4]``): the block ``[M | T]`` of :func:`dali_multicrop.draws.colour_blocks` for the
    factors ``b``, ``c``, ``s``, ``h`` (hue in turns), the order and grayscale."""
    if b == 1.0 and c == 1.0 and s == 1.0 and h == 0.0 and not gray:
        out[:, :] = 0.0
        out[0, 0] = out[1, 1] = out[2, 2] = 1.0
        return
    angle = -2.0 * math.pi * h
    cos, sin = math.cos(angle), math.sin(angle)
    k0, k1, k2, k3, k4, k5 = s, 1.0 - s, cos * s, cos * (1.0 - s), sin * s, sin * (1.0 - s)
    basis = GRAY_CHROMA_BASIS if gray else CHROMA_BASIS
    grey = MID_GREY * (1.0 - c) * (b if brightness_last else 1.0)
    for r in range(3):
        row_sum = 0.0
        for col in range(3):
            e = 3 * r + col
            v = (k0 * basis[0, e] + k1 * basis[1, e] + k2 * basis[2, e] + k3 * basis[3, e] + k4 * basis[4, e]
                 + k5 * basis[5, e])
            row_sum += v
            out[r, col] = (b * c) * v
        out[r, 3] = row_sum * grey


@jit
def colour_blocks_into(out: np.ndarray, brightness: np.ndarray, contrast: np.ndarray, saturation: np.ndarray,
                       hue: np.ndarray, brightness_last: np.ndarray, gray: np.ndarray) -> None:
    """Writes ``out`` (float64 ``[count, 3, 4]``): :func:`colour_block` of each crop's given factors (``[count]``
    each)."""
    for i in range(out.shape[0]):
        colour_block(out[i], brightness[i], contrast[i], saturation[i], hue[i], brightness_last[i], gray[i])


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
def crop_factors(key: np.uint64, crop: int, d: np.ndarray) -> tuple[float, float, float, float, bool, bool]:
    """Crop ``crop``'s colour factors ``(brightness, contrast, saturation, hue, brightness_last, gray)``, drawn from
    the stream ``key`` with its constants ``d``: as torchvision's ``ColorJitter`` (applied with its probability;
    each factor uniform in its range; brightness after contrast on a fair coin; neutral where not applied), then
    ``RandomGrayscale``. Every draw has its own counter: no draw depends on which of the others are made."""
    jittered = _draw(key, crop, JITTER_DRAW) < d[JITTER_PROB]
    b = c = s = 1.0
    h = 0.0
    if jittered:
        b = _drawn_in(key, crop, FACTOR_DRAWS, d, BRIGHTNESS)
        c = _drawn_in(key, crop, FACTOR_DRAWS + 1, d, CONTRAST)
        s = _drawn_in(key, crop, FACTOR_DRAWS + 2, d, SATURATION)
        h = _drawn_in(key, crop, FACTOR_DRAWS + 3, d, HUE)
    brightness_last = jittered and _draw(key, crop, ORDER_DRAW) < 0.5
    return b, c, s, h, brightness_last, _draw(key, crop, GRAY_DRAW) < d[GRAY_PROB]


@jit
def crop_parameters(colour: np.ndarray, key: np.uint64, crop: int, d: np.ndarray) -> tuple[float, int]:
    """Crop ``crop``'s colour map (:func:`colour_block` of :func:`crop_factors`) written to ``colour`` (``[3,
    4]``), and its ``(blur sigma, solarisation offset)``, drawn from the stream ``key`` with its constants ``d``."""
    b, c, s, h, brightness_last, gray = crop_factors(key, crop, d)
    colour_block(colour, b, c, s, h, brightness_last, gray)
    sigma = NO_BLUR_SIGMA
    if _draw(key, crop, BLUR_DRAW) < d[BLUR_PROB]:
        sigma = _drawn_in(key, crop, SIGMA_DRAW, d, SIGMA)
    solar = SOLARIZE_OFFSET if _draw(key, crop, SOLARIZE_DRAW) < d[SOLARIZE_PROB] else 0
    return sigma, solar
