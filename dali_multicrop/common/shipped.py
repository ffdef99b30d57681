"""The YAML files that ship inside the package (the recipes, the training configs): one lookup for both."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Optional

__all__ = ["find_yaml", "read_yaml", "shipped_folder", "yaml_names"]


def shipped_folder(package: str, checkout_folder: str) -> Any:
    """The installed package data ``package`` (``dali_multicrop.pipelines``), else ``checkout_folder`` at the top of a
    source checkout (code run from the repository with PYTHONPATH, where setuptools' mapping of that folder does not
    apply)."""
    try:
        return resources.files(package)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / checkout_folder


def read_yaml(file: Any, origin: str) -> Any:
    """The parsed YAML of ``file`` (a path, or a shipped file of :func:`shipped_folder`); ``ValueError`` naming
    ``origin`` (``"preset 'dino'"``, ``"config 'my.yaml'"``) where it is not valid YAML."""
    import yaml

    text = file.read_text() if hasattr(file, "read_text") else Path(file).read_text()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{origin} is not valid YAML: {exc}") from None


def yaml_names(folder: Any) -> list[str]:
    """The names (without ``.yaml``) of the YAML files in ``folder``, sorted."""
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def find_yaml(text: str, folder: Any) -> Optional[tuple[Any, bool]]:
    """Where the YAML that ``text`` names lies, by the package's one rule for "a shipped name or a file" (recipes and
    training configs alike): a shipped file's name first (``folder``'s ``<text>.yaml``), else an existing file at
    that path (``~`` expanded); with whether it is the shipped one. None where neither exists."""
    if text in yaml_names(folder):
        return folder / f"{text}.yaml", True
    path = Path(text).expanduser()
    return (path, False) if path.is_file() else None
