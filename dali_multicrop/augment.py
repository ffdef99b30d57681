"""The multi-crop augmentations as DALI graph pieces, written once for both devices.

Every function takes and returns DALI ``DataNode`` objects and runs on the device of the image it is
given: a GPU image (after the "mixed" decoder) stays on the GPU, a CPU image stays on the CPU. Random
parameters are drawn on the graph's CPU side, one operator instance per crop, so each crop has its own
draws (DALI repeats draws when two operator instances share a seed; none is set here).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode

from .spec import CropGroup

__all__ = ["sample_window", "resized_crop", "color_ops", "flip_and_normalize", "window_box", "needs_conditionals"]

_CROP_ATTEMPTS = 100
"""Tries to find a window with area and aspect ratio in range before DALI falls back (torchvision: 10)."""

_SOLARIZE_THRESHOLD = 128
"""Pixels at or above this value (0-255) are inverted by solarisation, as torchvision's and DINO's."""


def sample_window(shape_hwc: DataNode, group: CropGroup) -> tuple[DataNode, DataNode]:
    """Draws a crop window as ``RandomResizedCrop`` does: area a fraction ``group.scale`` of the image,
    aspect ratio (w/h) log-uniform in ``group.ratio``. Returns float32 ``(anchor_yx, size_hw)`` in pixels."""
    anchor, size = fn.random_crop_generator(
        shape_hwc, random_area=list(group.scale), random_aspect_ratio=list(group.ratio),
        num_attempts=_CROP_ATTEMPTS)
    return fn.cast(anchor, dtype=types.FLOAT), fn.cast(size, dtype=types.FLOAT)


def window_box(anchor_yx: DataNode, size_hw: DataNode, image_hw: DataNode) -> DataNode:
    """The window as float32 ``(y0, x0, y1, x1)``, each a fraction of the image's height or width."""
    return fn.cat(anchor_yx / image_hw, (anchor_yx + size_hw) / image_hw)


def resized_crop(image: DataNode, anchor_yx: DataNode, size_hw: DataNode, out_size: int) -> DataNode:
    """Cuts the window out of an HWC uint8 image and resizes it to ``out_size x out_size`` with antialiasing
    (linear interpolation), uint8 out."""
    return fn.resize(image, roi_start=anchor_yx, roi_end=anchor_yx + size_hw, roi_relative=False,
                     size=[out_size, out_size], antialias=True, interp_type=types.INTERP_LINEAR,
                     device=image.device)


def _gated_factor(gate: DataNode, strength: float) -> Union[DataNode, float]:
    """``U[max(0, 1-s), 1+s]`` where ``gate`` is 1, exactly 1 where it is 0 (and everywhere when ``s`` is 0)."""
    if strength <= 0:
        return 1.0
    factor = fn.random.uniform(range=[max(0.0, 1.0 - strength), 1.0 + strength])
    return gate * (factor - 1.0) + 1.0


def _coin(probability: float) -> DataNode:
    return fn.random.coin_flip(probability=probability, dtype=types.BOOL)


def needs_conditionals(group: CropGroup) -> bool:
    """Whether the group applies an operation to only some of the crops (DALI conditionals then)."""
    jitter = group.color_jitter.probability if group.color_jitter.active else 0.0
    return any(0 < p < 1 for p in (jitter, group.grayscale_prob, group.blur_prob, group.solarize_prob))


def color_ops(image: DataNode, group: CropGroup) -> DataNode:
    """Colour jitter, grayscale, Gaussian blur and solarisation on an HWC uint8 image, in that order.

    Jitter and grayscale fuse into one ``color_twist`` (identity parameters for the part whose coin said
    no); like blur and solarisation, it runs only on the crops whose coins said yes (DALI conditionals).
    """
    jitter = group.color_jitter
    coins = []
    brightness: Union[DataNode, float] = 1.0
    contrast: Union[DataNode, float] = 1.0
    saturation: Union[DataNode, float] = 1.0
    hue: Union[DataNode, float] = 0.0
    if jitter.active:
        jittered = _coin(jitter.probability)
        coins.append(jittered)
        gate = fn.cast(jittered, dtype=types.FLOAT)
        brightness = _gated_factor(gate, jitter.brightness)
        contrast = _gated_factor(gate, jitter.contrast)
        saturation = _gated_factor(gate, jitter.saturation)
        if jitter.hue > 0:
            hue = gate * fn.random.uniform(range=[-jitter.hue * 360.0, jitter.hue * 360.0])
    if group.grayscale_prob > 0:
        gray = _coin(group.grayscale_prob)
        coins.append(gray)
        saturation = saturation * (1.0 - fn.cast(gray, dtype=types.FLOAT))
    if coins:
        twist = lambda img: fn.color_twist(img, brightness=brightness, contrast=contrast,  # noqa: E731
                                           saturation=saturation, hue=hue, device=img.device)
        always = (jitter.active and jitter.probability >= 1) or group.grayscale_prob >= 1
        image = twist(image) if always else _when(image, coins[0] | coins[1] if len(coins) == 2 else coins[0],
                                                  twist)
    if group.blur_prob > 0:
        image = _maybe(image, group.blur_prob, _blur, group.blur_sigma)
    if group.solarize_prob > 0:
        image = _maybe(image, group.solarize_prob, _solarize)
    return image


def _blur(image: DataNode, sigma_range: Sequence[float]) -> DataNode:
    sigma = fn.random.uniform(range=list(sigma_range))
    return fn.gaussian_blur(image, sigma=sigma, device=image.device)


_SOLARIZE_KEYS = list(range(256))
_SOLARIZE_VALUES = [k if k < _SOLARIZE_THRESHOLD else 255 - k for k in _SOLARIZE_KEYS]


def _solarize(image: DataNode) -> DataNode:
    return fn.lookup_table(image, keys=_SOLARIZE_KEYS, values=_SOLARIZE_VALUES, dtype=types.UINT8,
                           device=image.device)


def _when(image: DataNode, predicate: DataNode, op: Callable[..., DataNode], *args: Any) -> DataNode:
    """``op(image, *args)`` where the bool ``predicate`` is True, ``image`` elsewhere; computed only there."""
    if predicate:
        out = op(image, *args)
    else:
        out = image
    return out


def _maybe(image: DataNode, probability: float, op: Callable[..., DataNode], *args: Any) -> DataNode:
    """``op(image, *args)`` for a share ``probability`` of the samples; computed only for those."""
    if probability >= 1.0:
        return op(image, *args)
    return _when(image, _coin(probability), op, *args)


def flip_and_normalize(image: DataNode, flip_prob: float, mean: Sequence[float], std: Sequence[float],
                       dtype: types.DALIDataType) -> tuple[DataNode, DataNode]:
    """Mirrors horizontally with probability ``flip_prob``, normalises ``(x/255 - mean) / std`` per channel
    and transposes to CHW in ``dtype``. Returns ``(crop, flipped)`` with ``flipped`` int32 0/1."""
    flipped = fn.random.coin_flip(probability=flip_prob)
    crop = fn.crop_mirror_normalize(image, mirror=flipped, output_layout="CHW", dtype=dtype,
                                    mean=[255.0 * m for m in mean], std=[255.0 * s for s in std],
                                    device=image.device)
    return crop, flipped
