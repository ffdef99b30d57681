"""The method's own resize, exactly (issue #29, first operation): every preset's crops, resized with its method's
interpolation, within torchvision's own noise of torchvision on PIL images, on natural photographs. Values, not
shapes: the mean absolute difference per crop in code values (0-255), with the other filter as the check that the
measurement tells the two apart."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torchvision")
pytest.importorskip("skimage", reason="the natural photographs come with scikit-image: pip install 'dali-multicrop[test]'")

from conftest import DEVICES  # noqa: E402
from dali_multicrop.fidelity import RESIZE_GOAL, natural_photos, resize_fidelity  # noqa: E402
from dali_multicrop.presets import load_preset, parse_crops  # noqa: E402


@pytest.fixture(scope="module")
def photos():
    found = natural_photos()
    assert len(found) >= 6 and all(p.ndim == 3 and min(p.shape[:2]) >= 300 for p in found)
    return found


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("recipe, interpolation", [("dino", "bicubic"), ("dinov2", "bicubic"),
                                                   ("2x224,6x96", "bilinear"), ("ijepa", "bilinear")])
def test_each_preset_resizes_as_its_method_within_torchvisions_own_noise(photos, recipe, interpolation, device):
    """Both graphs (the GPU one where there is a GPU; it runs the same fn.resize)."""
    rows = resize_fidelity(parse_crops(recipe), photos, device=device, epochs=1)
    assert [r.interpolation for r in rows] == [interpolation] * len(rows)
    for r in rows:
        assert r.crops >= len(photos) and r.within_goal and r.mad <= RESIZE_GOAL, r
        assert r.mad <= r.tensor + 0.1, r  # as close as torchvision's own tensor path is to its PIL path
        assert r.other > 3 * r.mad and r.other > RESIZE_GOAL, r  # the other filter is told apart
        assert r.worst < 0.5, r


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
    assert len(lines) == 5 and all(line.split()[2] == "bicubic" for line in lines[2:])
    assert "above the goal" not in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "dali_multicrop", "fidelity", "--images", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and f"--images {tmp_path}: no PNG or JPEG image in it" in bad.stderr
