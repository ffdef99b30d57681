"""Named multi-crop recipes: YAML files in ``pipelines/`` (installed as the package ``dali_multicrop.pipelines``).

A recipe file holds ``name``, ``description``, ``global_groups`` (how many of the first groups are global,
default 1) and ``groups``: a list of :class:`CropGroup` fields (``count``, ``size``, ``scale``, ``ratio``,
``flip_prob``, ``color_jitter: {probability, brightness, contrast, saturation, hue}``, ``grayscale_prob``,
``blur_prob``, ``blur_sigma``, ``solarize_prob``), in the units :mod:`dali_multicrop.recipes.spec` states. A top-level
``defaults`` mapping is free for YAML anchors; ``patch_masking`` (optional) holds the method's own masked-patch
settings, :class:`~dali_multicrop.PatchMaskGenerator`'s keyword arguments (read by
:func:`dali_multicrop.recipes.config.preset_patch_masking`).
Unknown keys are errors; omitted fields take CropGroup's defaults (``ratio`` (3/4, 4/3) exactly, which YAML cannot
write as a fraction).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from typing import Any, Union

from ..common.shipped import find_yaml, read_yaml, shipped_folder, yaml_names
from .spec import ColorJitter, CropGroup, CropsLike, MultiCropSpec

__all__ = ["list_presets", "load_preset", "load_preset_description", "read_recipe", "is_recipe",
           "parse_crops", "spec_from_mapping"]

_TOP_KEYS = {"name", "description", "global_groups", "groups", "defaults", "patch_masking"}
_GROUP_KEYS = {f.name for f in dataclasses.fields(CropGroup)}
_JITTER_KEYS = {f.name for f in dataclasses.fields(ColorJitter)}


def _recipes() -> Any:
    """The recipes folder (see :func:`~dali_multicrop.common.shipped.shipped_folder`)."""
    return shipped_folder("dali_multicrop.pipelines", "pipelines")


def list_presets() -> list[str]:
    """Names of the shipped recipes."""
    return yaml_names(_recipes())


def load_preset_description(name: str) -> str:
    """The ``description`` of shipped recipe ``name``, on one line."""
    data = read_yaml(_recipes() / f"{name}.yaml", f"preset '{name}'")
    return " ".join(str(data.get("description", "")).split())


def _pair(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def spec_from_mapping(data: Any, origin: str = "recipe") -> MultiCropSpec:
    """A :class:`MultiCropSpec` from a parsed recipe; ValueError naming ``origin`` and the bad key or value."""
    if not isinstance(data, dict):
        raise ValueError(f"{origin}: expected a mapping with 'groups', got {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))} (expected {', '.join(sorted(_TOP_KEYS))})")
    raw_groups = data.get("groups")
    if not isinstance(raw_groups, list) or not raw_groups:
        raise ValueError(f"{origin}: 'groups' must be a non-empty list of crop groups")
    groups = []
    for k, raw in enumerate(raw_groups):
        where = f"{origin}: group {k + 1}"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be a mapping of CropGroup fields, got {raw!r}")
        unknown = set(raw) - _GROUP_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        fields = {key: _pair(value) for key, value in raw.items()}
        jitter = fields.get("color_jitter")
        try:
            if jitter is not None:
                if not isinstance(jitter, dict) or set(jitter) - _JITTER_KEYS:
                    raise ValueError(f"color_jitter must be a mapping of {', '.join(sorted(_JITTER_KEYS))}, "
                                     f"got {jitter!r}")
                fields["color_jitter"] = ColorJitter(**jitter)
            groups.append(CropGroup(**fields))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
    try:
        return MultiCropSpec(tuple(groups), data.get("global_groups", 1))
    except ValueError as exc:
        raise ValueError(f"{origin}: {exc}") from None


def _is_recipe_path(text: str) -> bool:
    return text.endswith((".yaml", ".yml")) or os.sep in text or os.path.isfile(os.path.expanduser(text))


def is_recipe(text: str) -> bool:
    """Whether ``crops`` text names a recipe (a shipped preset or a recipe file) rather than a crop spec."""
    text = text.strip()
    return text in list_presets() or (bool(text) and _is_recipe_path(text))


def read_recipe(name_or_path: Union[str, os.PathLike]) -> tuple[Any, str]:
    """A recipe's parsed YAML and its name for errors (``preset 'dino'``, ``recipe 'my.yaml'``)."""
    text_name = os.fspath(name_or_path)
    found = find_yaml(text_name, _recipes())
    if found is None:
        if _is_recipe_path(text_name):
            raise ValueError(f"recipe file '{text_name}' does not exist")
        raise ValueError(f"'{text_name}' is neither a shipped preset ({', '.join(list_presets())}) nor a crop "
                         f"spec (COUNTxSIZE groups, e.g. 2x224,6x96)")
    file, shipped = found
    origin = f"preset '{text_name}'" if shipped else f"recipe '{text_name}'"
    return read_yaml(file, origin), origin


def load_preset(name_or_path: Union[str, os.PathLike]) -> MultiCropSpec:
    """A shipped recipe by name (see :func:`list_presets`), or a recipe YAML file by path."""
    return spec_from_mapping(*read_recipe(name_or_path))


_NAME = re.compile(r"^[A-Za-z][\w.-]*$")
"""What a preset name looks like (``dinov2``); anything else that is neither a preset nor a file is read as a
crop spec, whose parser then says what is wrong with it."""
_SPEC_GROUP = re.compile(r"^[xX]?\d*[xX]\d*$")


def parse_crops(crops: CropsLike) -> MultiCropSpec:
    """A :class:`MultiCropSpec` from what a user may pass as ``crops``: a spec, a sequence of
    :class:`CropGroup` (the first group global), or a string, resolved in this order: a shipped preset's name
    (``"dino"``, ``"dinov2"``; see :func:`list_presets`), a recipe file (a path that exists, or one ending in
    ``.yaml``/``.yml``), a ``COUNTxSIZE`` crop spec (``"2x224,6x96"``)."""
    if isinstance(crops, MultiCropSpec):
        return crops
    if isinstance(crops, str):
        text = crops.strip()
        if is_recipe(text):
            return load_preset(text)
        if not _NAME.match(text) or _SPEC_GROUP.match(text):
            return MultiCropSpec.parse(crops)
        near = difflib.get_close_matches(text, list_presets(), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ValueError(f"'{text}' is neither a shipped preset ({', '.join(list_presets())}), a recipe file, nor "
                         f"a crop spec (COUNTxSIZE groups, e.g. 2x224,6x96){hint}")
    if isinstance(crops, (list, tuple)):
        return MultiCropSpec(tuple(crops))
    raise ValueError(f"crops must be a spec string such as '2x224,6x96', a MultiCropSpec or a list of "
                     f"CropGroup, got {crops!r}")
