"""Colour ops and normalisation: values stay within the configured strengths and spread over them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import DEVICES, pixels, write_folder
from dali_multicrop import ColorJitter, CropGroup, DaliMultiCropLoader, MultiCropSpec

OFF = ColorJitter(probability=0.0)
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def flat(rgb, size=64) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (size, size, 3)).copy()


def crop_pixels(folder, group: CropGroup, device: str, epochs: int = 3, **kw) -> np.ndarray:
    """All crops of ``epochs`` epochs as pixel values, shape [n, 3, S, S]."""
    loader = DaliMultiCropLoader(folder, crops=MultiCropSpec((group,)), batch_size=8, device=device, seed=11,
                                 num_threads=2, mean=kw.get("mean", MEAN), std=kw.get("std", STD))
    out = []
    for _ in range(epochs):
        for batch in loader:
            out.extend(pixels(c, MEAN, STD) for c in batch.crops)
    return torch.cat(out).numpy()


def recipe(**changes) -> CropGroup:
    base = CropGroup(count=4, size=16, scale=(0.3, 1.0), flip_prob=0.0, color_jitter=OFF)
    return base.replace(**changes)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    make = lambda name, rgb: write_folder(tmp_path_factory.mktemp(name), {"x": [flat(rgb)] * 8})
    step = flat((40, 40, 40))
    step[:, 32:] = 220
    return {
        "gray100": make("gray100", (100, 100, 100)),
        "gray60": make("gray60", (60, 60, 60)),
        "colour": make("colour", (150, 110, 90)),
        "mixed": make("mixed", (200, 100, 60)),
        "step": write_folder(tmp_path_factory.mktemp("step"), {"x": [step] * 8}),
    }


def spread(values: np.ndarray, lo: float, hi: float, tol: float) -> None:
    assert values.min() >= lo - tol and values.max() <= hi + tol, (values.min(), values.max(), lo, hi)
    span = hi - lo
    assert values.min() < lo + 0.25 * span and values.max() > hi - 0.25 * span, (values.min(), values.max())


@pytest.mark.parametrize("device", DEVICES)
def test_normalisation_is_exact(folders, device):
    loader = DaliMultiCropLoader(folders["colour"], crops=MultiCropSpec((recipe(),)), batch_size=8,
                                 device=device, mean=MEAN, std=STD, num_threads=2)
    batch = next(iter(loader))
    want = (torch.tensor([150, 110, 90], dtype=torch.float64) / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    for crop in batch.crops:
        got = crop.cpu().double().mean(dim=(0, 2, 3))
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
        assert crop.std(dim=(2, 3)).max() < 1e-5  # a flat image stays flat


@pytest.mark.parametrize("device", DEVICES)
def test_float16_output(folders, device):
    loader = DaliMultiCropLoader(folders["colour"], crops=MultiCropSpec((recipe(),)), batch_size=8,
                                 device=device, dtype="float16", mean=MEAN, std=STD, num_threads=2)
    batch = next(iter(loader))
    assert all(c.dtype == torch.float16 for c in batch.crops)
    want = (torch.tensor([150, 110, 90]) / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(batch.crops[0].float().mean(dim=(0, 2, 3)).cpu(), want, atol=2e-3, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_brightness_within_strength(folders, device):
    px = crop_pixels(folders["gray100"], recipe(color_jitter=ColorJitter(1.0, 0.3, 0, 0, 0)), device)
    factor = px.mean(axis=(1, 2, 3)) / 100.0
    spread(factor, 0.7, 1.3, tol=0.01)


@pytest.mark.parametrize("device", DEVICES)
def test_contrast_within_strength(folders, device):
    # DALI scales contrast about mid-grey (128), torchvision about the image's mean (see augment.color_ops)
    px = crop_pixels(folders["gray60"], recipe(color_jitter=ColorJitter(1.0, 0, 0.4, 0, 0)), device)
    factor = (128.0 - px.mean(axis=(1, 2, 3))) / (128.0 - 60.0)
    spread(factor, 0.6, 1.4, tol=0.02)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


@pytest.mark.parametrize("device", DEVICES)
def test_saturation_within_strength(folders, device):
    px = crop_pixels(folders["colour"], recipe(color_jitter=ColorJitter(1.0, 0, 0, 0.5, 0)), device)
    rgb = px.mean(axis=(2, 3))
    src = np.array([150.0, 110.0, 90.0])
    factor = np.linalg.norm(rgb - _luma(rgb)[:, None], axis=1) / np.linalg.norm(src - _luma(src))
    spread(factor, 0.5, 1.5, tol=0.03)


def _chroma_angle(rgb: np.ndarray) -> np.ndarray:
    """Angle of the colour in the YIQ chroma plane, in degrees (DALI's hue rotates this plane)."""
    i = 0.596 * rgb[..., 0] - 0.274 * rgb[..., 1] - 0.322 * rgb[..., 2]
    q = 0.211 * rgb[..., 0] - 0.523 * rgb[..., 1] + 0.312 * rgb[..., 2]
    return np.degrees(np.arctan2(q, i))


@pytest.mark.parametrize("device", DEVICES)
def test_hue_within_strength(folders, device):
    hue = 0.1  # a tenth of a turn: +-36 degrees
    px = crop_pixels(folders["colour"], recipe(color_jitter=ColorJitter(1.0, 0, 0, 0, hue)), device)
    shift = _chroma_angle(px.mean(axis=(2, 3))) - _chroma_angle(np.array([150.0, 110.0, 90.0]))
    shift = (shift + 180) % 360 - 180
    spread(shift, -36.0, 36.0, tol=2.5)


@pytest.mark.parametrize("device", DEVICES)
def test_jitter_probability(folders, device):
    px = crop_pixels(folders["gray100"], recipe(color_jitter=ColorJitter(0.5, 0.4, 0, 0, 0)), device, epochs=6)
    changed = np.abs(px.mean(axis=(1, 2, 3)) - 100.0) > 0.5
    n = changed.size
    # a drawn factor within 0.005 of 1 also looks unchanged: expected share 0.5 * (1 - 0.01/0.8)
    assert abs(changed.mean() - 0.494) < 4 * math.sqrt(0.25 / n), f"{changed.mean()} of {n} crops jittered"


@pytest.mark.parametrize("device", DEVICES)
def test_grayscale(folders, device):
    px = crop_pixels(folders["mixed"], recipe(grayscale_prob=1.0), device, epochs=1)
    luma = _luma(np.array([200.0, 100.0, 60.0]))
    assert np.allclose(px, luma, atol=1.0)
    px = crop_pixels(folders["mixed"], recipe(grayscale_prob=0.5), device, epochs=6)
    gray = px.std(axis=1).max(axis=(1, 2)) < 1.0
    assert abs(gray.mean() - 0.5) < 4 * math.sqrt(0.25 / gray.size)


@pytest.mark.parametrize("device", DEVICES)
def test_solarize(folders, device):
    px = crop_pixels(folders["mixed"], recipe(solarize_prob=1.0), device, epochs=1)
    # 200 >= 128 inverts to 55; 100 and 60 stay
    assert np.allclose(px.mean(axis=(0, 2, 3)), [55, 100, 60], atol=0.6)
    px = crop_pixels(folders["mixed"], recipe(solarize_prob=0.5), device, epochs=6)
    solarized = px[:, 0].mean(axis=(1, 2)) < 128
    assert abs(solarized.mean() - 0.5) < 4 * math.sqrt(0.25 / solarized.size)


@pytest.mark.parametrize("device", DEVICES)
def test_blur(folders, device):
    # the step image: 40 left, 220 right; whole-image crops keep the edge in view
    sharp = crop_pixels(folders["step"], recipe(scale=(1.0, 1.0), size=64, count=1), device, epochs=1)
    blurred = crop_pixels(folders["step"], recipe(scale=(1.0, 1.0), size=64, count=1, blur_prob=1.0,
                                                  blur_sigma=(1.5, 2.0)), device, epochs=1)
    mid = lambda px: ((px[:, 0] > 60) & (px[:, 0] < 200)).sum(axis=(1, 2)) / 64  # columns in between
    assert mid(sharp).max() <= 1.0
    assert mid(blurred).min() >= 3.0
    # and the blur does not move the overall brightness
    assert np.allclose(blurred.mean(axis=(1, 2, 3)), sharp.mean(axis=(1, 2, 3)), atol=1.0)
    sometimes = crop_pixels(folders["step"], recipe(scale=(1.0, 1.0), size=64, count=4, blur_prob=0.5,
                                                    blur_sigma=(1.5, 2.0)), device, epochs=3)
    rate = (mid(sometimes) >= 3.0).mean()
    assert abs(rate - 0.5) < 4 * math.sqrt(0.25 / len(sometimes))


@pytest.mark.parametrize("device", DEVICES)
def test_jitter_and_grayscale_draw_independently(folders, device):
    group = recipe(color_jitter=ColorJitter(0.5, 0.4, 0, 0, 0), grayscale_prob=0.5)
    px = crop_pixels(folders["mixed"], group, device, epochs=6)
    gray = px.std(axis=1).max(axis=(1, 2)) < 1.0
    # brightness scales every channel: the red/green ratio survives, the level moves
    level = px.mean(axis=(1, 2, 3))
    reference = np.where(gray, _luma(np.array([200.0, 100.0, 60.0])), np.mean([200.0, 100.0, 60.0]))
    jittered = np.abs(level - reference) > 0.5
    n = gray.size
    band = 4 * math.sqrt(0.25 / n)
    assert abs(gray.mean() - 0.5) < band and abs(jittered.mean() - 0.494) < band
    untouched = ~gray & ~jittered
    assert abs(untouched.mean() - 0.25) < band
    assert np.allclose(px[untouched].mean(axis=(0, 2, 3)), [200, 100, 60], atol=0.6)


def compiled_against_dali(recipe: str, batch: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each crop of one batch made by the CPU graph both ways (``cpu_kernel`` "dali": the GPU graph's resize and
    colour operators, on the CPU; "opencv": OpenCV's step) over the same draws, in 0-255 units; the operator counts
    checked on the way."""
    from dali_multicrop import FileList
    from dali_multicrop.feed import EpochFeed
    from dali_multicrop.graph import GraphSettings, build_pipeline
    from dali_multicrop.presets import parse_crops
    from dali_multicrop.sample_data import ensure_sample_data
    from dali_multicrop.epochs import EpochPlan, ShardPlan

    files = FileList.from_folder(ensure_sample_data(64))
    spec = parse_crops(recipe)
    outputs = []
    for kernel in ("dali", "compiled"):
        feed = EpochFeed(files, spec, seed=3)
        feed.start(EpochPlan.of(ShardPlan(len(files), batch, seed=3).batches(0)[:1]))
        pipe = build_pipeline(feed, spec, GraphSettings(device="cpu", batch_size=batch, num_threads=2, seed=0,
                                                        cpu_kernel=kernel)).pipeline
        pipe.build()
        kinds = [getattr(op._op, "schema_name", type(op._op).__name__) for op in pipe._ops]
        assert kinds.count("Resize") == spec.num_crops  # DALI's resize on both
        assert kinds.count("CoordTransform") == (spec.num_crops if kernel == "dali" else 0)
        assert kinds.count("PythonFunction") == 0  # no Python per crop or per batch
        assert kinds.count("NumbaFunction") == 1 + (spec.num_crops if kernel == "compiled" else 0)  # step, maps
        out = pipe.run()[:spec.num_crops]
        outputs.append([np.stack([np.asarray(o.at(k)) for k in range(batch)]) for o in out])
        del pipe
    std = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1) * 255
    return [(dali * std, compiled * std) for dali, compiled in zip(*outputs)]


@pytest.mark.parametrize("recipe", ["2x224,6x96", "dino"])
def test_the_cpu_graphs_compiled_colours_are_within_one_code_value_of_the_gpu_graphs_operator(recipe):
    """The CPU graph colours its crops with a compiled kernel (one Numba operator per crop, no Python), the GPU graph
    with fn.coord_transform: the same [M | T] map, each rounding in its own arithmetic. Both run here on the CPU over
    the same draws and the same resizes (real photos' sizes, every jitter part, grayscale, blur and solarisation for
    dino): no value more than one code value (0-255) apart, and fewer than 1% of them apart at all."""
    pairs = compiled_against_dali(recipe)
    diffs = np.concatenate([np.abs(dali - compiled).ravel() for dali, compiled in pairs])
    assert diffs.max() <= 1.0 + 1e-3, diffs.max()
    assert (diffs > 0.5).mean() < 0.01, (diffs > 0.5).mean()
