"""Training configuration files: one YAML file that maps onto the loader's and the mask generator's own objects.

A config has up to five sections (see ``configs/`` and ``docs/``-style comments in those files):

* ``data``: ``path`` (optional: an image folder, ``s3://`` prefix, tar shards such as ``train-{000..127}.tar``
  or ``cifar10:PATH``; any source string the loader takes), and the crops either as ``preset:`` (a shipped preset name,
  a recipe file or a ``COUNTxSIZE`` spec) or, as H-JEPA's configs write them, ``use_multicrop`` with a
  ``multicrop:`` block (``num_global_crops``, ``num_local_crops``, ``global_crop_size``, ``local_crop_size``,
  ``global_crop_scale``, ``local_crop_scale``, ``masking_strategy``). ``use_multicrop: false`` keeps the
  global crops only.
* ``loader``: keyword arguments of :class:`~dali_multicrop.DaliMultiCropLoader` (``batch_size``, ``device``,
  ``dtype``, ``num_threads``, ``seed``, ``shuffle``, ``drop_last``, ``prefetch``, ``hw_decoder_load``, ``on_error``,
  ``validate``, ``mean``, ``std``, ``device_id``, ``shard_id``, ``num_shards``: every argument but the source, the
  crops and the curriculum, which have their own keys).
* ``curriculum``: ``local_crops``, ``global_scale_min``, ``local_scale_max``, each ``{start, end, epochs}``
  (see :class:`~dali_multicrop.Curriculum`), given to both the loader and the mask generator.
* ``masking``: keyword arguments of :class:`~dali_multicrop.MultiCropMaskGenerator` (``strategy``,
  ``patch_size``, ``num_levels`` or ``levels`` (a list of :class:`MaskLevel` fields), ``num_targets``,
  ``min_keep``, ``allow_overlap``, ``seed``).
* ``patch_masking``: keyword arguments of :class:`~dali_multicrop.PatchMaskGenerator` (iBOT / DINOv2 block-wise
  patch masks, DINOv2's names: ``patch_size``, ``mask_ratio_min_max``, ``mask_sample_probability``,
  ``min_num_patches``, ``max_num_patches``, ``min_aspect``, ``max_aspect``, ``seed``); with ``data.preset``, the
  recipe's own ``patch_masking`` settings (``dinov2``, ``ibot``) come first and the file's keys override them.

Values left out take the objects' own defaults. A bad value or an unknown key is a ``ValueError`` naming the
key path, the value and what was expected (an unknown key with the nearest valid one).
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from ..common.checks import check_int, check_probability, check_rgb, rgb_expectation
from ..common.shipped import find_yaml, read_yaml, shipped_folder, yaml_names
from ..common.choices import DEVICES, DTYPES
from ..badsamples.policy import ON_ERROR
from .curriculum import Curriculum
from .spec import GLOBAL_SCALE, LOCAL_SCALE, CropGroup, MultiCropSpec

__all__ = ["TrainingConfig", "load_config", "list_configs", "masks_from_config", "patch_masking_settings",
           "preset_patch_masking", "ConfigLike"]

ConfigLike = Union[str, "os.PathLike[str]", dict]
"""A config file's path, or the parsed mapping."""


class _Bad(Exception):
    """A value that does not fit: ``expected`` says what would."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _int(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        try:
            return check_int("value", value, minimum)  # the one integer rule of every argument
        except ValueError:
            raise _Bad(f"an integer >= {minimum}") from None
    return check


def _probability(value: Any) -> float:
    try:
        return check_probability("value", value)  # the one probability rule of every argument
    except ValueError:
        raise _Bad("a probability in [0, 1]") from None


def _number(low: float, high: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
            raise _Bad(f"a number in [{low:g}, {high:g}]")
        return float(value)
    return check


def _pair(low_open: float, high: float, what: str) -> Callable[[Any], tuple[float, float]]:
    def check(value: Any) -> tuple[float, float]:
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
        if not ok or not (low_open < value[0] <= value[1] <= high):
            raise _Bad(f"two numbers in ({low_open:g}, {high:g}]{what}, the first not above the second")
        return float(value[0]), float(value[1])
    return check


def _triple(positive: bool) -> Callable[[Any], tuple[float, float, float]]:
    def check(value: Any) -> tuple[float, float, float]:
        expected = rgb_expectation(value if isinstance(value, (list, tuple)) else (), positive)
        if expected is not None:  # the loader's own rule
            raise _Bad(expected)
        return check_rgb("value", value, positive)
    return check


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("true or false")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("a non-empty string")
    return value


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise _Bad(f"one of {', '.join(options)}")
        return value
    return check


def _executor(value: Any) -> str:
    from ..graph.executor import ExecutorSettings

    if not isinstance(value, str):
        raise _Bad("executor settings as text, e.g. 'concurrency=full,resize_batch=batch'")
    try:
        return str(ExecutorSettings.parse(value)) if value.strip() else ""
    except ValueError as exc:
        raise _Bad(f"executor settings as text ({exc})") from None


def _strategy(value: Any) -> str:
    from ..masking.levels import STRATEGIES

    return _choice(*STRATEGIES)(value)


_LEVEL = {"target_scale": _pair(0.0, 1.0, " (a fraction of the patch grid)"),
          "target_aspect": _pair(0.0, math.inf, " (width / height)"),
          "context_scale": _pair(0.0, 1.0, " (a fraction of the patch grid)"),
          "context_aspect": _pair(0.0, math.inf, " (width / height)")}

_SCHEMA: dict[str, Any] = {
    "data": {
        "path": _text,
        "preset": _text,
        "use_multicrop": _bool,
        "multicrop": {
            "num_global_crops": _int(1),
            "num_local_crops": _int(0),
            "global_crop_size": _int(1),
            "local_crop_size": _int(1),
            "global_crop_scale": _pair(0.0, 1.0, " (fractions of the image's area)"),
            "local_crop_scale": _pair(0.0, 1.0, " (fractions of the image's area)"),
            "masking_strategy": _strategy,
        },
    },
    "loader": {
        "batch_size": _int(1), "device": _choice(*DEVICES), "dtype": _choice(*DTYPES),
        "num_threads": _int(1), "seed": _int(0), "shuffle": _bool, "drop_last": _bool, "prefetch": _int(1),
        "hw_decoder_load": _probability, "on_error": _choice(*ON_ERROR), "validate": _bool,
        "device_id": _int(0), "shard_id": _int(0), "num_shards": _int(1), "mean": _triple(False),
        "std": _triple(True), "executor": _executor,
    },
    "curriculum": dict,
    "masking": {
        "strategy": _strategy, "patch_size": _int(1), "num_levels": _int(1), "levels": [_LEVEL],
        "num_targets": _int(1), "min_keep": _int(0), "allow_overlap": _bool, "seed": _int(0),
    },
    "patch_masking": {
        "patch_size": _int(1), "mask_ratio_min_max": _pair(-1e-12, 1.0, " (fractions of the patches)"),
        "mask_sample_probability": _probability, "min_num_patches": _number(1e-12, math.inf),
        "max_num_patches": _number(1e-12, math.inf), "min_aspect": _number(1e-12, math.inf),
        "max_aspect": _number(1e-12, math.inf), "seed": _int(0),
    },
}


def _unknown(path: str, key: Any, valid: dict[str, Any]) -> str:
    """What is said of an unknown key: its path, and the nearest valid key (or all of them)."""
    near = difflib.get_close_matches(str(key), list(valid), n=1)
    hint = f"; did you mean '{near[0]}'?" if near else f" (expected one of: {', '.join(valid)})"
    return f"{path + '.' if path else ''}{key}: unknown key{hint}"


def _checked(data: Any, schema: Any, path: str) -> Any:
    """``data`` validated against ``schema`` (nested dicts of checks; a one-item list: a list of those); every
    unknown key in it named in one ``ValueError`` (one line each), not only the first."""
    unknown: list[str] = []
    out = _walk(data, schema, path, unknown)
    if unknown:
        raise ValueError("; ".join(unknown) if len(unknown) == 1 else
                         f"{len(unknown)} unknown keys: " + "; ".join(unknown))
    return out


def _walk(data: Any, schema: Any, path: str, unknown: list[str]) -> Any:
    if isinstance(schema, list):
        if not isinstance(data, list) or not data:
            raise ValueError(f"{path}: expected a non-empty list, got {data!r}")
        return [_walk(item, schema[0], f"{path}[{k}]", unknown) for k, item in enumerate(data)]
    if schema is dict:  # a section validated by its own reader
        return data
    if isinstance(schema, dict):
        if not isinstance(data, dict):
            raise ValueError(f"{path or 'config'}: expected a mapping, got {data!r}")
        out = {}
        for key, value in data.items():
            if key not in schema:
                unknown.append(_unknown(path, key, schema))
                continue
            out[key] = _walk(value, schema[key], f"{path + '.' if path else ''}{key}", unknown)
        return out
    try:
        return schema(data)
    except _Bad as bad:
        raise ValueError(f"{path}: expected {bad.expected}, got {data!r}") from None


@dataclass(frozen=True)
class TrainingConfig:
    """A validated config: the crop ``spec``, the data ``path`` (or None), and the keyword arguments it gives
    :class:`~dali_multicrop.DaliMultiCropLoader` (``loader``) and
    :class:`~dali_multicrop.MultiCropMaskGenerator` (``masking``: ``strategy`` and ``levels`` included)."""

    spec: MultiCropSpec
    path: Optional[str] = None
    loader: dict[str, Any] = field(default_factory=dict)
    masking: dict[str, Any] = field(default_factory=dict)
    patch_masking: dict[str, Any] = field(default_factory=dict)
    curriculum: Optional[Curriculum] = None
    origin: str = "config"


def patch_masking_settings(data: Any, origin: str) -> dict[str, Any]:
    """``data`` checked as a ``patch_masking:`` section (the keyword arguments of
    :class:`~dali_multicrop.PatchMaskGenerator`); a ``ValueError`` names ``origin`` and the bad key or value."""
    try:
        return dict(_checked(data, _SCHEMA["patch_masking"], "patch_masking"))
    except ValueError as exc:
        raise ValueError(f"{origin}: {exc}") from None


def masks_from_config(cls: Any, config: ConfigLike, overrides: dict[str, Any], section: str = "masking") -> Any:
    """A mask generator of class ``cls`` as ``config`` says (the ``from_config`` of
    :class:`~dali_multicrop.MultiCropMaskGenerator` and :class:`~dali_multicrop.PatchMaskGenerator`): the config's
    crops, curriculum (``masking`` only) and ``section`` settings (``"masking"`` or ``"patch_masking"``), keyword
    ``overrides`` over them; a patch size that does not divide the crops is named by its config key."""
    cfg = load_config(config)
    own = {"curriculum": cfg.curriculum, **cfg.masking} if section == "masking" else dict(cfg.patch_masking)
    try:
        return cls(**{"crops": cfg.spec, **own, **overrides})
    except ValueError as exc:  # name the config's keys the values came from
        if section != "masking" or "not a multiple of patch_size" not in str(exc):
            raise
        raise ValueError(f"{exc}: the config's masking.patch_size ({cfg.masking.get('patch_size')}) must divide "
                         f"every crop size of data (here {cfg.spec})") from None


def preset_patch_masking(name_or_path: Union[str, os.PathLike]) -> dict[str, Any]:
    """A recipe's ``patch_masking`` settings (keyword arguments of :class:`~dali_multicrop.PatchMaskGenerator`,
    DINOv2's names, checked as a config's ``patch_masking:`` section is); empty where the recipe has none."""
    from .presets import read_recipe

    data, origin = read_recipe(name_or_path)
    if not isinstance(data, dict):
        return {}
    return patch_masking_settings(data.get("patch_masking", {}), origin)


def _spec(data: dict[str, Any], origin: str) -> MultiCropSpec:
    from .presets import parse_crops

    crops = data.get("multicrop", {})
    if "preset" in data:
        if crops or "use_multicrop" in data:
            raise ValueError(f"{origin}: data.preset and data.multicrop/use_multicrop both say which crops; "
                             f"give one of them")
        try:
            return parse_crops(data["preset"])
        except ValueError as exc:
            raise ValueError(f"{origin}: data.preset: {exc}") from None
    groups = [CropGroup(count=crops.get("num_global_crops", 2), size=crops.get("global_crop_size", 224),
                        scale=crops.get("global_crop_scale", GLOBAL_SCALE))]
    local = crops.get("num_local_crops", 6)
    if data.get("use_multicrop", True) and local > 0:
        groups.append(CropGroup(count=local, size=crops.get("local_crop_size", 96),
                                scale=crops.get("local_crop_scale", LOCAL_SCALE)))
    return MultiCropSpec(tuple(groups))


def _shipped() -> Any:
    """The shipped configs' folder (see :func:`~dali_multicrop.common.shipped.shipped_folder`)."""
    return shipped_folder("dali_multicrop.configs", "configs")


def list_configs() -> list[str]:
    """Names of the shipped training configs (``configs/``, installed with the package)."""
    return yaml_names(_shipped())


def load_config(config: ConfigLike) -> TrainingConfig:
    """Reads and validates a config (a shipped config's name such as ``"multicrop_training"`` (see
    :func:`list_configs`), else a YAML path: :func:`~dali_multicrop.common.shipped.find_yaml`; or a parsed mapping);
    see the module's notes."""
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        found = find_yaml(path, _shipped())
        if found is None:
            shipped = list_configs()
            near = difflib.get_close_matches(path, shipped, n=1)
            hint = f"; did you mean the shipped '{near[0]}'?" if near else \
                f" (nor a shipped config: {', '.join(shipped)})"
            raise ValueError(f"config file '{path}' does not exist{hint}")
        file: Any = found[0]
        origin = f"config '{path}'"
        raw = read_yaml(file, origin)
    else:
        raw, origin = config, "config"
    try:
        data = _checked(raw if raw is not None else {}, _SCHEMA, "")
    except ValueError as exc:
        raise ValueError(f"{origin}: {exc}") from None
    section = data.get("data", {})
    masking = dict(data.get("masking", {}))
    strategy = section.get("multicrop", {}).get("masking_strategy")
    if strategy is not None:
        if masking.get("strategy", strategy) != strategy:
            raise ValueError(f"{origin}: data.multicrop.masking_strategy '{strategy}' and masking.strategy "
                             f"'{masking['strategy']}' disagree")
        masking["strategy"] = strategy
    if "levels" in masking:
        from ..masking.levels import MaskLevel

        if "num_levels" in masking and masking["num_levels"] != len(masking["levels"]):
            raise ValueError(f"{origin}: masking.num_levels is {masking['num_levels']} but masking.levels lists "
                             f"{len(masking['levels'])}")
        masking.pop("num_levels", None)
        for k, level in enumerate(masking["levels"]):
            if "target_scale" not in level:
                raise ValueError(f"{origin}: masking.levels[{k}].target_scale: missing (every level needs one)")
        masking["levels"] = tuple(MaskLevel(**level) for level in masking["levels"])
    spec = _spec(section, origin)
    curriculum = None
    if "curriculum" in data:
        curriculum = Curriculum.from_mapping(data["curriculum"], f"{origin}: curriculum")
        try:
            curriculum.check(spec)
        except ValueError as exc:
            raise ValueError(f"{origin}: curriculum: {exc}") from None
    patch_masking = dict(data.get("patch_masking", {}))
    from .presets import is_recipe

    if is_recipe(str(section.get("preset", ""))):  # the method's own settings, where its recipe has them
        patch_masking = {**preset_patch_masking(section["preset"]), **patch_masking}
    return TrainingConfig(spec=spec, path=section.get("path"), loader=data.get("loader", {}), masking=masking,
                          patch_masking=patch_masking, curriculum=curriculum, origin=origin)
