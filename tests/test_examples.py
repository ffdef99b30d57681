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
    sys.modules[name] = module  # as an import would (dataclasses look their module up there)
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
def test_ijepa_example_learns(photos, tmp_path, strategy, capsys):
    config = {"data": {"multicrop": {"num_global_crops": 2, "num_local_crops": 2, "global_crop_size": 64,
                                     "local_crop_size": 32, "masking_strategy": strategy}},
              "loader": {"batch_size": 8, "drop_last": True},
              "masking": {"patch_size": 16, "levels": [{"target_scale": [0.1, 0.25]}], "num_targets": 2,
                          "min_keep": 2}}
    losses = run(load("train_ijepa"), config, photos, tmp_path)
    assert len(losses) == 20 and np.all(np.isfinite(losses))
    assert falls(losses), losses
    # --log-every 0 still says where it trains, the first step (with the CPU's estimate) and a closing line
    out = capsys.readouterr().out
    assert "training tiny on the CPU" in out and "step 1: loss" in out and "on the CPU 20 steps take about" in out
    assert "done: 20 steps in" in out and f"loss {losses[0]:.4f} -> {losses[-1]:.4f}" in out and "img/s" in out
    assert "loader: epoch " in out and "waiting for data" in out and "since start: 20 batches, 160 images" in out


def test_dino_example_learns(photos, tmp_path):
    config = {"data": {"multicrop": {"num_global_crops": 2, "num_local_crops": 4, "global_crop_size": 64,
                                     "local_crop_size": 32}},
              "loader": {"batch_size": 8, "drop_last": True}}
    history = run(load("train_dino"), config, photos, tmp_path)
    assert len(history.losses) == 20 and np.all(np.isfinite(history.losses)) and not history.patch_divergence
    # the total moves with the centring; the part the student controls (KL to the teacher's targets) falls
    assert falls(history.divergence), history.divergence


def test_the_quick_cpu_command_trains_past_a_bad_file(photos, tmp_path, capsys):
    """The README's CPU command: --crops overrides the config's, --on-error skip trains on past a bad file, and the
    closing line says what falls (DINO's divergence)."""
    import shutil

    data = tmp_path / "photos"
    shutil.copytree(photos, data)
    (data / "c0" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a JPEG after all")
    from dali_multicrop.badsamples.policy import BadImageWarning

    with pytest.warns(BadImageWarning, match="broken.jpg"):  # named once, then trained past
        history = load("train_dino").main(["--data", str(data), "--steps", "4", "--arch", "tiny", "--device", "cpu",
                                           "--crops", "2x64,2x32", "--batch-size", "8", "--on-error", "skip",
                                           "--log-every", "0"])
    assert len(history.losses) == 4
    out = capsys.readouterr().out
    assert "divergence " in out.split("done:")[1] and "loader: epoch " in out and "since start: 4 batches" in out


def test_ibot_example_learns_the_masked_patches(photos, tmp_path):
    """--ibot: the student's global crops masked with the mask token at PatchMaskGenerator's patches; the patch
    loss's KL part (the student's masked patches against the teacher's unmasked ones) falls."""
    config = {"data": {"multicrop": {"num_global_crops": 2, "num_local_crops": 2, "global_crop_size": 64,
                                     "local_crop_size": 32}},
              "loader": {"batch_size": 8, "drop_last": True},
              "patch_masking": {"patch_size": 16, "mask_sample_probability": 1.0}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    history = load("train_dino").main(["--config", str(path), "--data", str(photos), "--steps", "20", "--arch",
                                       "tiny", "--device", "cpu", "--threads", "2", "--log-every", "0", "--lr",
                                       "1e-3", "--ibot"])
    assert len(history.patch_divergence) == 20 and np.all(np.isfinite(history.losses))
    assert falls(history.patch_divergence), history.patch_divergence


def test_ibot_network_puts_the_mask_token_where_the_mask_says():
    import torch

    module = load("train_dino")
    from common import vit

    torch.manual_seed(0)
    backbone = vit("tiny", 64, 16)
    net = module.MaskedNetwork(backbone, module.DINOHead(64, out_dim=32), module.DINOHead(64, out_dim=32))
    images = torch.randn(2, 3, 64, 64)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    cls, patches = net(images, mask)
    assert cls.shape == (2, 32) and patches.shape == (2, 16, 32)
    torch.testing.assert_close(net(images)[1], patches)  # an empty mask changes nothing
    net.zero_grad()
    net(images, mask)[1].sum().backward()
    assert net.mask_token.grad is None or not net.mask_token.grad.any()
    mask[0, 5] = True
    net.zero_grad()
    out = net(images, mask)[1]
    out.sum().backward()
    assert net.mask_token.grad.abs().sum() > 0  # the token is where the mask is, and it learns
    torch.testing.assert_close(out[1], patches[1])  # the other sample is untouched


@pytest.mark.parametrize("name, extra", [("train_ijepa", []), ("train_dino", []), ("train_dino", ["--ibot"])])
def test_a_training_step_waits_for_nothing(photos, tmp_path, monkeypatch, name, extra):
    """Every step of the examples, run on the CPU as it runs on CUDA (the masks' CUDA paths), under the
    DispatchCounter: no value read back and no host data copied in, but at the first step and at the end, where
    the log reads the losses (--log-every 0); the masks and the loss stay on the device."""
    from dali_multicrop.benchmark.dispatch import DispatchCounter
    from dali_multicrop.masking import _sync

    monkeypatch.setattr(_sync, "reads_back_freely", lambda device: False)
    module = load(name)
    common = sys.modules["common"]
    probes = []

    def counted(loader, steps):
        for item in real_batches(loader, steps):
            probe = DispatchCounter()
            probe.__enter__()
            try:
                yield item
            finally:
                probe.__exit__(None, None, None)
                probes.append(probe)

    real_batches = common.batches
    monkeypatch.setattr(module, "batches", counted)
    config = {"data": {"multicrop": {"num_global_crops": 2, "num_local_crops": 2, "global_crop_size": 64,
                                     "local_crop_size": 32}},
              "loader": {"batch_size": 8, "drop_last": True},
              "masking": {"patch_size": 16, "levels": [{"target_scale": [0.1, 0.25]}], "num_targets": 2,
                          "min_keep": 2},
              "patch_masking": {"patch_size": 16, "mask_sample_probability": 1.0}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    module.main(["--config", str(path), "--data", str(photos), "--steps", "4", "--arch", "tiny", "--device", "cpu",
                 "--threads", "2", "--log-every", "0", *extra])
    assert len(probes) == 4 and all(p.ops > 100 for p in probes)
    # the first step: its line's loss (and, with --ibot, the patch masks' constants for this batch size, made once)
    assert probes[0].calls[-1:] == ["tolist"] and len(probes[0].calls) <= 4, probes[0].calls
    assert [p.calls for p in probes[1:]] == [[], [], []]
