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
    """Contrast scales about the crop's own mean grey (torchvision's): a flat crop is left as it is, and a crop of
    both halves of the step image (40 | 220) has its two levels moved apart by the factor."""
    jitter = recipe(color_jitter=ColorJitter(1.0, 0, 0.4, 0, 0))
    flat = crop_pixels(folders["gray60"], jitter, device, epochs=1)
    assert np.all(np.abs(flat - 60.0) < 1e-3)  # (the normalisation's float error aside)
    px = crop_pixels(folders["step"], jitter, device)
    span = px.max(axis=(1, 2, 3)) - px.min(axis=(1, 2, 3))
    both = span > 50  # a crop of one half is flat: contrast leaves it
    assert both.mean() > 0.3 and np.all(span[~both] < 1e-3)
    spread(span[both] / 180.0, 0.6, 1.4, tol=0.05)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


@pytest.mark.parametrize("device", DEVICES)
def test_saturation_within_strength(folders, device):
    px = crop_pixels(folders["colour"], recipe(color_jitter=ColorJitter(1.0, 0, 0, 0.5, 0)), device)
    rgb = px.mean(axis=(2, 3))
    src = np.array([150.0, 110.0, 90.0])
    factor = np.linalg.norm(rgb - _luma(rgb)[:, None], axis=1) / np.linalg.norm(src - _luma(src))
    spread(factor, 0.5, 1.5, tol=0.03)


def _hsv_hue(rgb: np.ndarray) -> np.ndarray:
    """HSV hue of each colour (``[..., 3]``, 0-255), in degrees (torchvision turns this hue)."""
    import colorsys

    flat = rgb.reshape(-1, 3) / 255.0
    return np.array([360.0 * colorsys.rgb_to_hsv(*c)[0] for c in flat]).reshape(rgb.shape[:-1])


@pytest.mark.parametrize("device", DEVICES)
def test_hue_within_strength(folders, device):
    hue = 0.1  # a tenth of a turn: +-36 degrees of HSV hue (in Pillow's 256 steps a turn: 1.4 degrees each)
    px = crop_pixels(folders["colour"], recipe(color_jitter=ColorJitter(1.0, 0, 0, 0, hue)), device)
    shift = _hsv_hue(px.mean(axis=(2, 3))) - _hsv_hue(np.array([150.0, 110.0, 90.0]))
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


@pytest.mark.parametrize("recipe", ["2x224,6x96", "dino"])
def test_the_cpu_graph_colours_each_crop_in_one_compiled_operator(recipe):
    """No Python per crop or per batch, and none of DALI's colour operators (their hue and contrast are not
    torchvision's) nor its resize (not Pillow's): the crop step and one compiled crop operator per crop (the resize
    and the colour)."""
    from dali_multicrop import FileList
    from dali_multicrop.graph.feed import EpochFeed
    from dali_multicrop.graph.builder import GraphSettings, build_pipeline
    from dali_multicrop.recipes.presets import parse_crops

    spec = parse_crops(recipe)
    pipe = build_pipeline(EpochFeed(FileList(("unused.jpg",), (0,)), spec), spec,
                          GraphSettings(device="cpu", batch_size=2, num_threads=1, seed=0)).pipeline
    pipe._build_graph()
    kinds = [getattr(op._op, "schema_name", type(op._op).__name__) for op in pipe._ops]
    assert kinds.count("NumbaFunction") == 1 + spec.num_crops  # the step, the crops
    for absent in ("PythonFunction", "CoordTransform", "Hsv", "Hue", "BrightnessContrast", "ColorTwist", "Resize"):
        assert kinds.count(absent) == 0, absent
