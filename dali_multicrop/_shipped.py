"""The YAML files that ship inside the package (the recipes, the training configs): one lookup for both."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["shipped_folder", "yaml_names"]


def shipped_folder(package: str, checkout_folder: str) -> Any:
    """The installed package data ``package`` (``dali_multicrop.pipelines``), else ``checkout_folder`` at the top of a
    source checkout (code run from the repository with PYTHONPATH, where setuptools' mapping of that folder does not
    apply)."""
    try:
        return resources.files(package)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / checkout_folder


def yaml_names(folder: Any) -> list[str]:
    """The names (without ``.yaml``) of the YAML files in ``folder``, sorted."""
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
