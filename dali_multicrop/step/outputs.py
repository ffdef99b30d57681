"""The crop step's outputs: in a pipeline (:func:`crop_step`, DALI's operator) and for Python callers
(:func:`step_outputs`, :func:`crop_flips`), both from the same compiled kernel (:mod:`.step_kernel`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["StepOutputs", "crop_flips", "crop_parameters", "crop_step", "step_outputs"]


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
    from .step_kernel import batch_step

    return StepOutputs(*batch_step(np.ascontiguousarray(constants, dtype=np.float64), _keys(keys),
                                   np.ascontiguousarray(np.asarray(shapes)[:, :2], dtype=np.int64)))


def crop_parameters(constants: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(colour, blur, solarize)`` as :func:`step_outputs` gives them for samples with stream ``keys`` (``[B]``
    uint64), without the windows (a crop's parameters do not depend on its image)."""
    from .step_kernel import batch_parameters

    return batch_parameters(np.ascontiguousarray(constants, dtype=np.float64), _keys(keys))


def crop_flips(constants: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """bool ``[B, n]``: the flips the step draws for samples with stream ``keys`` (``[B]`` uint64): compiled, a few
    microseconds a batch (the feed keeps them on the host for the training loop)."""
    from .step_kernel import batch_flips

    return batch_flips(np.ascontiguousarray(constants, dtype=np.float64), _keys(keys))


def crop_step(keys: Any, shapes: Any, constants: np.ndarray) -> tuple[Any, Any, Any, Any]:
    """In a pipeline definition: the step's nodes ``(rows, colour, blur, solarize)`` (per sample, see the module's
    docstring) from the keys' node (uint8 per sample, the key in its last 8 bytes: the feed's ``keyed_paths`` or
    ``keys``, see :func:`~dali_multicrop.graph.feed.feed_outputs`), the images' shapes (int64 HWC) and the spec's
    ``constants`` (:func:`crop_constants`), which become a constant of the graph (DALI's constants hold no
    float64: the bits travel as int64 and are reinterpreted, exactly)."""
    from nvidia.dali import fn, types

    from .step_kernel import step_operator

    bits = np.ascontiguousarray(constants, dtype=np.float64).view(np.int64)
    node = fn.reinterpret(types.Constant(bits, dtype=types.INT64, device="cpu"), dtype=types.FLOAT64)
    return tuple(step_operator()(keys, node, shapes))
