"""Crop windows from the images' sizes: torchvision's ``RandomResizedCrop``, compiled, drawing its own numbers.

The graph computes every crop's window in one step per batch (:func:`window_step`: DALI's ``numba_function``,
a per-sample kernel compiled once per process with Numba, run in DALI's threads with neither Python nor the GIL;
the Python step it replaced cost 2-4 µs of GIL time per sample in DALI's conversions alone). Its inputs are the
images' sizes (read from the encoded headers, see :mod:`dali_multicrop.graph`) and one packed array per sample
(:class:`WindowInput`): per crop its flip, its constants and the sample's 64-bit stream key
(:attr:`BatchDraws.window_keys <dali_multicrop.draws.BatchDraws>`, drawn with the batch's other parameters).

Per crop, as ``RandomResizedCrop.get_params``: ``ATTEMPTS`` candidates (area fraction uniform in ``scale``,
aspect ratio w/h log-uniform in ``ratio``) and one position pair (uniform in [0, 1)) are drawn from the sample's
key (a counter-based stream, SplitMix64 at draw ``STREAM * crop + j``: the same numbers in whichever thread and
order the kernel runs); the first candidate whose window, ``w = round(sqrt(A*s*r))`` by ``h = round(sqrt(A*s/r))``
pixels (``A`` the image's area), fits in the image is placed at the drawn whole-pixel position; when none fits, the
fallback is the centred window with the aspect ratio clamped to ``ratio`` (the whole image when its own aspect
ratio is inside). An evaluation crop (:attr:`CropGroup.center`) takes torchvision's ``Resize`` + ``CenterCrop``
region instead and draws nothing.

The same compiled kernel serves Python callers (:func:`crop_windows` on given draws, :func:`window_rows`,
:meth:`WindowInput.candidates`): there is one implementation of the window maths.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .spec import MultiCropSpec

__all__ = ["FIELDS", "STREAM", "WindowInput", "crop_windows", "window_rows", "window_step"]

# the fields of one crop's row of the packed input (float64)
FLIP = 0
"""Offset of the flip (1.0: mirrored)."""
SCALE_LOW, SCALE_HIGH, LOG_RATIO_LOW, LOG_RATIO_HIGH = 1, 2, 3, 4
"""Offsets of the crop's draw ranges: its area fraction's, and the natural log of its aspect ratio's (w/h)."""
RATIO_LOW, RATIO_HIGH, CENTER, SIZE = 5, 6, 7, 8
"""Offsets of the crop's other constants: its aspect-ratio range (w/h; the fallback clamps to it), its evaluation
fraction (NaN for random windows) and its side in pixels."""
KEY_HIGH, KEY_LOW = 9, 10
"""Offsets of the sample's stream key, its high and low 32 bits as whole float64 numbers (exact: below 2**53),
in every crop's row."""
FIELDS = KEY_LOW + 1
"""Fields per crop of the packed input."""
STREAM = 32
"""Draws of a sample's stream set aside per crop (``2 * ATTEMPTS + 2`` used): crop ``c`` reads draws
``STREAM * c`` onwards, so a crop's draws do not depend on the other crops of the spec."""


class WindowInput:
    """The window step's per-crop constants for ``spec``, and the packing of a batch's flips and keys with them."""

    def __init__(self, spec: MultiCropSpec) -> None:
        groups = spec.crops()
        self.constants = np.array([(g.scale[0], g.scale[1], math.log(g.ratio[0]), math.log(g.ratio[1]), g.ratio[0],
                                    g.ratio[1], math.nan if g.center is None else g.center, g.size)
                                   for g in groups], dtype=np.float64)
        """float64 ``[n, 8]``: per crop the packed fields ``SCALE_LOW`` to ``SIZE`` (scale low and high, log ratio
        low and high, ratio low and high, evaluation fraction or NaN, side in pixels)."""

    def pack(self, flips: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """float64 ``[B, n, FIELDS]``: per crop its flip (``flips``: ``[B, n]`` bool), its constants and its sample's
        stream key (``keys``: ``[B]`` uint64). One array: DALI converts one batch array per input."""
        keys = np.asarray(keys, dtype=np.uint64)
        out = np.empty((len(flips), len(self.constants), FIELDS), dtype=np.float64)
        out[:, :, FLIP] = flips
        out[:, :, SCALE_LOW:SIZE + 1] = self.constants
        out[:, :, KEY_HIGH] = (keys >> np.uint64(32))[:, None]
        out[:, :, KEY_LOW] = (keys & np.uint64(0xFFFFFFFF))[:, None]
        return out

    def candidates(self, keys: np.ndarray) -> np.ndarray:
        """The draws the window step makes for samples with stream ``keys`` (``[B]`` uint64): float64 ``[B, n,
        ATTEMPTS + 1, 2]``, per crop ``ATTEMPTS`` rows (area fraction, aspect ratio w/h), then (u_y, u_x).
        :func:`crop_windows` on them gives the graph's windows."""
        from ._window_kernel import batch_candidates

        keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
        return batch_candidates(self.pack(np.zeros((len(keys), len(self.constants)), dtype=bool), keys))


def window_rows(packed: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """What the graph's window step outputs, for a batch: float32 ``[B, 4n, 2]`` from :meth:`WindowInput.pack`
    arrays and ``[B, >=2]`` image shapes (height, width first, in pixels). Rows ``2c, 2c+1``: crop ``c``'s resize
    region, start ``(y, x)`` then end, in pixels (a mirrored crop has its x start and end swapped, which makes the
    resize mirror it); rows ``2n + 2c, 2n + 2c + 1``: its box ``(x0, y0), (x1, y1)`` as fractions of the image's
    width and height."""
    from ._window_kernel import batch_rows

    return batch_rows(np.ascontiguousarray(packed, dtype=np.float64),
                      np.ascontiguousarray(np.asarray(shapes)[:, :2], dtype=np.int64))


def crop_windows(hw: np.ndarray, window_draws: np.ndarray, ratio_bounds: np.ndarray,
                 center: Optional[np.ndarray] = None, sizes: Optional[np.ndarray] = None) -> np.ndarray:
    """Windows, float64 ``[B, n, 4]`` as ``(y0, x0, h, w)`` in pixels: whole pixels for random windows.

    ``hw``: ``[B, 2]`` image heights and widths in pixels. ``window_draws``: ``[B, n, ATTEMPTS + 1, 2]`` as
    :meth:`WindowInput.candidates` gives them (or any such numbers). ``ratio_bounds``: ``[n, 2]`` each crop's
    aspect-ratio range (w/h), used by the fallback. ``center``: ``[n]``, NaN for random windows, else the
    evaluation window as a fraction ``c`` of the shorter side (:attr:`CropGroup.center`), with ``sizes`` ``[n]``
    the crops' sides ``S``: exactly the source region that torchvision's ``Resize(R)`` then ``CenterCrop(S)`` keep
    (``R = round(S / c)``; the resized size and the crop offset rounded as torchvision rounds them), so one resize
    of that region samples the same points.
    """
    from ._window_kernel import batch_windows

    bounds = np.asarray(ratio_bounds, dtype=np.float64)
    draws = np.asarray(window_draws, dtype=np.float64)
    b, n = draws.shape[:2]
    packed = np.zeros((b, n, FIELDS))
    packed[:, :, RATIO_LOW], packed[:, :, RATIO_HIGH] = bounds[:, 0], bounds[:, 1]
    packed[:, :, CENTER] = math.nan if center is None else center
    packed[:, :, SIZE] = 0.0 if sizes is None else sizes
    return batch_windows(np.ascontiguousarray(draws), packed, np.ascontiguousarray(hw, dtype=np.float64))


def window_step(packed: Any, shapes: Any) -> Any:
    """In a pipeline definition: the window step's node, float32 ``[4n, 2]`` per sample (see :func:`window_rows`),
    from the packed input's node (float64 ``[n, FIELDS]`` per sample) and the images' shapes (int64 HWC)."""
    from ._window_kernel import step_operator

    return step_operator()(packed, shapes)
