"""Crop windows from the images' sizes: torchvision's ``RandomResizedCrop``, compiled, drawing its own numbers.

The graph computes every crop's window in its crop step (:mod:`dali_multicrop.step`: one compiled operator per
batch, in DALI's threads, with neither Python nor the GIL; the Python step it replaced cost 2-4 µs of GIL time per
sample in DALI's conversions alone), from the images' sizes (read from the encoded headers, see
:mod:`dali_multicrop.graph.builder`), the spec's per-crop constants and each sample's 64-bit stream key.

Per crop, as ``RandomResizedCrop.get_params``: ``ATTEMPTS`` candidates (area fraction uniform in ``scale``,
aspect ratio w/h log-uniform in ``ratio``) and one position pair (uniform in [0, 1)) are drawn from the sample's
key (a counter-based stream, SplitMix64 at draw ``STREAM * crop + j``: the same numbers in whichever thread and
order the kernel runs); the first candidate whose window, ``w = round(sqrt(A*s*r))`` by ``h = round(sqrt(A*s/r))``
pixels (``A`` the image's area), fits in the image is placed at the drawn whole-pixel position; when none fits, the
fallback is the centred window with the aspect ratio clamped to ``ratio`` (the whole image when its own aspect
ratio is inside). An evaluation crop (:attr:`CropGroup.center`) takes torchvision's ``Resize`` + ``CenterCrop``
region instead and draws nothing.

The same compiled kernel serves Python callers (:func:`crop_windows` on given draws, :func:`window_candidates`,
:func:`~dali_multicrop.step.step_outputs`): there is one implementation of the window maths.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .layout import CENTER, FIELDS, RATIO_HIGH, RATIO_LOW, SIZE, STREAM

__all__ = ["STREAM", "crop_windows", "window_candidates"]


def window_candidates(constants: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The draws the crop step makes for samples with stream ``keys`` (``[B]`` uint64), with the spec's
    ``constants`` (:func:`~dali_multicrop.step.crop_constants`): float64 ``[B, n, ATTEMPTS + 1, 2]``, per crop
    ``ATTEMPTS`` rows (area fraction, aspect ratio w/h), then (u_y, u_x). :func:`crop_windows` on them gives the
    graph's windows."""
    from .window_kernel import batch_candidates

    return batch_candidates(np.ascontiguousarray(constants, dtype=np.float64),
                            np.ascontiguousarray(np.asarray(keys, dtype=np.uint64).reshape(-1)))


def crop_windows(hw: np.ndarray, window_draws: np.ndarray, ratio_bounds: np.ndarray,
                 center: Optional[np.ndarray] = None, sizes: Optional[np.ndarray] = None) -> np.ndarray:
    """Windows, float64 ``[B, n, 4]`` as ``(y0, x0, h, w)`` in pixels: whole pixels for random windows.

    ``hw``: ``[B, 2]`` image heights and widths in pixels. ``window_draws``: ``[B, n, ATTEMPTS + 1, 2]`` as
    :func:`window_candidates` gives them (or any such numbers). ``ratio_bounds``: ``[n, 2]`` each crop's
    aspect-ratio range (w/h), used by the fallback. ``center``: ``[n]``, NaN for random windows, else the
    evaluation window as a fraction ``c`` of the shorter side (:attr:`CropGroup.center`), with ``sizes`` ``[n]``
    the crops' sides ``S``: exactly the source region that torchvision's ``Resize(R)`` then ``CenterCrop(S)`` keep
    (``R = round(S / c)``; the resized size and the crop offset rounded as torchvision rounds them), so one resize
    of that region samples the same points.
    """
    from .window_kernel import batch_windows

    bounds = np.asarray(ratio_bounds, dtype=np.float64)
    draws = np.asarray(window_draws, dtype=np.float64)
    constants = np.zeros((draws.shape[1], FIELDS))
    constants[:, RATIO_LOW], constants[:, RATIO_HIGH] = bounds[:, 0], bounds[:, 1]
    constants[:, CENTER] = math.nan if center is None else center
    constants[:, SIZE] = 0.0 if sizes is None else sizes
    return batch_windows(np.ascontiguousarray(draws), constants, np.ascontiguousarray(hw, dtype=np.float64))
