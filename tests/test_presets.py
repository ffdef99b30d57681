"""Shipped recipes (pipelines/): load by name, match their methods, survive a plain install, reject bad files."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import coordinate_image, write_folder
from dali_multicrop import DaliMultiCropLoader, MultiCropMaskGenerator, list_presets, load_preset, parse_crops
from dali_multicrop.recipes.spec import GLOBAL_SCALE, LOCAL_SCALE

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_preset_loads():
    names = list_presets()
    assert {"dino", "dinov2", "hjepa", "ibot", "ijepa", "multicrop-jepa", "swav"} <= set(names)
    assert names == sorted(p.stem for p in (ROOT / "pipelines").glob("*.yaml"))
    for name in names:
        assert parse_crops(name) == load_preset(name)


def test_dino_recipe_values():
    spec = load_preset("dino")
    assert str(spec) == "1x224,1x224,8x96" and spec.num_global_groups == 2 and spec.num_global == 2
    first, second, local = spec.groups
    assert (first.blur_prob, first.solarize_prob) == (1.0, 0.0)
    assert (second.blur_prob, second.solarize_prob) == (0.1, 0.2)
    assert local.blur_prob == 0.5 and local.scale == (0.05, 0.4) and first.scale == (0.4, 1.0)
    for g in spec.groups:
        j = g.color_jitter
        assert (j.probability, j.brightness, j.contrast, j.saturation, j.hue) == (0.8, 0.4, 0.4, 0.2, 0.1)
        assert g.grayscale_prob == 0.2 and g.flip_prob == 0.5 and g.blur_sigma == (0.1, 2.0)


def test_project_default_preset_is_what_the_spec_string_gives():
    assert load_preset("multicrop-jepa") == parse_crops("2x224,6x96")
    ijepa = load_preset("ijepa")
    assert ijepa.groups[0].scale == (0.3, 1.0) and ijepa.groups[0].flip_prob == 0.0
    assert not ijepa.groups[0].color_jitter.active
    assert GLOBAL_SCALE != LOCAL_SCALE


def test_loader_and_masks_with_two_global_groups(tmp_path):
    data = write_folder(tmp_path, {"a": [coordinate_image(120, 160)] * 4})
    spec = load_preset("dino").with_global(size=64).with_local(size=32, count=2)
    loader = DaliMultiCropLoader(data, crops=spec, batch_size=4, device="cpu", num_threads=1)
    batch = next(iter(loader))
    assert batch.crop_sizes == (64, 64, 32, 32)
    masks = MultiCropMaskGenerator(spec, num_levels=1, num_targets=2)(batch)
    assert masks.targets[0].any() and masks.targets[1].any()
    assert masks.context[2].all() and not masks.targets[3].any()


@pytest.mark.parametrize("text, words", [
    ("groups: [{count: 1, size: 64, scale: [0.4, 1.0], colour: 1}]", r"group 1: unknown key\(s\) colour"),
    ("groups: [{count: 1, size: 64, scale: [0.4, 1.5]}]", r"group 1: CropGroup.scale must lie in \(0, 1\]"),
    ("groups: [{count: 1, size: 64, scale: [0.4, 1.0]}]\nglobal_groups: 2", "num_global_groups must be in"),
    ("groups: [{count: 1, size: 64, scale: [0.4, 1.0], color_jitter: {hue: 2}}]", "hue must be in"),
    ("crops: 2x224", r"unknown key\(s\) crops"),
    ("groups: [", "not valid YAML"),
])
def test_bad_recipe_files_name_the_problem(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=words) as info:
        parse_crops(str(path))
    assert "bad.yaml" in str(info.value)


def test_unknown_preset_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="'dinoo' is neither a shipped preset .*dino.* nor a crop spec"):
        parse_crops("dinoo")


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="needs setuptools to build a wheel")
def test_the_wheel_carries_recipes_and_configs_and_works_alone(tmp_path):
    """What publishing needs: the built wheel holds the recipes and the configs; installed without its dependencies
    into a scratch folder, and run from another working folder with only that folder on the path for this package,
    it lists the presets, loads a shipped config by name and builds a loader that makes a batch."""
    import os
    import shutil

    source = tmp_path / "src"  # a copy, so the build leaves nothing in the working tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("dali_multicrop", "pipelines", "configs"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("dali_multicrop-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for preset in list_presets():
        assert f"dali_multicrop/pipelines/{preset}.yaml" in names
    for config in ("multicrop_training", "dino_vits16", "ijepa_vith14"):
        assert f"dali_multicrop/configs/{config}.yaml" in names
    modules = {str(f.relative_to(ROOT)) for f in (ROOT / "dali_multicrop").rglob("*.py")}
    assert modules - set(names) == set()  # every module of every sub-package (sources/, badsamples/, ...)
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target",
                           str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    work = tmp_path / "work"  # not the repository, not the scratch folder
    images = write_folder(work / "images", {"a": [coordinate_image(64, 80)] * 4})
    env = {**os.environ, "PYTHONPATH": str(site)}
    # with only the scratch folder on the path for this package (not the editable install nor the checkout)
    check = ("import sys, dali_multicrop; assert dali_multicrop.__file__.startswith(sys.argv[1]), "
             "dali_multicrop.__file__; from dali_multicrop import DaliMultiCropLoader; "
             "loader = DaliMultiCropLoader.from_config('multicrop_training', source=sys.argv[2], device='cpu', "
             "batch_size=2, num_threads=1); batch = next(iter(loader)); print(loader.spec, batch.batch_size)")
    run = subprocess.run([sys.executable, "-c", check, str(site), str(images)], capture_output=True, text=True,
                         timeout=300, cwd=work, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["2x224,6x96", "2"]
    presets = subprocess.run([sys.executable, "-m", "dali_multicrop", "presets"], capture_output=True, text=True,
                             timeout=300, cwd=work, env=env)
    assert presets.returncode == 0 and all(f"{name}:" in presets.stdout for name in list_presets())


def test_source_checkout_without_install_finds_the_recipes(monkeypatch):
    from dali_multicrop.common import shipped as _shipped
    from dali_multicrop.recipes import presets

    def not_installed(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(_shipped.resources, "files", not_installed)
    assert presets.list_presets() == sorted(p.stem for p in (ROOT / "pipelines").glob("*.yaml"))
    assert str(presets.load_preset("dino")) == "1x224,1x224,8x96"


def _jitter(group) -> tuple:
    j = group.color_jitter
    return (j.probability, j.brightness, j.contrast, j.saturation, j.hue)


def test_preset_names_may_hold_digits():
    assert parse_crops("dinov2") == load_preset("dinov2") and str(parse_crops("dinov2")) == "1x224,1x224,8x98"
    with pytest.raises(ValueError, match="'dinov3' is neither a shipped preset .*dinov2.*, a recipe file, nor"):
        parse_crops("dinov3")
    with pytest.raises(ValueError, match="crop spec '2x' is missing a size"):
        parse_crops("2x")


def test_dinov2_recipe_matches_the_original_with_effective_blur():
    """facebookresearch/dinov2: DataAugmentationDINO (augmentations.py), GaussianBlur (transforms.py: the blur
    runs with probability 1 - p), ssl_default_config.yaml crops, train/vit*14.yaml local_crops_size 98."""
    spec = load_preset("dinov2")
    first, second, local = spec.groups
    assert spec.num_global_groups == 2 and (first.count, second.count, local.count) == (1, 1, 8)
    assert (first.size, local.size) == (224, 98) and first.scale == second.scale == (0.32, 1.0)
    assert local.scale == (0.05, 0.32)
    assert (first.blur_prob, second.blur_prob, local.blur_prob) == (1 - 1.0, 1 - 0.1, 1 - 0.5)
    assert (first.solarize_prob, second.solarize_prob, local.solarize_prob) == (0.0, 0.2, 0.0)
    for g in spec.groups:
        assert _jitter(g) == (0.8, 0.4, 0.4, 0.2, 0.1) and g.grayscale_prob == 0.2 and g.flip_prob == 0.5
        assert g.blur_sigma == (0.1, 2.0)
    MultiCropMaskGenerator(spec, patch_size=14)  # 98 px = 7 patches of 14


def test_ibot_recipe_matches_the_original():
    """bytedance/ibot: DataAugmentationiBOT (main_ibot.py) with the README's ViT-S/16 multi-crop arguments."""
    spec = load_preset("ibot")
    first, second, local = spec.groups
    assert spec.num_global_groups == 2 and (first.count, second.count, local.count) == (1, 1, 10)
    assert (first.size, local.size) == (224, 96)
    assert first.scale == second.scale == (0.25, 1.0) and local.scale == (0.05, 0.25)
    assert (first.blur_prob, second.blur_prob, local.blur_prob) == (1.0, 0.1, 0.5)
    assert (first.solarize_prob, second.solarize_prob, local.solarize_prob) == (0.0, 0.2, 0.0)
    for g in spec.groups:
        assert _jitter(g) == (0.8, 0.4, 0.4, 0.2, 0.1) and g.grayscale_prob == 0.2 and g.flip_prob == 0.5


def test_swav_recipe_matches_the_original():
    """facebookresearch/swav: MultiCropDataset and get_color_distortion(s=1) (src/multicropdataset.py),
    RandomGaussianBlur (p 0.5, sigma 0.1-2.0), with the README's ImageNet multi-crop arguments."""
    spec = load_preset("swav")
    big, small = spec.groups
    assert str(spec) == "2x224,6x96" and spec.num_global_groups == 1
    assert big.scale == (0.14, 1.0) and small.scale == (0.05, 0.14)
    for g in spec.groups:
        assert _jitter(g) == (0.8, 0.8, 0.8, 0.8, 0.2) and g.grayscale_prob == 0.2 and g.flip_prob == 0.5
        assert g.blur_prob == 0.5 and g.blur_sigma == (0.1, 2.0) and g.solarize_prob == 0.0


def test_hjepa_recipe_is_the_default_multicrop():
    spec = load_preset("hjepa")
    assert spec == parse_crops("2x224,6x96")
    assert spec.groups[0].scale == (0.4, 1.0) and spec.groups[1].scale == (0.05, 0.4)
    assert _jitter(spec.groups[0]) == (0.8, 0.2, 0.2, 0.1, 0.05)


def test_a_misspelt_preset_gets_the_nearest_name():
    with pytest.raises(ValueError, match=r"'dinno' is neither .*; did you mean 'dino'\?"):
        parse_crops("dinno")
    with pytest.raises(ValueError) as caught:
        parse_crops("zzzz")
    assert "did you mean" not in str(caught.value)


def test_global_crops_smaller_than_local_ones_are_warned_about():
    with pytest.warns(UserWarning, match=r"'6x96,2x224': its first group \(6x96\) is the global one, yet smaller "
                                         r"than the local 2x224; the global crops come first \(e.g. '2x224,6x96'\)"):
        spec = parse_crops("6x96,2x224")
    assert spec.sizes[0] == 96  # taken as written
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse_crops("2x224,6x96")  # the usual order says nothing


def test_presets_command_prints_a_table_per_recipe():
    proc = subprocess.run([sys.executable, "-m", "dali_multicrop", "presets"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in list_presets():
        assert f"{name}: " in out
    for column in ("group", "crops", "area (scale)", "aspect", "flip", "jitter p: b c s h", "gray", "blur",
                   "solarize"):
        assert column in out
    # dino's rows: the first global crop always blurred, the second solarised with p 0.2, eight local crops
    dino = out[out.index("dino: "):out.index("dinov2: ")]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in dino.splitlines() if line.startswith("│")]
    assert rows == [["global", "1x224", "0.4-1", "0.75-1.33", "0.5", "0.8: 0.4 0.4 0.2 0.1", "0.2", "1", "0"],
                    ["global", "1x224", "0.4-1", "0.75-1.33", "0.5", "0.8: 0.4 0.4 0.2 0.1", "0.2", "0.1", "0.2"],
                    ["local", "8x96", "0.05-0.4", "0.75-1.33", "0.5", "0.8: 0.4 0.4 0.2 0.1", "0.2", "0.5", "0"]]
    described = subprocess.run([sys.executable, "-m", "dali_multicrop", "presets", "--describe"],
                               capture_output=True, text=True, timeout=120).stdout
    assert "DataAugmentationDINO" in described and "DataAugmentationDINO" not in out


def test_recipes_and_configs_resolve_a_name_by_one_rule(tmp_path, monkeypatch):
    """A shipped name first, then a file at that path, for recipes and training configs alike (common/shipped.
    find_yaml): a file in the working folder named like a shipped one does not hide it; any other path is read."""
    from dali_multicrop.recipes.config import load_config
    from dali_multicrop.recipes.presets import read_recipe

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dino").write_text("groups: []\n")
    (tmp_path / "multicrop_training").write_text("nonsense: [\n")
    assert read_recipe("dino")[1] == "preset 'dino'"
    assert load_config("multicrop_training").spec.num_crops > 0
    (tmp_path / "mine").write_text("groups:\n  - {count: 2, size: 64, scale: [0.3, 1.0]}\n")
    assert read_recipe("mine")[1] == "recipe 'mine'"
    assert load_preset("mine").num_crops == 2
    (tmp_path / "run.yaml").write_text("data:\n  multicrop: {num_global_crops: 2, num_local_crops: 3}\n")
    assert load_config("run.yaml").spec.num_crops == 5
