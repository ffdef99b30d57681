"""The DALI pipeline graph: read once, decode once, crop many times.

One builder serves both devices. The graph reads top to bottom like the data flow:

    keyed paths                          (external source fed by the loader, CPU: per sample one row of a path's
                                          bytes and the sample's stream key)
      -> read the file (DALI threads)    (or: decoded pixels from memory; or DALI's tar-shard reader)
      -> decode once                     ("mixed" = GPU decode for device="gpu", "cpu" otherwise)
      -> the crop step for all crops     (one compiled operator per batch, from the images' sizes, the keys and
                                          the spec's constants, no Python: every crop's window, flip, colour row,
                                          blur and solarisation; see step/. The sizes come from the encoded
                                          headers, so nothing waits for the decoder)
      -> per-crop parameters split out   (one element_extract per kind of parameter, for all crops)
      -> per crop: resize its window (the method's interpolation, antialiased as torchvision on PIL images; a
         mirrored crop has its window's x ends swapped)
         -> ColorJitter + grayscale (as torchvision on PIL images; on the CPU one operator with the resize)
         -> blur -> solarise -> normalise to CHW
      -> outputs: crop_0 .. crop_{n-1} (on the graph's device), windows [4n, 2] (resize regions, then boxes
         (x0, y0), (x1, y1); on the host for both devices: the runner copies them to the GPU in one transfer with
         the flips, indices and labels the feed kept on the host, see transfer.py)

DALI runs CPU operators one at a time, and on the GPU path they run on the host ahead of every kernel, so
the graph keeps the CPU operators per batch few and independent of the number of crops: the windows and
parameters of all crops come from a fixed handful of operators (the crop step and the splits). Only the
pixel work (resize, colour, blur, solarise, normalise) has an operator per crop, on the graph's device.
:func:`dali_multicrop.benchmark.overhead.operator_counts` reports the counts.

Where the GPU graph differs from the CPU graph (the CPU tests are all the testing the GPU path gets without a GPU):

* device placement only: the decoder is "mixed" instead of "cpu"; pixels from memory are copied to the GPU
  (``.gpu()``) after their sizes are read; the pixel operators run on the image's device; the solarisation
  offsets of all crops cross to the GPU in one copy and are split there. Nothing else crosses inside the graph:
  the windows leave it on the host for both devices (flips, indices and labels never enter it);
* the blur: on the CPU a crop blurred only sometimes runs it only where its coin says so (a DALI conditional); on
  the GPU every such crop runs it, an exact identity (``NO_BLUR_SIGMA``) where it is not blurred. The identity is
  tested on the CPU (``tests/test_graph.py``: the same operator leaves the pixels exactly as they are), the GPU
  variant itself only by the gpu tests;
* the resize and colour: on the CPU one compiled operator per crop does both (:mod:`dali_multicrop.graph.cpu_crop`):
  Pillow's resampling arithmetic (:mod:`dali_multicrop.pixels.pil_resize`) and torchvision's colour on PIL images
  (:mod:`dali_multicrop.pixels.pil_colour`), value for value. On the GPU, DALI's ``fn.resize`` (the group's
  interpolation, antialiased: within 0.15 code values of Pillow's), then the same per-pixel colour arithmetic as two
  CUDA kernels per crop (the contrast's grey summed on the device between them,
  :mod:`dali_multicrop.graph.gpu_colour`); the CUDA kernels run in Numba's CUDA simulator in the CPU tests
  (``tests/test_colour_kernel.py``), equal to the CPU's, and are compiled for the GPU's instruction set there;
* nothing else: the windows come from the encoded headers on the host for both (no host step waits for the GPU
  decoder), and every random parameter comes from the same crop step on the host, from the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..common.dali import dali_modules
from ..common.choices import dali_dtype
from .executor import ExecutorSettings
from .feed import EpochFeed
from ..sources.tar import READER_NAME, TarEpoch
from ..recipes.spec import IMAGENET_MEAN, IMAGENET_STD, MultiCropSpec


__all__ = ["Graph", "GraphSettings", "DecoderMemory", "DecoderSettings", "HW_DECODER_LOAD", "DEVICE_PADDING_BUDGET",
           "HOST_PADDING_BUDGET", "build_pipeline", "build_decode_pipeline", "build_floor_pipeline", "decode_only"]


HW_DECODER_LOAD = 0.65
"""Default share of JPEG decoding given to the GPU's hardware decoder: DALI's own default (DALI PR #6366
measured 0.9 as worse for tail latency)."""


NVIDIA_DEVICE_PADDING = 211_025_920
"""Bytes of nvJPEG device buffer per thread in NVIDIA's ImageNet training example (sized for ImageNet's largest
image)."""
NVIDIA_HOST_PADDING = 140_544_512
"""Bytes of each of the two pinned host buffers per thread in NVIDIA's ImageNet training example."""
DEVICE_PADDING_BUDGET = 1 << 30
"""Most bytes of GPU memory the GPU decoder preallocates per rank, all its threads together (1 GiB)."""
HOST_PADDING_BUDGET = 1 << 30
"""Most bytes of pinned host memory the GPU decoder preallocates per rank, all its threads together (1 GiB)."""


@dataclass(frozen=True)
class DecoderMemory:
    """What the GPU ("mixed") decoder preallocates on one rank before the first batch, in bytes: one device buffer
    per thread (``device_bytes`` in all) and two pinned host buffers per thread (``pinned_host_bytes`` in all).
    A larger image than a buffer holds makes nvJPEG grow that buffer once (a pause, not an error)."""

    threads: int
    device_bytes: int
    pinned_host_bytes: int

    def __str__(self) -> str:
        return (f"{self.device_bytes / 2**20:,.0f} MiB of GPU memory and {self.pinned_host_bytes / 2**20:,.0f} MiB of "
                f"pinned host memory (DALI threads: {self.threads})")


@dataclass(frozen=True)
class DecoderSettings:
    """The GPU ("mixed") decoder's memory and hardware-decoder settings (ignored by the CPU decoder).

    ``device_memory_padding`` / ``host_memory_padding``: bytes nvJPEG preallocates per thread (one device
    buffer; two pinned host buffers). ``preallocate_width_hint`` / ``preallocate_height_hint``: pixels, the
    largest image the hardware JPEG decoder prepares for. ``hw_decoder_load``: share of the JPEG work (0-1) given
    to the hardware decoder where the GPU has one (A100, H100, H200); DALI's default 0.65. The defaults are NVIDIA's
    ImageNet example's; :meth:`for_threads` scales the paddings to a thread count within the per-rank budgets.
    """

    device_memory_padding: int = NVIDIA_DEVICE_PADDING
    host_memory_padding: int = NVIDIA_HOST_PADDING
    preallocate_width_hint: int = 5980
    preallocate_height_hint: int = 6430
    hw_decoder_load: float = HW_DECODER_LOAD

    @classmethod
    def for_threads(cls, threads: int, hw_decoder_load: float = HW_DECODER_LOAD) -> "DecoderSettings":
        """NVIDIA's paddings where ``threads`` threads fit them in :data:`DEVICE_PADDING_BUDGET` and
        :data:`HOST_PADDING_BUDGET`, else each thread's share of the budget (16 threads: 64 MiB device, 2 x 32 MiB
        host per thread: a decoded 21-megapixel image, a 32 MB JPEG file)."""
        threads = max(1, int(threads))
        return cls(device_memory_padding=min(NVIDIA_DEVICE_PADDING, DEVICE_PADDING_BUDGET // threads),
                   host_memory_padding=min(NVIDIA_HOST_PADDING, HOST_PADDING_BUDGET // (2 * threads)),
                   hw_decoder_load=hw_decoder_load)

    def memory(self, threads: int) -> DecoderMemory:
        """What these settings preallocate with ``threads`` DALI threads (see :class:`DecoderMemory`)."""
        return DecoderMemory(threads=threads, device_bytes=threads * self.device_memory_padding,
                             pinned_host_bytes=2 * threads * self.host_memory_padding)


@dataclass(frozen=True)
class GraphSettings:
    """Everything the graph needs besides the crop spec.

    ``device``: "gpu" or "cpu". ``device_id``: CUDA device for "gpu" (ignored for "cpu").
    ``dtype``: "float32" or "float16" crops. ``mean``/``std``: per channel, in [0, 1] units (RGB).
    ``seed``: the pipeline's own seed (the graph draws nothing with it; its crop step draws from the feed's keys).
    ``prefetch``: batches DALI computes ahead. ``decoder``: the GPU decoder's settings. ``executor``: how DALI
    schedules the graph (:class:`~dali_multicrop.graph.executor.ExecutorSettings`; default DALI's own).
    """

    device: str
    batch_size: int
    num_threads: int
    seed: int
    device_id: int = 0
    dtype: str = "float32"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    prefetch: int = 2
    decoder: DecoderSettings = DecoderSettings()
    executor: ExecutorSettings = ExecutorSettings()

    @property
    def decoder_memory(self) -> DecoderMemory:
        """What the GPU decoder preallocates with these settings (nothing for the CPU graph)."""
        if self.device != "gpu":
            return DecoderMemory(threads=self.num_threads, device_bytes=0, pinned_host_bytes=0)
        return self.decoder.memory(self.num_threads)

    @property
    def torch_device(self) -> Any:
        """The torch device the graph's outputs are on."""
        import torch

        return torch.device(f"cuda:{self.device_id}" if self.device == "gpu" else "cpu")


@dataclass(frozen=True)
class Graph:
    """A built (not yet run) pipeline with the names of its outputs, in order, and the name of the DALI reader
    that picks its samples (None where the feed does): what ``DALIGenericIterator`` is given."""

    pipeline: Any
    names: tuple[str, ...]
    reader_name: Optional[str] = None


def _output_names(spec: MultiCropSpec, reader: Optional[TarEpoch]) -> tuple[str, ...]:
    """Names of the multi-crop graph's outputs, in order. A graph headed by a ``reader`` outputs, instead of indices
    and labels, each sample's DALI source info (``info``: ``path:offset:member``, zero-padded bytes) and its label
    member's text (``label_text``, zero-padded bytes; absent when the shards have no labels)."""
    side = [] if reader is None else ["info"] + (["label_text"] if reader.labelled else [])
    return tuple([f"crop_{i}" for i in range(spec.num_crops)] + ["windows", *side])

LABEL_TEXT_BYTES = 32
"""Bytes of a label member (``cls``) the graph hands over: a decimal class id with spaces to spare."""


# dtype and layout of each feed output
_FEED_KINDS = {"paths": ("UINT8", ""), "keyed_paths": ("UINT8", ""), "images": ("UINT8", "HWC"),
               "encoded": ("UINT8", ""), "indices": ("INT64", ""), "keys": ("UINT8", "")}


def _feed(source: "EpochFeed") -> dict[str, Any]:
    """The external source's outputs by name: the feed's ``names`` (see
    :func:`~dali_multicrop.graph.feed.feed_outputs`), its ``keyed_paths`` under both the names the graph reads them
    by, ``paths`` and ``keys``."""
    _, fn, types = dali_modules()
    names = source.names
    dtypes, layouts = zip(*(_FEED_KINDS[name] for name in names))
    nodes = dict(zip(names, fn.external_source(source=source, num_outputs=len(names), batch=True, batch_info=True,
                                                dtype=[getattr(types, d) for d in dtypes], layout=list(layouts))))
    if "keyed_paths" in nodes:  # one row per sample serves both: its path ends at a NUL, its key is its last bytes
        nodes["paths"] = nodes["keys"] = nodes.pop("keyed_paths")
    return nodes


def _image(feed: dict[str, Any], on_gpu: bool, decoder: DecoderSettings) -> tuple[Any, Any]:
    """The graph's head: ``(image, size)`` per sample: the image RGB HWC uint8 on the graph's device (decoded pixels
    as they come, ``images``; else encoded bytes, ``encoded``, or each file read by DALI's threads, decoded once),
    and its ``(H, W, C)`` as the decoder will output it, known on the host before decoding (:func:`_sizes`)."""
    _, fn, _ = dali_modules()
    if "images" in feed:
        return (feed["images"].gpu() if on_gpu else feed["images"]), feed["images"].shape()
    encoded = feed["encoded"] if "encoded" in feed else fn.io.file.read(feed["paths"])
    return _decode(encoded, on_gpu, decoder), _sizes(encoded)


def _sizes(encoded: Any) -> Any:
    """Each encoded image's ``(H, W, C)``, read from its header on the host (``fn.peek_image_shape``, EXIF
    orientation applied as the decoder applies it). The crop windows come from these, not from the decoded images'
    shapes, so on the GPU path no host step waits for the GPU decoder within an iteration."""
    _, fn, _ = dali_modules()
    return fn.peek_image_shape(encoded, adjust_orientation=True)


def _reader_side(encoded: Any, label_text: Any, info_bytes: int) -> list[Any]:
    """A reader's per-sample side outputs, fixed-size for torch: the source info and the label text, each
    zero-padded (or cut) to its byte count."""
    _, fn, _ = dali_modules()

    def fixed(node: Any, size: int) -> Any:
        return fn.slice(node, start=[0], shape=[size], axes=[0], out_of_bounds_policy="pad")

    side = [fixed(fn.get_property(encoded, key="source_info"), info_bytes)]
    return side + ([fixed(label_text, LABEL_TEXT_BYTES)] if label_text is not None else [])


def _decode(encoded: Any, on_gpu: bool, decoder: DecoderSettings) -> Any:
    """Encoded images decoded once, RGB HWC uint8 ("mixed": on the GPU, with the hardware JPEG decoder where
    there is one; EXIF orientation applied)."""
    _, fn, types = dali_modules()
    if not on_gpu:
        return fn.decoders.image(encoded, device="cpu", output_type=types.RGB)
    return fn.decoders.image(encoded, device="mixed", output_type=types.RGB,
                             device_memory_padding=decoder.device_memory_padding,
                             host_memory_padding=decoder.host_memory_padding,
                             preallocate_width_hint=decoder.preallocate_width_hint,
                             preallocate_height_hint=decoder.preallocate_height_hint,
                             hw_decoder_load=decoder.hw_decoder_load)


def _pipeline_args(settings: GraphSettings) -> dict[str, Any]:
    on_gpu = settings.device == "gpu"
    return dict(batch_size=settings.batch_size, num_threads=settings.num_threads,
                device_id=settings.device_id if on_gpu else None, seed=settings.seed,
                prefetch_queue_depth=settings.prefetch, exec_dynamic=True, **settings.executor.pipeline_args())


def build_pipeline(source: EpochFeed, spec: MultiCropSpec, settings: GraphSettings, host_stage: bool = False,
                   reader: Optional[TarEpoch] = None) -> Graph:
    """Builds (not yet runs) the multi-crop pipeline.

    ``source`` is an :class:`~dali_multicrop.graph.feed.EpochFeed` for ``spec``: per batch, the outputs named by
    :func:`~dali_multicrop.graph.feed.feed_outputs`; ``StopIteration`` at the end of an epoch. With a ``reader`` (tar
    shards: an :class:`~dali_multicrop.sources.epochs.EpochPlan`'s reader), DALI's webdataset reader reads the samples
    and the feed carries only the stream keys (see :class:`Graph` and :func:`_output_names` for the outputs).

    ``host_stage=True`` (a measurement, with ``settings.device == "cpu"``): only what the GPU variant of this
    graph runs on the host, the CPU decoder standing in for the GPU's; its outputs are the per-crop
    parameters. It prices the GPU path's host-side operators on a machine without a GPU.
    """
    dali, fn, types = dali_modules()
    from . import augment
    from ..step.draws import blurs, solarizes
    from ..step import crop_step

    if source.spec != spec:
        raise ValueError(f"the feed draws for {source.spec}, the graph would make {spec}: give both the same spec")
    constants = source.constants  # made once, with the feed's flips
    n = spec.num_crops
    dtype = dali_dtype(settings.dtype)
    on_gpu = settings.device == "gpu"
    # On the CPU a blur costs real time even as an identity (about as much as the colour), so crops
    # blurred only sometimes run it only where they are; on the GPU the identity costs less than a split/merge.
    skip_blur = [not on_gpu and not host_stage and 0 < g.blur_prob < 1 for g in spec.crops()]

    @dali.pipeline_def(enable_conditionals=any(skip_blur))
    def multicrop():
        feed = _feed(source)
        if reader is not None:
            encoded, label_text = reader.nodes()
            image, size = _decode(encoded, on_gpu, settings.decoder), _sizes(encoded)
        else:
            image, size = _image(feed, on_gpu, settings.decoder)
        # every crop's resize region and box, colour row, blur sigma and solarisation, per sample (see step/)
        windows_out, colours, sigmas, offsets = crop_step(feed["keys"], size, constants)
        ends = _split(windows_out, 2 * n)
        sigma = _split(sigmas, n) if blurs(spec) else [None] * n
        solar = [None] * n
        if solarizes(spec) and not host_stage:  # the offsets cross to the GPU once and are split there
            solar = _split(offsets.gpu() if on_gpu else offsets, n)
        if host_stage:
            colour = _split(colours, n)
            return tuple(node for node in (image, windows_out, *ends, *colour, *sigma) if node is not None)
        # each crop's window resized with its method's interpolation (antialiased), then its ColorJitter and
        # grayscale, as torchvision on PIL images (the colour rows cross to the GPU in one copy)
        resize = settings.executor.resize_args(settings.batch_size)
        rows = _split(colours.gpu() if on_gpu else colours, n)
        crops = [augment.coloured_crop(image, ends[2 * i], ends[2 * i + 1], rows[i], group.size, group.interpolation,
                                       cut=group.center is None, **resize) for i, group in enumerate(spec.crops())]
        out = []
        for i, (group, crop) in enumerate(zip(spec.crops(), crops)):
            if skip_blur[i]:
                crop = augment.when(augment.blurred(sigma[i]), augment.blur, crop, sigma[i])
            elif group.blur_prob > 0:
                crop = augment.blur(crop, sigma[i])
            if group.solarize_prob > 0:
                crop = augment.solarize(crop, solar[i])
            out.append(augment.normalize(crop, settings.mean, settings.std, dtype))
        # the windows leave on the host: the runner hands them to torch's device in one copy with the side
        # outputs the feed kept (flips, indices, labels: no DALI input or output at all)
        side = [windows_out]
        if reader is not None:  # bytes the runner turns into indices and labels on the host
            side += _reader_side(encoded, label_text, reader.info_bytes)
        return (*out, *side)

    pipeline = multicrop(**_pipeline_args(settings))
    if host_stage:  # a measurement, run with pipeline.run(): its outputs are not named
        return Graph(pipeline, ())
    return Graph(pipeline, _output_names(spec, reader), READER_NAME if reader is not None else None)


def _split(node: Any, count: int) -> list[Any]:
    """The first ``count`` rows of a per-sample array as separate nodes (one operator for all)."""
    _, fn, _ = dali_modules()
    out = fn.element_extract(node, element_map=list(range(count)))
    return list(out) if isinstance(out, (list, tuple)) else [out]


def build_decode_pipeline(source: EpochFeed, settings: GraphSettings) -> Graph:
    """The multi-crop graph's head alone (read and decode, no crops): the ceiling the full graph is measured
    against. ``source`` is an :class:`~dali_multicrop.graph.feed.EpochFeed` without a spec. Outputs the decoded
    images and the sample indices."""
    dali, _, _ = dali_modules()

    @dali.pipeline_def
    def decode_only():
        feed = _feed(source)
        return _image(feed, settings.device == "gpu", settings.decoder)[0], feed["indices"]

    return Graph(decode_only(**_pipeline_args(settings)), ("images", "indices"))


def decode_only(data: Any, settings: GraphSettings) -> tuple[EpochFeed, Any, Graph]:
    """``data``'s decode-only graph (:func:`build_decode_pipeline`, not yet built) with its feed and the
    :class:`~dali_multicrop.sources.epochs.ShardPlan` of its epochs (full batches of ``settings.batch_size``, shuffled
    by ``settings.seed``): the ceiling the benchmark and the GIL measurement put beside the loader."""
    from ..sources.epochs import ShardPlan

    feed = EpochFeed(data)
    plan = ShardPlan(len(data), settings.batch_size, drop_last=True, seed=settings.seed)
    return feed, plan, build_decode_pipeline(feed, settings)


def build_floor_pipeline(source: EpochFeed, spec: MultiCropSpec, settings: GraphSettings) -> Graph:
    """The least any multi-crop graph of ``spec`` does: the decode-only head, then per crop one resize of a
    fixed window and the normalisation, nothing drawn, no colour. A measurement: the floor under the full
    graph's cost. ``source`` is an :class:`~dali_multicrop.graph.feed.EpochFeed` without a spec."""
    dali, fn, types = dali_modules()
    from . import augment

    dtype = dali_dtype(settings.dtype)

    @dali.pipeline_def
    def floor():
        feed = _feed(source)
        image, size = _image(feed, settings.device == "gpu", settings.decoder)
        end = fn.cast(size[0:2], dtype=types.FLOAT)  # the whole image, (y, x) in pixels
        # a slightly different window per crop: identical operators would be merged into one by DALI
        resize = settings.executor.resize_args(settings.batch_size)
        crops = [augment.normalize(augment.resized_crop(image, end * (0.01 * i), end, side, **resize),
                                   settings.mean, settings.std, dtype) for i, side in enumerate(spec.sizes)]
        return (*crops, feed["indices"])

    return Graph(floor(**_pipeline_args(settings)), tuple(f"crop_{i}" for i in range(spec.num_crops)) + ("indices",))
