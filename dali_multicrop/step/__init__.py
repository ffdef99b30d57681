"""The crop step: every crop's window and random parameters, per sample, compiled, in DALI's threads.

One operator per batch (DALI's ``numba_function``: a per-sample kernel compiled once per process with Numba, run in
DALI's threads with neither Python nor the GIL) turns three things into everything the pixel operators need:

* the sample's 64-bit stream key (the feed's only draw per sample: :func:`~dali_multicrop.step.draws.batch_keys`,
  keyed on seed, shard, epoch and batch), read from the last 8 bytes of the sample's row of the feed's keyed paths
  (or keys, for the other heads), little-endian (:func:`~dali_multicrop.step.draws.key_rows`);
* the image's size (int64 HWC, read from the encoded header before decoding: see :mod:`dali_multicrop.graph.builder`);
* the spec's per-crop constants (float64 ``[n, FIELDS]``, :func:`crop_constants`: a constant of the graph, made
  once, never handed over by Python).

From the key, with a counter-based stream (SplitMix64: the same numbers in whichever thread and order the kernel
runs), it draws per crop the window's tries (:mod:`dali_multicrop.step.windows`) and the crop's flip, colour jitter,
grayscale, blur and solarisation (:mod:`dali_multicrop.step.draws`), and outputs per sample:

* ``rows`` float32 ``[4n, 2]``: rows ``2c, 2c+1`` crop ``c``'s resize region, start ``(y, x)`` then end, in pixels
  (a mirrored crop has its x start and end swapped, which makes the resize mirror it); rows ``2n + 2c, 2n + 2c +
  1`` its box ``(x0, y0), (x1, y1)`` as fractions of the image's width and height;
* ``colour`` float32 ``[n, ROW_FIELDS]``: each crop's colour row (its jitter's factors, hue shift and order, and
  grayscale: :mod:`dali_multicrop.pixels.pil_colour`);
* ``blur`` float32 ``[n, 1]``: each crop's blur sigma in output pixels (``NO_BLUR_SIGMA``: not blurred);
* ``solarize`` uint16 ``[n, 1]``: 0, or ``SOLARIZE_OFFSET`` for a solarised crop.

The same compiled functions serve Python callers (:func:`step_outputs`, :func:`crop_flips`,
:func:`~dali_multicrop.step.draws.draw_batch`): one implementation of the maths and of the stream.

The package's modules, bottom to top; each imports only those above it in this list (``tests/test_architecture.py``
holds the package to one direction), and the compiled ones are imported only when a graph is built or a batch drawn,
so that importing the package loads neither Numba nor LLVM:

=================  ==================================================================================================
``layout``         the constants' fields, where each crop reads its draws in a sample's stream, :func:`crop_constants`
``stream``         the counter-based stream (SplitMix64), compiled
``window_kernel``  a crop's window: ``RandomResizedCrop``'s tries and fallback, an evaluation window, compiled
``draw_kernel``    a crop's flip, colour row, blur sigma and solarisation, compiled
``step_kernel``    the step per sample (both kernels) and DALI's operator made of it
``outputs``        the step in a pipeline (:func:`crop_step`) and for Python (:func:`step_outputs`, :func:`crop_flips`)
``windows``        windows from given draws, the tries of given keys (Python's view of ``window_kernel``)
``draws``          the keys of a batch (:func:`~dali_multicrop.step.draws.batch_keys`) and all its parameters
                   (:func:`~dali_multicrop.step.draws.draw_batch`)
=================  ==================================================================================================
"""

from .layout import FIELDS, crop_constants
from .outputs import StepOutputs, crop_flips, crop_step, step_outputs

__all__ = ["FIELDS", "StepOutputs", "crop_constants", "crop_flips", "crop_step", "step_outputs"]
