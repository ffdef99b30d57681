"""The method's own operations, exactly (issue #29): every preset's crops, resized with its method's interpolation
within torchvision's own noise of torchvision on PIL images, and coloured as torchvision on PIL images colours them,
on natural photographs. Values, not shapes: the mean absolute difference per crop in code values (0-255), with the
other filter as the check that the measurement tells the two apart."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torchvision")
pytest.importorskip("skimage", reason="the natural photographs come with scikit-image: pip install 'dali-multicrop[test]'")

from conftest import DEVICES  # noqa: E402
from dali_multicrop.fidelity.table import (COLOUR_GOALS, RESIZE_GOAL, colour_fidelity, natural_photos,  # noqa: E402
                                     resize_fidelity)
from dali_multicrop.recipes.presets import load_preset, parse_crops  # noqa: E402


@pytest.fixture(scope="module")
def photos():
    found = natural_photos()
    assert len(found) >= 6 and all(p.ndim == 3 and min(p.shape[:2]) >= 300 for p in found)
    return found


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("recipe, interpolation", [("dino", "bicubic"), ("dinov2", "bicubic"),
                                                   ("2x224,6x96", "bilinear"), ("ijepa", "bilinear")])
def test_each_preset_resizes_as_its_method_within_torchvisions_own_noise(photos, recipe, interpolation, device):
    """Both graphs: the CPU graph resizes with Pillow's own arithmetic (exactly: 0), the GPU graph (where there is
    a GPU) with DALI's fn.resize in the same filter, within the goal."""
    rows = resize_fidelity(parse_crops(recipe), photos, device=device, epochs=1)
    assert [r.interpolation for r in rows] == [interpolation] * len(rows)
    for r in rows:
        assert r.crops >= len(photos) and r.within_goal and r.mad <= RESIZE_GOAL, r
        assert device != "cpu" or (r.mad == 0.0 and r.worst == 0.0), r
        assert r.mad <= r.tensor + 0.1, r  # as close as torchvision's own tensor path is to its PIL path
        assert r.other > 3 * r.mad and r.other > RESIZE_GOAL, r  # the other filter is told apart
        assert r.worst < 0.5, r


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("recipe", ["dino", "2x224,6x96"])
def test_each_colour_operation_is_torchvisions_on_pil(photos, recipe, device):
    """Brightness, contrast, saturation, hue and grayscale one at a time over each group's range, then the whole
    ColorJitter in its order drawn per crop and grayscale: the CPU graph's crops are torchvision's on PIL value for
    value; the GPU graph's (its kernels' arithmetic is the CPU's: tests/test_colour_kernel.py) within the goals.
    The uncoloured crops differ from the coloured ones, so an operation left out would show."""
    rows = colour_fidelity(parse_crops(recipe), photos[:4], device=device, epochs=1)
    spec = parse_crops(recipe)
    wanted = [op for op in ("brightness", "contrast", "saturation", "hue") if spec.groups[0].color_jitter.active
              and getattr(spec.groups[0].color_jitter, op) > 0]
    wanted += ["grayscale"] * (spec.groups[0].grayscale_prob > 0) + ["jitter"]
    assert [r.operation for r in rows if r.group == rows[0].group][:len(wanted)] == wanted
    for r in rows:
        assert r.crops >= 4 and r.goal == COLOUR_GOALS[r.operation], r
        assert (r.mad == 0.0 and r.worst == 0.0) if device == "cpu" else r.within_goal, r


def test_the_methods_interpolations_are_their_codes():
    """DINO, DINOv2 and iBOT resize with bicubic (RandomResizedCrop(..., interpolation=BICUBIC) in their
    augmentation code); SwAV and I-JEPA with torchvision's default bilinear; a user's own spec takes the default."""
    for name, mode in (("dino", "bicubic"), ("dinov2", "bicubic"), ("ibot", "bicubic"), ("swav", "bilinear"),
                       ("ijepa", "bilinear"), ("hjepa", "bilinear"), ("multicrop-jepa", "bilinear")):
        assert {g.interpolation for g in load_preset(name).groups} == {mode}, name
    assert {g.interpolation for g in parse_crops("2x224,6x96").groups} == {"bilinear"}
    with pytest.raises(ValueError, match="CropGroup.interpolation must be one of bilinear, bicubic, got 'lanczos'"):
        parse_crops("2x224").groups[0].replace(interpolation="lanczos")


def test_the_fidelity_command_prints_the_table(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dali_multicrop", "fidelity", "--crops", "dino", "--epochs", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert "against torchvision on PIL" in lines[0] and lines[1].split()[:2] == ["operation", "group"]
    resize = [line for line in lines[2:] if line.startswith("resize")]
    assert len(resize) == 3 and all(line.split()[2] == "bicubic" for line in resize)
    colour = [line.split()[0] for line in lines[2:] if not line.startswith("resize")]
    assert colour == [op for op in ("brightness", "contrast", "saturation", "hue", "grayscale", "jitter")
                      for _ in range(3)]
    assert "above the goal" not in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "dali_multicrop", "fidelity", "--images", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and f"--images {tmp_path}: no PNG or JPEG image in it" in bad.stderr
