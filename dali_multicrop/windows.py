"""Crop windows from the drawn candidates and the decoded images' sizes: torchvision's ``RandomResizedCrop``,
vectorised over a whole batch and all its crops.

The graph calls :class:`WindowFunction` once per batch (one ``python_function`` operator, whatever the number
of crops) with the decoded images' shapes and the draws of :mod:`dali_multicrop.draws`. Per crop, as
``RandomResizedCrop.get_params``: the first of ``ATTEMPTS`` candidates whose window, ``w = round(sqrt(A*s*r))``
by ``h = round(sqrt(A*s/r))`` pixels (``A`` the image's area), fits in the image is placed at a uniformly drawn
whole-pixel position; when none fits, the fallback is the centred window with the aspect ratio clamped to
``ratio`` (the whole image when its own aspect ratio is inside).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .draws import ATTEMPTS
from .spec import MultiCropSpec

__all__ = ["crop_windows", "WindowFunction", "pack_window_input", "windows_to_outputs"]


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
    hw = np.asarray(hw, dtype=np.float64)
    draws = np.asarray(window_draws)
    height, width = hw[:, 0, None], hw[:, 1, None]  # [B, 1]
    area = height * width
    # the first attempt fits for most crops: the later attempts are computed only for the crops it misses
    w_found, h_found, found = _attempts(area, height, width, draws[:, :, :1])
    missed = np.nonzero(~found)
    if missed[0].size:
        rows = missed[0]
        w_later, h_later, found_later = _attempts(area[rows, 0], height[rows, 0], width[rows, 0],
                                                  draws[missed][:, 1:ATTEMPTS])
        w_found[missed], h_found[missed], found[missed] = w_later, h_later, found_later

    low, high = ratio_bounds[:, 0], ratio_bounds[:, 1]  # [n]
    in_ratio = width / height  # [B, 1]
    narrow, wide = in_ratio < low, in_ratio > high
    w_fall = np.where(wide, np.rint(height * high), width)
    h_fall = np.where(narrow, np.rint(width / low), height)
    w_fall, h_fall = np.maximum(w_fall, 1.0), np.maximum(h_fall, 1.0)

    w_out = np.where(found, w_found, w_fall)
    h_out = np.where(found, h_found, h_fall)
    u_y, u_x = draws[..., ATTEMPTS, 0], draws[..., ATTEMPTS, 1]
    y_free, x_free = height - h_out, width - w_out
    y0 = np.where(found, np.minimum(np.floor(u_y * (y_free + 1)), y_free), np.floor(y_free / 2))
    x0 = np.where(found, np.minimum(np.floor(u_x * (x_free + 1)), x_free), np.floor(x_free / 2))
    windows = np.stack([y0, x0, h_out, w_out], axis=-1)
    if center is not None and not np.all(np.isnan(center)):
        fixed = ~np.isnan(center)
        windows[:, fixed] = _centre_windows(height, width, center[fixed], sizes[fixed])
    return windows


def _attempts(area: np.ndarray, height: np.ndarray, width: np.ndarray,
              draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RandomResizedCrop's attempts on the leading axes of ``draws`` (``[..., K, 2]``: area fraction and aspect
    ratio per attempt): the first fitting attempt's ``w`` and ``h`` (float64 whole pixels, over the leading axes),
    and whether one fits. ``area``, ``height`` and ``width`` broadcast against the leading axes (an image's
    values, in pixels)."""
    scale = draws[..., 0].astype(np.float64)
    ratio = draws[..., 1].astype(np.float64)
    target = area[..., None] * scale
    w = np.rint(np.sqrt(target * ratio))  # round half to even, as Python's round() in torchvision
    h = np.rint(np.sqrt(target / ratio))
    fits = (w > 0) & (w <= width[..., None]) & (h > 0) & (h <= height[..., None])
    first = fits.argmax(axis=-1)[..., None]
    return (np.take_along_axis(w, first, axis=-1)[..., 0], np.take_along_axis(h, first, axis=-1)[..., 0],
            fits.any(axis=-1))


def _centre_windows(height: np.ndarray, width: np.ndarray, fraction: np.ndarray,
                    crop: np.ndarray) -> np.ndarray:
    """``[B, k, 4]`` source regions of torchvision's ``Resize(R)`` + ``CenterCrop(S)`` for crops of ``S`` =
    ``crop`` pixels and ``R = round(S / fraction)``."""
    resize = np.rint(crop / fraction)  # [k]
    short = np.minimum(height, width)  # [B, 1]
    # torchvision: the shorter side becomes R, the longer int(R * long / short)
    rh = np.where(height <= width, resize, np.floor(resize * height / short))
    rw = np.where(width <= height, resize, np.floor(resize * width / short))
    top, left = np.rint((rh - crop) / 2), np.rint((rw - crop) / 2)
    sy, sx = height / rh, width / rw
    return np.stack([top * sy, left * sx, crop * sy, crop * sx], axis=-1)


def windows_to_outputs(windows: np.ndarray, hw: np.ndarray, flips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The graph's two products of the windows: resize regions and boxes.

    Returns ``rois`` float32 ``[B, 2n, 2]`` (crop ``c``: row ``2c`` the start ``(y, x)``, row ``2c+1`` the end,
    in pixels; a flipped crop has its x start and end swapped, which makes the resize mirror it) and ``boxes``
    float32 ``[B, n, 4]``: ``(x0, y0, x1, y1)`` as fractions of the image's width and height.
    """
    y0, x0, h, w = (windows[..., k].astype(np.float64) for k in range(4))
    y1, x1 = y0 + h, x0 + w
    x_start = np.where(flips, x1, x0)
    x_end = np.where(flips, x0, x1)
    b, n = windows.shape[:2]
    rois = np.stack([np.stack([y0, x_start], -1), np.stack([y1, x_end], -1)], axis=2).reshape(b, 2 * n, 2)
    height, width = hw[:, 0, None].astype(np.float64), hw[:, 1, None].astype(np.float64)
    boxes = np.stack([x0 / width, y0 / height, x1 / width, y1 / height], axis=-1)
    return rois.astype(np.float32), boxes.astype(np.float32)


def pack_window_input(window_draws: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """The window step's one input: float32 ``[B, n, ATTEMPTS + 2, 2]``, the draws with a last row
    ``(flip, 0)`` per crop (DALI converts each input of a Python step sample by sample: one input, not two)."""
    b, n = flips.shape
    out = np.zeros((b, n, ATTEMPTS + 2, 2), dtype=np.float32)
    out[:, :, :ATTEMPTS + 1] = window_draws
    out[:, :, ATTEMPTS + 1, 0] = flips
    return out


class WindowFunction:
    """The graph's window step (``fn.python_function``, ``batch_processing=True``, once per batch): from the
    per-sample image shapes (HWC) and :func:`pack_window_input` arrays to one float32 ``[4n, 2]`` array per
    sample: rows ``0..2n-1`` the resize regions (``rois`` of :func:`windows_to_outputs`), rows ``2n..4n-1`` the
    boxes, ``(x0, y0), (x1, y1)`` per crop (``[n, 4]`` once reshaped)."""

    def __init__(self, spec: MultiCropSpec) -> None:
        self._ratio_bounds = np.array([g.ratio for g in spec.crops()], dtype=np.float64)
        self._center = np.array([np.nan if g.center is None else g.center for g in spec.crops()])
        self._sizes = np.array(spec.sizes, dtype=np.float64)

    def __call__(self, shapes: Sequence[np.ndarray], packed: Sequence[np.ndarray]) -> list[np.ndarray]:
        hw = np.stack(shapes)[:, :2]
        draws = np.stack(packed)
        windows = crop_windows(hw, draws[:, :, :ATTEMPTS + 1], self._ratio_bounds, self._center, self._sizes)
        rois, boxes = windows_to_outputs(windows, hw, draws[:, :, ATTEMPTS + 1, 0] > 0.5)
        return list(np.concatenate([rois, boxes.reshape(len(hw), -1, 2)], axis=1))
