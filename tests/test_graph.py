"""The graph's shape: how many operators run per batch, where, and what grows with the number of crops."""

from __future__ import annotations

import pytest

from dali_multicrop import DaliMultiCropLoader, FileList, MultiCropSpec
from dali_multicrop.benchmark.overhead import operator_counts, tiny_spec
from dali_multicrop.recipes.presets import load_preset


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_gpu_and_cpu_graphs_are_defined_here(device):
    """Defining the GPU graph needs no GPU: every operator accepts its inputs' device (caught here, not on a
    lent machine)."""
    spec = load_preset("dino")
    counts, n = operator_counts(spec, device), spec.num_crops
    if device == "cpu":
        assert counts["mixed"] == counts["gpu"] == 0 and counts["cpu"] >= n  # a normalisation per crop at least
    else:
        assert counts["mixed"] == 3  # the decoder, and one copy to the GPU each of the colour rows and the offsets
        # the pixel work on the GPU: a resize, the colour's two kernels and their sum and a normalisation per crop at
        # least (the host's operators do not grow with the crops: tested below)
        assert counts["gpu"] >= 5 * n


@pytest.mark.parametrize("crops", ["2x224,6x96", "2x224,10x96", "dino", "ibot"])
def test_the_gpu_graph_copies_nothing_small_to_the_gpu_but_the_colour_rows_and_solarisation_offsets_once(crops):
    """Only pixels cross to the GPU inside the graph (the decoder's output; pixels from memory, one copy); the
    colour rows of all crops cross in one copy, and so do the solarisation offsets, whatever the number of crops;
    the windows leave the graph on the host, for the runner's one transfer (flips, indices and labels never enter
    it)."""
    import numpy as np

    from dali_multicrop import ArraySource
    from dali_multicrop.benchmark.overhead import host_to_gpu_copies
    from dali_multicrop.graph.feed import EpochFeed
    from dali_multicrop.graph.builder import GraphSettings, build_pipeline

    spec = load_preset(crops) if "x" not in crops else MultiCropSpec.parse(crops)
    solarised = sum(g.count for g in spec.groups if g.solarize_prob > 0)
    for source, head in ((FileList(("unused.jpg",), (0,)), 0), (ArraySource(np.zeros((1, 8, 8, 3), np.uint8), [0]), 1)):
        pipe = build_pipeline(EpochFeed(source, spec), spec,
                              GraphSettings(device="gpu", batch_size=2, num_threads=2, seed=0)).pipeline
        pipe._build_graph()
        assert len(host_to_gpu_copies(pipe)) == head + 1 + (solarised > 0), f"{crops}, {type(source).__name__}"
        devices = [node.device for node in pipe._graph_out]
        assert devices == ["gpu"] * spec.num_crops + ["cpu"]  # crops; windows


def test_host_operators_of_the_gpu_graph_do_not_grow_with_crops():
    few = operator_counts(MultiCropSpec.parse("2x224,2x96"), "gpu")
    many = operator_counts(MultiCropSpec.parse("2x224,10x96"), "gpu")
    assert few["cpu"] == many["cpu"] <= 12
    # per crop, only pixel work on the GPU: resize; colour (two kernels, their sum, the layout's name); normalise
    assert many["gpu"] - few["gpu"] == 8 * 6


def test_cpu_graph_grows_by_its_pixel_operators_only():
    """Per crop: resize, colour (the compiled operator and its layout's name, no copy) and normalise."""
    few = operator_counts(MultiCropSpec.parse("2x224,2x96"), "cpu")["cpu"]
    many = operator_counts(MultiCropSpec.parse("2x224,10x96"), "cpu")["cpu"]
    assert many - few == 8 * 4


def test_blur_and_solarise_add_operators_only_for_crops_that_use_them():
    dino = load_preset("dino")  # every crop may be blurred; one global crop may be solarised
    plain = MultiCropSpec(tuple(g.replace(blur_prob=0.0, solarize_prob=0.0) for g in dino.groups),
                          dino.num_global_groups)
    extra = operator_counts(dino, "gpu")["gpu"] - operator_counts(plain, "gpu")["gpu"]
    # a blur per crop; an add and a lookup table for the one solarised crop; the offsets' split, on the GPU
    assert extra == dino.num_crops + 3


def test_tiny_spec_keeps_the_recipe():
    dino = load_preset("dino")
    small = tiny_spec(dino)
    assert str(small) == "1x32,1x32,8x16" and small.num_global_groups == dino.num_global_groups
    for big, little in zip(dino.groups, small.groups):
        assert big.replace(size=little.size) == little


def test_defining_a_graph_catches_a_misplaced_argument():
    """The check above has teeth: a GPU tensor given where DALI wants a CPU argument fails at definition."""
    import numpy as np
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=2, num_threads=1, device_id=0, exec_dynamic=True)
    def misplaced():
        image = fn.external_source(source=lambda: [np.zeros((4, 4, 3), np.uint8)] * 2, batch=True, layout="HWC")
        roi = fn.external_source(source=lambda: [np.zeros(2, np.float32)] * 2, batch=True)
        return fn.resize(image.gpu(), roi_start=roi.gpu(), roi_end=roi, size=[2, 2])

    with pytest.raises(ValueError, match="must be on CPU"):
        misplaced()._build_graph()


@pytest.mark.parametrize("threads", [1, 2, 4, 8, 16, 64])
def test_the_gpu_decoders_memory_stays_within_the_per_rank_budget(threads):
    from dali_multicrop.graph.builder import (DEVICE_PADDING_BUDGET, HOST_PADDING_BUDGET, NVIDIA_DEVICE_PADDING,
                                      NVIDIA_HOST_PADDING, DecoderSettings)

    settings = DecoderSettings.for_threads(threads)
    memory = settings.memory(threads)
    assert memory.device_bytes == threads * settings.device_memory_padding <= DEVICE_PADDING_BUDGET
    assert memory.pinned_host_bytes == 2 * threads * settings.host_memory_padding <= HOST_PADDING_BUDGET
    # NVIDIA's paddings where they fit; each thread's share of the budget where they do not
    assert settings.device_memory_padding == min(NVIDIA_DEVICE_PADDING, DEVICE_PADDING_BUDGET // threads)
    assert settings.host_memory_padding == min(NVIDIA_HOST_PADDING, HOST_PADDING_BUDGET // (2 * threads))
    if threads == 16:  # a 16-core host with one rank: 3.4 GB of GPU and 4.5 GB of pinned memory before
        assert (settings.device_memory_padding, settings.host_memory_padding) == (64 << 20, 32 << 20)


def test_the_gpu_graph_and_the_loader_use_the_budgeted_decoder():
    from dali_multicrop.graph.feed import EpochFeed
    from dali_multicrop.graph.builder import DecoderSettings, GraphSettings, build_pipeline

    spec = MultiCropSpec.parse("2x224,6x96")
    decoder = DecoderSettings.for_threads(16)
    settings = GraphSettings(device="gpu", batch_size=4, num_threads=16, seed=0, decoder=decoder)
    pipe = build_pipeline(EpochFeed(FileList(("unused.jpg",), (0,)), spec), spec, settings).pipeline
    pipe._build_graph()  # defined, not built: no GPU needed
    (mixed,) = [op._op for op in pipe._ops if op._op.device == "mixed"]
    assert mixed._init_args["device_memory_padding"] == 64 << 20
    assert mixed._init_args["host_memory_padding"] == 32 << 20
    assert settings.decoder_memory.device_bytes == 1 << 30 and settings.decoder_memory.pinned_host_bytes == 1 << 30
    assert "1,024 MiB of GPU memory and 1,024 MiB of pinned host memory (DALI threads: 16)" in str(
        settings.decoder_memory)
    cpu = DaliMultiCropLoader(FileList(("unused.jpg",), (0,)), crops="1x32", device="cpu", num_threads=16)
    assert (cpu.decoder_memory.device_bytes, cpu.decoder_memory.pinned_host_bytes) == (0, 0)
    assert cpu.settings.decoder == DecoderSettings.for_threads(16)


def _exif_jpeg(orientation: int, mode: str = "RGB") -> bytes:
    import io

    from PIL import Image

    from conftest import coordinate_image

    image = Image.fromarray(coordinate_image(48, 64)).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def test_sizes_read_before_decoding_are_the_decoders_for_every_orientation_and_format():
    """The windows come from the encoded headers (fn.peek_image_shape), not from the decoded images: for EXIF
    orientations 1-8, PNG, grayscale and CMYK JPEGs, what the header gives is what the decoder outputs."""
    import io

    import numpy as np
    from PIL import Image

    from conftest import coordinate_image
    from dali_multicrop.common.dali import dali_modules
    from dali_multicrop.graph.builder import DecoderSettings, _decode, _sizes

    def png(mode: str) -> bytes:
        out = io.BytesIO()
        Image.fromarray(coordinate_image(30, 70)).convert(mode).save(out, "PNG")
        return out.getvalue()

    files = [_exif_jpeg(k) for k in range(1, 9)] + [_exif_jpeg(6, "L"), _exif_jpeg(1, "CMYK"), png("RGB"),
                                                   png("L"), png("RGBA"), png("P")]
    dali, fn, types = dali_modules()
    pipe = dali.Pipeline(batch_size=len(files), num_threads=1, device_id=None)
    with pipe:
        encoded = fn.external_source(name="encoded", dtype=types.UINT8)
        pipe.set_outputs(_sizes(encoded), _decode(encoded, False, DecoderSettings()))
    pipe.build()
    pipe.feed_input("encoded", [np.frombuffer(f, np.uint8) for f in files])
    sizes, images = pipe.run()
    for k in range(len(files)):
        assert tuple(np.asarray(sizes.at(k))[:2]) == np.asarray(images.at(k)).shape[:2], f"file {k}"
    turned = [tuple(np.asarray(sizes.at(k))[:2]) for k in range(8)]
    assert turned == [(48, 64)] * 4 + [(64, 48)] * 4  # orientations 5-8 turn the picture a quarter


def test_no_host_step_of_the_gpu_graph_waits_for_the_gpu():
    """Defined without a GPU: no CPU operator takes a GPU or mixed operator's output, for every head (files,
    decoded pixels in memory, encoded bytes) and recipe."""
    from dali_multicrop import ArraySource
    from dali_multicrop.graph.feed import EpochFeed
    from dali_multicrop.graph.builder import GraphSettings, build_pipeline

    import numpy as np

    from dali_multicrop import DatasetSource

    sources = [FileList(("unused.jpg",), (0,)), ArraySource(np.zeros((1, 8, 8, 3), np.uint8), [0]),
               DatasetSource([(b"\xff\xd8\xff", 0)])]
    for source in sources:
        for crops in ("2x224,6x96", "dino"):
            spec = load_preset(crops) if crops == "dino" else MultiCropSpec.parse(crops)
            pipe = build_pipeline(EpochFeed(source, spec), spec,
                                  GraphSettings(device="gpu", batch_size=2, num_threads=2, seed=0)).pipeline
            pipe._build_graph()
            waits = [(op._op.schema_name, node.name) for op in pipe._ops if op._op.device == "cpu"
                     for node in op.inputs if node.device == "gpu"]
            assert waits == [], f"{type(source).__name__}, {crops}: host steps on GPU outputs: {waits}"


def test_the_gpu_graphs_unconditional_blur_is_an_exact_identity_where_a_crop_is_not_blurred():
    """The GPU graph blurs every sometimes-blurred crop, with NO_BLUR_SIGMA where its coin says no: the same
    operator on the CPU leaves the pixels exactly as they are (the CPU graph skips it instead)."""
    import numpy as np

    from conftest import coordinate_image
    from dali_multicrop.graph import augment
    from dali_multicrop.common.dali import dali_modules
    from dali_multicrop.step.layout import NO_BLUR_SIGMA

    dali, fn, types = dali_modules()
    images = [coordinate_image(33, 47), np.random.default_rng(0).integers(0, 256, (20, 31, 3), dtype=np.uint8)]
    pipe = dali.Pipeline(batch_size=2, num_threads=1, device_id=None)
    with pipe:
        image = fn.external_source(name="image", dtype=types.UINT8, layout="HWC")
        sigma = fn.external_source(name="sigma", dtype=types.FLOAT)
        pipe.set_outputs(augment.blur(image, sigma), augment.blur(image, sigma * 0 + 2.0))
    pipe.build()
    pipe.feed_input("image", images)
    pipe.feed_input("sigma", [np.array([NO_BLUR_SIGMA], np.float32)] * 2)
    same, blurred = pipe.run()
    for k, image in enumerate(images):
        assert np.array_equal(np.asarray(same.at(k)), image)
        assert not np.array_equal(np.asarray(blurred.at(k)), image)  # a real blur does change them
