"""Property-based tests (hypothesis) of every parser: crop specs, recipe YAML, training configs, mask levels. Any
input either parses to a valid object that says what was asked (nothing clamped) or raises ValueError with a
message; never another exception, never a hang."""

from __future__ import annotations

import math
import re

import pytest
import yaml

pytest.importorskip("hypothesis", reason="property-based tests need hypothesis: pip install 'dali-multicrop[test]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dali_multicrop import MaskLevel, MultiCropMaskGenerator, MultiCropSpec, parse_crops  # noqa: E402
from dali_multicrop.recipes.config import load_config  # noqa: E402
from dali_multicrop.masking.levels import hierarchical_levels  # noqa: E402

# derandomize: CI sees the same examples every run (a failure is reproducible, never flaky)
FAST = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# scalars YAML can hold, and nested structures of them
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12))
TREES = st.recursive(SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                     st.dictionaries(st.text(max_size=10), kids, max_size=4)),
                     max_leaves=12)


def _fails_cleanly(call) -> object:
    """The call's result, or None after a ValueError with a non-empty message; anything else fails the test."""
    try:
        return call()
    except ValueError as exc:
        assert str(exc).strip(), "a ValueError without a message"
        return None


GROUP = st.builds(lambda c, s, sep: f"{c}{sep}{s}", st.one_of(st.integers(-3, 300), st.text("0123456789 -+.", max_size=4)),
                  st.one_of(st.integers(-3, 5000), st.text("0123456789 -+.e", max_size=4)), st.sampled_from("xX*"))


@FAST
@pytest.mark.filterwarnings("ignore:crop spec .* is the global one:UserWarning")  # a warning, not a failure
@given(st.one_of(st.text(max_size=30), st.lists(GROUP, min_size=1, max_size=5).map(",".join)))
def test_crop_specs(text):
    spec = _fails_cleanly(lambda: parse_crops(text))
    if spec is not None and re.fullmatch(r"[\dxX, ]+", text):  # a COUNTxSIZE spec: exactly the groups asked
        groups = [tuple(int(v) for v in re.split("[xX]", g.strip())) for g in text.split(",")]
        assert [(g.count, g.size) for g in spec.groups] == groups


@FAST
@given(TREES)
def test_recipe_yaml(tmp_path_factory, tree):
    path = tmp_path_factory.mktemp("recipe") / "recipe.yaml"
    path.write_text(yaml.safe_dump(tree))
    spec = _fails_cleanly(lambda: parse_crops(str(path)))
    assert spec is None or isinstance(spec, MultiCropSpec)


RECIPE_KEYS = st.fixed_dictionaries({}, optional={
    "global": st.fixed_dictionaries({}, optional={"count": SCALARS, "size": SCALARS, "scale": TREES,
                                                  "flip_prob": SCALARS, "blur_prob": SCALARS}),
    "local": st.fixed_dictionaries({}, optional={"count": SCALARS, "size": SCALARS, "scale": TREES}),
})


@FAST
@given(RECIPE_KEYS)
def test_recipe_yaml_near_valid(tmp_path_factory, tree):
    path = tmp_path_factory.mktemp("recipe") / "recipe.yaml"
    path.write_text(yaml.safe_dump(tree))
    _fails_cleanly(lambda: parse_crops(str(path)))


CONFIGS = st.fixed_dictionaries({}, optional={
    "data": st.fixed_dictionaries({}, optional={"path": SCALARS, "preset": st.one_of(SCALARS, st.just("2x224,6x96")),
                                                "use_multicrop": SCALARS, "multicrop": TREES}),
    "loader": st.dictionaries(st.sampled_from(["batch_size", "device", "dtype", "seed", "shuffle", "prefetch",
                                               "hw_decoder_load", "bogus"]), SCALARS, max_size=3),
    "masking": st.dictionaries(st.sampled_from(["strategy", "patch_size", "num_levels", "num_targets", "min_keep",
                                                "levels"]), TREES, max_size=3),
    "curriculum": TREES,
})


@FAST
@given(st.one_of(CONFIGS, TREES))
def test_training_configs(tree):
    cfg = _fails_cleanly(lambda: load_config(tree))
    if cfg is not None and cfg.masking:  # what the config hands the mask generator also parses cleanly
        _fails_cleanly(lambda: MultiCropMaskGenerator(cfg.spec, **cfg.masking))


@FAST
@given(st.text(max_size=200))
def test_config_files_of_any_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(text)
    _fails_cleanly(lambda: load_config(str(path)))


PAIRS = st.one_of(st.tuples(st.floats(), st.floats()), TREES)


@FAST
@given(PAIRS, PAIRS, PAIRS, PAIRS)
def test_mask_levels(target_scale, target_aspect, context_scale, context_aspect):
    level = _fails_cleanly(lambda: MaskLevel(target_scale, target_aspect, context_scale, context_aspect))
    if level is not None:  # nothing clamped: the level holds the numbers given
        assert level.target_scale == tuple(float(v) for v in target_scale)
        assert level.context_aspect == tuple(float(v) for v in context_aspect)
        assert 0 < level.target_scale[0] <= level.target_scale[1] <= 1


@FAST
@given(st.one_of(st.integers(-2, 12), SCALARS), st.tuples(st.floats(-1, 2), st.floats(-1, 2)),
       st.floats(allow_nan=True))
def test_hierarchical_levels(num_levels, base, growth):
    levels = _fails_cleanly(lambda: hierarchical_levels(num_levels, base, growth))
    if levels is not None:
        assert len(levels) == num_levels
        for l, level in enumerate(levels):  # the documented rule: base * growth**l, capped at the whole grid
            want = [math.exp(min(0.0, math.log(b) + l * math.log(growth))) for b in base]  # in logs: no overflow
            assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(level.target_scale, want))


@FAST
@given(st.fixed_dictionaries({}, optional={"strategy": SCALARS, "patch_size": SCALARS, "num_levels": SCALARS,
                                           "num_targets": SCALARS, "min_keep": SCALARS, "allow_overlap": SCALARS,
                                           "seed": SCALARS}))
def test_mask_generator_arguments(kwargs):
    gen = _fails_cleanly(lambda: MultiCropMaskGenerator("2x64,2x32", **kwargs))
    if gen is not None:
        for key in ("num_targets", "min_keep", "seed"):
            if key in kwargs:
                assert getattr(gen, key) == kwargs[key]


@pytest.mark.parametrize("text", [".", "..", "/", "~", "2x", "x2", "2x224,", "1e3x2", "2x224x3", "\x00"])
def test_crop_spec_corner_cases(text):
    _fails_cleanly(lambda: parse_crops(text))
