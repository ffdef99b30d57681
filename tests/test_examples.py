"""The training examples run end to end on the CPU: finite losses that fall over 20 steps on a tiny set."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dali_multicrop.sample_data import sample_image

pytest.importorskip("timm", reason="the examples' ViTs come from timm: pip install 'dali-multicrop[examples]'")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for k in range(2):
        (root / f"c{k}").mkdir()
    for i in range(24):
        (root / f"c{i % 2}" / f"{i:02d}.jpg").write_bytes(sample_image(i))
    return root


def run(module, config: dict, data: Path, tmp_path: Path, steps: int = 20):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return module.main(["--config", str(path), "--data", str(data), "--steps", str(steps), "--arch", "tiny",
                        "--device", "cpu", "--threads", "2", "--log-every", "0", "--lr", "1e-3"])


def falls(values: list[float]) -> bool:
    return float(np.mean(values[-5:])) < 0.85 * float(np.mean(values[:5]))


@pytest.mark.parametrize("strategy", ["global_only", "global_with_local_context"])
def test_ijepa_example_learns(photos, tmp_path, strategy):
    config = {"data": {"multicrop": {"num_global_crops": 2, "num_local_crops": 2, "global_crop_size": 64,
                                     "local_crop_size": 32, "masking_strategy": strategy}},
              "loader": {"batch_size": 8, "drop_last": True},
              "masking": {"patch_size": 16, "levels": [{"target_scale": [0.1, 0.25]}], "num_targets": 2,
                          "min_keep": 2}}
    losses = run(load("train_ijepa"), config, photos, tmp_path)
    assert len(losses) == 20 and np.all(np.isfinite(losses))
    assert falls(losses), losses


def test_dino_example_learns(photos, tmp_path):
    config = {"data": {"multicrop": {"num_global_crops": 2, "num_local_crops": 4, "global_crop_size": 64,
                                     "local_crop_size": 32}},
              "loader": {"batch_size": 8, "drop_last": True}}
    losses, divergence = run(load("train_dino"), config, photos, tmp_path)
    assert len(losses) == 20 and np.all(np.isfinite(losses))
    # the total moves with the centring; the part the student controls (KL to the teacher's targets) falls
    assert falls(divergence), divergence
