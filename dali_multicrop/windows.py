"""Crop windows from the drawn candidates and the images' sizes: torchvision's ``RandomResizedCrop``, compiled.

The graph computes every crop's window in one step per batch (:func:`window_step`: DALI's ``numba_function``,
a per-sample kernel compiled once per process with Numba, run in DALI's threads with neither Python nor the GIL;
the Python step it replaced cost 2-4 µs of GIL time per sample in DALI's conversions alone). Its inputs are the
images' sizes (read from the encoded headers, see :mod:`dali_multicrop.graph`) and, per crop, the draws of
:mod:`dali_multicrop.draws` packed with the crop's constants (:class:`WindowInput`).

Per crop, as ``RandomResizedCrop.get_params``: the first of ``ATTEMPTS`` candidates whose window,
``w = round(sqrt(A*s*r))`` by ``h = round(sqrt(A*s/r))`` pixels (``A`` the image's area), fits in the image is
placed at a uniformly drawn whole-pixel position; when none fits, the fallback is the centred window with the
aspect ratio clamped to ``ratio`` (the whole image when its own aspect ratio is inside). An evaluation crop
(:attr:`CropGroup.center`) takes torchvision's ``Resize`` + ``CenterCrop`` region instead.

The same compiled kernel serves Python callers (:func:`crop_windows`, :func:`window_rows`): there is one
implementation of the window maths.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .draws import ATTEMPTS
from .spec import MultiCropSpec

__all__ = ["FIELDS", "WindowInput", "crop_windows", "window_rows", "window_step"]

# the fields of one crop's row of the packed input (float64)
POSITION = 2 * ATTEMPTS
"""Offset of the position draws (u_y, u_x) in [0, 1); fields ``0..POSITION-1`` are the attempts' (area fraction,
aspect ratio) pairs."""
FLIP = POSITION + 2
"""Offset of the flip (1.0: mirrored)."""
RATIO_LOW, RATIO_HIGH, CENTER, SIZE = FLIP + 1, FLIP + 2, FLIP + 3, FLIP + 4
"""Offsets of the crop's constants: its aspect-ratio range (w/h; the fallback clamps to it), its evaluation
fraction (NaN for random windows) and its side in pixels."""
FIELDS = SIZE + 1
"""Fields per crop of the packed input."""


class WindowInput:
    """The window step's per-crop constants for ``spec``, and the packing of a batch's draws with them."""

    def __init__(self, spec: MultiCropSpec) -> None:
        groups = spec.crops()
        self.constants = np.array([(g.ratio[0], g.ratio[1], math.nan if g.center is None else g.center, g.size)
                                   for g in groups], dtype=np.float64)
        """float64 ``[n, 4]``: ratio low, ratio high, evaluation fraction or NaN, side (pixels) per crop."""

    def pack(self, window_draws: np.ndarray, flips: np.ndarray) -> np.ndarray:
        """float64 ``[B, n, FIELDS]``: per crop its draws (``[B, n, ATTEMPTS + 1, 2]`` as
        :attr:`BatchDraws.window`), its flip (``[B, n]`` bool) and its constants. One array: DALI hands a
        batch array over at once."""
        return _pack(window_draws, flips, self.constants)


def _pack(window_draws: np.ndarray, flips: Any, constants: np.ndarray) -> np.ndarray:
    """The packed input (see :meth:`WindowInput.pack`): ``flips`` ``[B, n]`` (or a scalar for all), ``constants``
    ``[n, 4]`` as :attr:`WindowInput.constants`."""
    draws = np.asarray(window_draws)
    b, n = draws.shape[:2]
    out = np.empty((b, n, FIELDS), dtype=np.float64)
    out[:, :, :FLIP] = draws.reshape(b, n, FLIP)
    out[:, :, FLIP] = flips
    out[:, :, RATIO_LOW:] = constants
    return out


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
    :attr:`BatchDraws.window`. ``ratio_bounds``: ``[n, 2]`` each crop's aspect-ratio range (w/h), used by the
    fallback. ``center``: ``[n]``, NaN for random windows, else the evaluation window as a fraction ``c`` of
    the shorter side (:attr:`CropGroup.center`), with ``sizes`` ``[n]`` the crops' sides ``S``: exactly the
    source region that torchvision's ``Resize(R)`` then ``CenterCrop(S)`` keep (``R = round(S / c)``; the
    resized size and the crop offset rounded as torchvision rounds them), so one resize of that region
    samples the same points.
    """
    from ._window_kernel import batch_windows

    bounds = np.asarray(ratio_bounds, dtype=np.float64)
    constants = np.column_stack([bounds[:, 0], bounds[:, 1], np.full(len(bounds), math.nan) if center is None
                                 else center, np.zeros(len(bounds)) if sizes is None else sizes])
    packed = _pack(window_draws, 0.0, constants)
    return batch_windows(packed, np.ascontiguousarray(hw, dtype=np.float64))


def window_step(packed: Any, shapes: Any) -> Any:
    """In a pipeline definition: the window step's node, float32 ``[4n, 2]`` per sample (see :func:`window_rows`),
    from the packed input's node (float64 ``[n, FIELDS]`` per sample) and the images' shapes (int64 HWC)."""
    from ._window_kernel import step_operator

    return step_operator()(packed, shapes)
