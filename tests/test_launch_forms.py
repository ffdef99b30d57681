"""``on_error="skip"`` (validation in worker processes) and check-data work the same however the user's program is
started: a script with and without a main guard, ``python -c``, a script on stdin, ``python -m``, IPython, a Jupyter
notebook and torchrun. Each is a real subprocess: under pytest the main module is pytest's, which hides what users
hit (forkserver and spawn workers import the user's main module; a script without a guard then runs again in each)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bad_images import BAD, GOOD
from dali_multicrop import FileList

GOOD_FILES = 22
SCRIPT = """
import json, os, warnings
from dali_multicrop import DaliMultiCropLoader
warnings.simplefilter("always")
loader = DaliMultiCropLoader({folder!r}, crops="2x32,2x16", batch_size=8, device="cpu", on_error="skip", seed=1)
seen = [i for batch in loader for i in batch.indices.tolist()]
with open({out!r} + os.environ.get("RANK", "0") + ".json", "w") as f:
    json.dump({{"seen": seen, "skipped": sorted(loader.skipped), "shard": loader.shard_id}}, f)
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[str], int]:
    """A folder of good JPEGs and one corrupt JPEG (markers fine, data garbage: only decoding finds it); the files
    in the loader's order and the corrupt one's index."""
    root = tmp_path_factory.mktemp("launch")
    good = GOOD["baseline.jpg"]()
    for k in range(GOOD_FILES):
        (root / "a").mkdir(exist_ok=True)
        (root / "a" / f"{k:02d}.jpg").write_bytes(good)
    (root / "a" / "10_corrupt.jpg").write_bytes(BAD["corrupt.jpg"][0]())
    files = list(FileList.from_folder(root).files)
    return root, files, files.index(str(root / "a" / "10_corrupt.jpg"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env["PYTHONWARNINGS"] = "default"
    return env


def _run(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, input=stdin, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{args[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def _check(dataset, out: Path, ranks: int = 1, stderr: str = "") -> None:
    """Every good file exactly once (the corrupt one's slot reported as -1), the corrupt one skipped and named,
    nothing else condemned."""
    _, files, corrupt = dataset
    results = [json.loads((out.parent / f"{out.name}{r}.json").read_text()) for r in range(ranks)]
    seen = sorted(i for r in results for i in r["seen"])
    assert seen == [-1] + [i for i in range(len(files)) if i != corrupt]
    assert [s for r in results for s in r["skipped"]] == [files[corrupt]]
    assert "resource_tracker" not in stderr and "leaked" not in stderr
    assert stderr.count("it crashes DALI's decoder") == 0


def _script(dataset, out: Path, guard: bool = False) -> str:
    code = SCRIPT.format(folder=str(dataset[0]), out=str(out))
    if guard:
        return "def main():\n" + textwrap.indent(code, "    ") + "\n\nif __name__ == '__main__':\n    main()\n"
    return code


def test_a_script_without_a_main_guard(dataset, tmp_path):
    (tmp_path / "train.py").write_text(_script(dataset, tmp_path / "out"))
    proc = _run([sys.executable, "train.py"], tmp_path)
    _check(dataset, tmp_path / "out", stderr=proc.stderr)
    assert proc.stderr.count("skipping cannot decode image") == 1  # warned once, by the one process there is


def test_a_script_with_a_main_guard(dataset, tmp_path):
    (tmp_path / "train.py").write_text(_script(dataset, tmp_path / "out", guard=True))
    proc = _run([sys.executable, "train.py"], tmp_path)
    _check(dataset, tmp_path / "out", stderr=proc.stderr)


def test_python_dash_c(dataset, tmp_path):
    proc = _run([sys.executable, "-c", _script(dataset, tmp_path / "out")], tmp_path)
    _check(dataset, tmp_path / "out", stderr=proc.stderr)


def test_a_script_on_stdin(dataset, tmp_path):
    proc = _run([sys.executable, "-"], tmp_path, stdin=_script(dataset, tmp_path / "out"))
    _check(dataset, tmp_path / "out", stderr=proc.stderr)


def test_python_dash_m_package_module(dataset, tmp_path):
    (tmp_path / "mytraining").mkdir()
    (tmp_path / "mytraining" / "__init__.py").write_text("")
    (tmp_path / "mytraining" / "train.py").write_text(_script(dataset, tmp_path / "out"))
    proc = _run([sys.executable, "-m", "mytraining.train"], tmp_path)
    _check(dataset, tmp_path / "out", stderr=proc.stderr)


def test_ipython(dataset, tmp_path):
    pytest.importorskip("IPython")
    proc = _run([sys.executable, "-m", "IPython", "--no-banner", "--quick", "-c", _script(dataset, tmp_path / "out")],
                tmp_path)
    _check(dataset, tmp_path / "out", stderr=proc.stderr)


def test_a_jupyter_notebook(dataset, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_script(dataset, tmp_path / "out"))])
    (tmp_path / "train.ipynb").write_text(nbformat.writes(notebook))
    code = ("import nbclient, nbformat; nb = nbformat.read('train.ipynb', as_version=4); "
            "nbclient.NotebookClient(nb, timeout=240, kernel_name='python3').execute(); "
            "print(''.join(o.get('text', '') for o in nb.cells[0].outputs))")
    assert nbclient
    proc = _run([sys.executable, "-c", code], tmp_path)
    _check(dataset, tmp_path / "out", stderr=proc.stderr)
    assert "skipping cannot decode image" in proc.stdout  # the cell's warning, captured by the notebook


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun(dataset, tmp_path):
    (tmp_path / "train.py").write_text(_script(dataset, tmp_path / "out"))
    env_args = ["--nnodes=1", "--nproc_per_node=2", f"--master_port={_free_port()}", "--master_addr=127.0.0.1"]
    proc = _run([sys.executable, "-m", "torch.distributed.run", *env_args, "train.py"], tmp_path)
    results = [json.loads((tmp_path / f"out{r}.json").read_text()) for r in range(2)]
    assert [r["shard"] for r in results] == [0, 1]
    _check(dataset, tmp_path / "out", ranks=2, stderr=proc.stderr)


CHECK_SCRIPT = """
from dali_multicrop.badsamples.scan import check_files
from dali_multicrop import FileList
report = check_files(FileList.from_folder({folder!r}).files, min_size=8, threads=2)
print("undecodable", sorted(report.found["undecodable"]))
print("counts", report.counts())
"""


def test_check_data_from_a_plain_script(dataset, tmp_path):
    (tmp_path / "scan.py").write_text(CHECK_SCRIPT.format(folder=str(dataset[0])))
    proc = _run([sys.executable, "scan.py"], tmp_path)
    _, files, corrupt = dataset
    assert f"undecodable {[files[corrupt]]}" in proc.stdout
    assert "'unreadable': 0" in proc.stdout


def test_check_data_from_the_command_line(dataset, tmp_path):
    exe = shutil.which("dali-multicrop")
    args = [exe] if exe else [sys.executable, "-m", "dali_multicrop"]
    proc = subprocess.run([*args, "check-data", str(dataset[0]), "--min-size", "8"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]  # a file that would stop training
    assert re.search(r"FAIL undecodable +1\n", proc.stdout) and "10_corrupt.jpg" in proc.stdout
    assert f"{GOOD_FILES + 1} files" in proc.stdout
