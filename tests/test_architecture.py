"""The package's shape (issue #31): its imports go one way, and its modules stay small. Read from the source with
``ast`` (every import counts, those inside functions and ``TYPE_CHECKING`` blocks too: a late import is still a
dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dali_multicrop"

MAX_LINES = 400

KNOWN_CIRCLES: list[set[str]] = []
"""Circles still to undo: none (issue #31 undid the crop step's, the config's and the benchmark's). A circle not in
this list fails the test, and so does one of these once it is gone (take it out of the list)."""

OVERSIZED: set[str] = set()
"""Modules over :data:`MAX_LINES` still to split: none (issue #31 split cli.py and workers.py). This set may only
shrink."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports (a package counts as its ``__init__``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.startswith("dali_multicrop"):
                target = node.module[len("dali_multicrop"):].lstrip(".")
            else:
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}" if target else alias.name
                out.add(full if full in modules else target)
        elif isinstance(node, ast.Import):
            out.update(alias.name[len("dali_multicrop"):].lstrip(".") for alias in node.names
                       if alias.name.startswith("dali_multicrop"))
    return {m for m in out if m in modules and m != name}


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_imports_go_one_way():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    circles = _circles(graph)
    unknown = [sorted(c) for c in circles if c not in KNOWN_CIRCLES]
    assert not unknown, f"import circles: {unknown}"
    gone = [sorted(c) for c in KNOWN_CIRCLES if c not in circles]
    assert not gone, f"these circles are gone: take them out of KNOWN_CIRCLES: {gone}"


def test_the_finder_sees_a_circle(tmp_path):
    """The check has teeth: two modules that import each other (one late, inside a function) are a circle."""
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "one.py").write_text("from .two import f\n")
    (pkg / "two.py").write_text("def f():\n    from . import one\n")
    modules = {"one": pkg / "one.py", "two": pkg / "two.py"}
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph == {"one": {"two"}, "two": {"one"}} and _circles(graph) == [{"one", "two"}]


def test_no_module_grows_past_the_limit():
    sizes = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    over = {name for name, lines in sizes.items() if lines > MAX_LINES}
    assert over <= OVERSIZED, f"modules over {MAX_LINES} lines: {sorted(over - OVERSIZED)}"
    assert OVERSIZED <= over, f"these are small now: take them out of OVERSIZED: {sorted(OVERSIZED - over)}"


CHAIN = ("common", "recipes", "sources", "pixels", "step", "graph", "loader", "masking")
"""The package's folders in the order a batch's data flows through them (docs/architecture.md, "Folders"), after the
rules every folder uses."""

BESIDE = {"badsamples", "workers", "fidelity", "benchmark", "cli", "doctor", "preview", "sample_data", "draws"}
"""What sits beside the chain (and may import any of it); ``""`` is the package's ``__init__``."""

UPWARD = {("recipes.config", "graph.executor"), ("recipes.config", "masking.levels"),
          ("recipes.config", "badsamples.policy")}
"""Imports against the chain's order, each named: the training config validates every layer's keys."""


def test_the_folders_are_the_documented_flow_and_imports_follow_it():
    """The top level holds the chain's folders, those beside it and nothing else; each folder of the chain imports
    only earlier ones (or what is beside the chain), save :data:`UPWARD`; and docs/architecture.md names them in
    that order."""
    modules = _modules()
    top = {name.split(".")[0] for name in modules if name} - {"__main__"}
    assert top == set(CHAIN) | BESIDE
    for name, path in modules.items():
        here = name.split(".")[0]
        if here not in CHAIN:
            continue
        for target in _imports(name, path, modules):
            there = target.split(".")[0]
            if there in CHAIN and CHAIN.index(there) > CHAIN.index(here):
                assert (name, target) in UPWARD, f"{name} imports {target}, later in the chain {CHAIN}"
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    assert " -> ".join(CHAIN[1:]) in doc
    listed = [line.split()[0].rstrip("/") for line in doc.split("```\ndali_multicrop/\n", 1)[1].split("```")[0]
              .splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert set(listed) - {"preview.py"} == set(CHAIN) | BESIDE - {"doctor", "preview", "sample_data", "draws"}


def test_every_documented_import_works():
    """The imports the README, docs/ and examples/ write (``from dali_multicrop... import ...``, also inside
    prose as `dali_multicrop.x`), run in a fresh interpreter: the package's regrouping kept each."""
    import re
    import subprocess
    import sys

    root = PACKAGE.parent
    texts = [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "examples").glob("*.py"))]
    lines, modules = set(), set()
    for path in texts:
        text = path.read_text()
        lines.update(m.group(1).split("#")[0].strip() for m in
                     re.finditer(r"^\s*(from dali_multicrop[\w.]* import [\w, ]+)", text, re.M))
        modules.update(re.findall(r"`(dali_multicrop(?:\.\w+)+)`", text))
    assert len(lines) >= 5 and "dali_multicrop.fidelity" in modules
    resolve = ("import functools, importlib\n"
               "def resolve(name):  # the longest importable prefix, then attributes\n"
               "    parts = name.split('.')\n"
               "    for i in range(len(parts), 0, -1):\n"
               "        try:\n"
               "            found = importlib.import_module('.'.join(parts[:i]))\n"
               "        except ModuleNotFoundError:\n"
               "            continue\n"
               "        return functools.reduce(getattr, parts[i:], found)\n")
    code = "\n".join(sorted(lines)) + "\n" + resolve + "\n".join(f"resolve({m!r})" for m in sorted(modules))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
