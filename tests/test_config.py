"""Training configs: the shipped files load onto the library's own objects; bad ones name the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import coordinate_image, write_folder
from dali_multicrop import DaliMultiCropLoader, MultiCropMaskGenerator, MultiCropSpec, load_preset
from dali_multicrop.recipes.config import load_config
from dali_multicrop.masking import IJEPA_LEVEL

ROOT = Path(__file__).resolve().parents[1]


def test_multicrop_training_config_maps_onto_loader_and_masks(tmp_path):
    folder = write_folder(tmp_path / "data", {"a": [coordinate_image(64, 80)] * 4})
    path = ROOT / "configs" / "multicrop_training.yaml"
    loader = DaliMultiCropLoader.from_config(path, source=folder, device="cpu", batch_size=2, num_threads=2)
    assert loader.spec == MultiCropSpec.parse("2x224,6x96") and loader.batch_size == 2  # the override wins
    assert loader.seed == 0 and loader.plan.drop_last and loader.dtype == "float32"
    gen = MultiCropMaskGenerator.from_config(path)
    assert (gen.strategy, gen.patch_size, gen.num_levels, gen.num_targets, gen.min_keep) == ("global_only", 16, 3,
                                                                                           4, 4)
    batch = next(iter(loader))
    masks = gen(batch)
    assert masks.context[0].shape == (3, 2, 196)
    assert batch.num_crops == len(masks.context) == 4  # the curriculum's epoch 0: 2 of the 6 local crops
    assert loader.curriculum.local_crops.end == 6 and gen.curriculum == loader.curriculum


def test_every_loader_argument_reads_from_a_config(tmp_path):
    """A config can train on dirty data: on_error and validate (and every other loader argument but the source,
    crops and curriculum) are loader keys, checked like the rest, and reach the loader."""
    import inspect

    from dali_multicrop.recipes.config import _SCHEMA

    own_keys = {"self", "source", "crops", "curriculum"}
    arguments = set(inspect.signature(DaliMultiCropLoader.__init__).parameters) - own_keys
    assert arguments == set(_SCHEMA["loader"]), arguments ^ set(_SCHEMA["loader"])
    folder = write_folder(tmp_path / "data", {"a": [coordinate_image(64, 80)] * 4})
    (folder / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    config = {"data": {"preset": "1x32,2x16", "path": str(folder)},
              "loader": {"batch_size": 2, "device": "cpu", "on_error": "skip", "validate": True,
                         "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    loader = DaliMultiCropLoader.from_config(config, num_threads=1)
    assert loader.on_error == "skip" and loader.mean == (0.5, 0.5, 0.5) and loader.std == (0.25, 0.25, 0.25)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped file is reported as a warning
        indices = sorted(int(i) for batch in loader for i in batch.indices if int(i) >= 0)
    assert len(indices) == 4  # the four good images, the broken one skipped
    with pytest.raises(ValueError, match="loader.on_error: expected one of raise, skip, got 'ignore'"):
        load_config({"loader": {"on_error": "ignore"}})


def test_ijepa_and_dino_configs():
    ijepa = load_config(ROOT / "configs" / "ijepa_vith14.yaml")
    assert ijepa.spec == load_preset("ijepa") and ijepa.masking["levels"] == (IJEPA_LEVEL,)
    gen = MultiCropMaskGenerator.from_config(ROOT / "configs" / "ijepa_vith14.yaml")
    assert gen.grids == (16,) and gen.min_keep == 10 and gen.num_targets == 4
    dino = load_config(ROOT / "configs" / "dino_vits16.yaml")
    assert dino.spec == load_preset("dino") and dino.masking == {} and dino.loader["batch_size"] == 64


def test_every_misspelt_key_is_named_at_once():
    with pytest.raises(ValueError) as caught:
        load_config({"loader": {"batch_sise": 8, "devcie": "cpu"}, "masking": {"strategyy": "global_only"}})
    text = str(caught.value)
    assert text.startswith("config: 3 unknown keys: ")
    for words in ("loader.batch_sise: unknown key; did you mean 'batch_size'?",
                  "loader.devcie: unknown key; did you mean 'device'?", "masking.strategyy: unknown key"):
        assert words in text


def test_a_crop_size_the_patch_size_does_not_divide_names_the_config_keys():
    from dali_multicrop import MultiCropMaskGenerator

    config = {"data": {"multicrop": {"global_crop_size": 224, "local_crop_size": 96}}, "masking": {"patch_size": 14}}
    with pytest.raises(ValueError, match=r"crop size 96 is not a multiple of patch_size 14: the config's "
                                         r"masking.patch_size \(14\) must divide every crop size of data"):
        MultiCropMaskGenerator.from_config(config)


def test_use_multicrop_false_keeps_the_global_crops():
    cfg = load_config({"data": {"use_multicrop": False, "multicrop": {"num_global_crops": 1, "global_crop_size": 192}}})
    assert str(cfg.spec) == "1x192"


@pytest.mark.parametrize("config, words", [
    ({"data": {"multicrop": {"local_crop_scale": [0.5]}}},
     r"data.multicrop.local_crop_scale: expected two numbers in \(0, 1\].*got \[0.5\]"),
    ({"data": {"multicorp": {}}}, "data.multicorp: unknown key; did you mean 'multicrop'"),
    ({"loader": {"batch_sise": 3}}, "loader.batch_sise: unknown key; did you mean 'batch_size'"),
    ({"loader": {"device": "tpu"}}, "loader.device: expected one of gpu, cpu, auto, got 'tpu'"),
    ({"loader": {"batch_size": 0}}, r"loader.batch_size: expected an integer >= 1, got 0"),
    ({"masking": {"strategy": "everything"}}, "masking.strategy: expected one of global_only"),
    ({"masking": {"levels": [{"target_aspect": [1, 2]}]}}, r"masking.levels\[0\].target_scale: missing"),
    ({"masking": {"levels": [{"target_scale": [0.2, 0.1]}]}}, r"masking.levels\[0\].target_scale: expected two"),
    ({"data": {"preset": "dino", "use_multicrop": True}}, "give one of them"),
    ({"data": {"preset": "dinoo"}}, "data.preset: 'dinoo' is neither a shipped preset"),
    ({"data": {"multicrop": {"masking_strategy": "global_only"}}, "masking": {"strategy": "cross_crop_prediction"}},
     "disagree"),
    ({"trainer": {}}, "trainer: unknown key"),
    # the loader's own rules, named by the key path
    ({"loader": {"mean": [123.7, 116.3, 103.5]}}, r"loader.mean: expected in \[0, 1\] units .*divide by 255: \(0.485"),
    ({"loader": {"std": [0.2, 0, 0.2]}}, r"loader.std: expected three positive numbers"),
    ({"loader": {"std": "0.2"}}, r"loader.std: expected three positive numbers"),
    ({"loader": {"hw_decoder_load": 1.5}}, r"loader.hw_decoder_load: expected a probability in \[0, 1\], got 1.5"),
    ({"loader": {"executor": "concurrency=most"}},
     r"loader.executor: expected executor settings as text \(executor concurrency must be one of none, backend"),
])
def test_bad_configs_name_the_key_path(config, words):
    with pytest.raises(ValueError, match=words):
        load_config(config)


def test_config_command(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "dali_multicrop", *args], capture_output=True,
                                       text=True, timeout=120)
    ok = run("config", str(ROOT / "configs" / "multicrop_training.yaml"))
    assert ok.returncode == 0 and "crops: 2x224,6x96" in ok.stdout and "strategy='global_only'" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("masking: {num_targets: 99, patch_size: 16}\n")
    out = run("config", str(bad))
    assert out.returncode == 2 and "bad.yaml" in out.stderr and "Traceback" not in out.stderr
    both = run("bench", "--crops", "dino", "--config", str(ROOT / "configs" / "dino_vits16.yaml"))
    assert both.returncode == 2 and "give --crops or --config, not both" in both.stderr
    # the whole resolved configuration: defaults included, the file's values marked, the curriculum too
    assert "num_threads=None" in ok.stdout and "batch_size=64 (file)" in ok.stdout and "on_error='raise'" in ok.stdout
    assert "curriculum: local_crops: Ramp(start=2, end=6" in ok.stdout and "patch_masking: (none)" in ok.stdout
    listed = run("config", "--list")
    assert listed.returncode == 0 and [line.split(":")[0] for line in listed.stdout.splitlines()] == [
        "dino_vits16", "ijepa_vith14", "multicrop_training"]
    assert all(line.endswith(".") for line in listed.stdout.splitlines())  # whole sentences, not cut mid-way
    assert "and eight local crops at 96 px." in listed.stdout
    by_name = run("config", "dino_vits16")
    assert by_name.returncode == 0 and "crops: 1x224,1x224,8x96" in by_name.stdout


def test_shipped_configs_load_by_name_from_another_folder(tmp_path, monkeypatch):
    from dali_multicrop.recipes.config import list_configs

    monkeypatch.chdir(tmp_path)  # not the repository: the names resolve to the package's own files
    assert list_configs() == ["dino_vits16", "ijepa_vith14", "multicrop_training"]
    assert load_config("multicrop_training").spec == MultiCropSpec.parse("2x224,6x96")
    folder = write_folder(tmp_path / "data", {"a": [coordinate_image(64, 80)] * 4})
    loader = DaliMultiCropLoader.from_config("dino_vits16", source=folder, device="cpu", batch_size=2)
    assert loader.spec == load_preset("dino")
    with pytest.raises(ValueError, match="config file 'dino_vit16' does not exist; did you mean the shipped "
                                         "'dino_vits16'"):
        load_config("dino_vit16")


def test_a_config_file_that_is_not_yaml_is_named(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("loader: {batch_size: 3\n")
    with pytest.raises(ValueError, match=r"config '.*broken.yaml' is not valid YAML"):
        load_config(str(path))
