"""The scripts beside the package (bench/, examples/) import only names the package has: a module moved or a helper
removed shows here, not when someone runs a benchmark on a lent GPU."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for folder in ("bench", "examples") for p in (ROOT / folder).glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_package_name_a_script_imports_exists(script):
    missing = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            wanted = [(a.name, None) for a in node.names if a.name.startswith("dali_multicrop")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("dali_multicrop"):
            wanted = [(node.module, a.name) for a in node.names]
        else:
            continue
        for module, name in wanted:
            try:
                found = importlib.import_module(module)
            except ImportError as exc:
                missing.append(f"{module} ({exc})")
                continue
            if name is not None and not hasattr(found, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    missing.append(f"{module}.{name}")
    assert not missing, f"{script.relative_to(ROOT)} imports what the package does not have: {missing}"


def test_every_module_path_the_docs_name_exists():
    """Docstrings, the README and docs/ name modules and objects by path (``dali_multicrop.badsamples.validation``);
    each must resolve, so that a module moved leaves no reference to where it was."""
    import re

    texts = [p for p in (ROOT / "dali_multicrop").rglob("*.py")] + sorted((ROOT / "docs").glob("*.md")) + \
        [ROOT / "README.md"]
    stale = set()
    for path in texts:
        for ref in re.findall(r"(dali_multicrop(?:\.[A-Za-z_]\w*)+)", path.read_text()):
            parts = ref.split(".")
            for k in range(len(parts), 0, -1):  # the longest importable module, then attributes
                try:
                    found = importlib.import_module(".".join(parts[:k]))
                except ImportError:
                    continue
                for name in parts[k:]:
                    found = getattr(found, name, None)
                if found is None:
                    stale.add(f"{path.relative_to(ROOT)}: {ref}")
                break
    assert not stale, sorted(stale)
