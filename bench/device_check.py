"""The GPU checks for a lent device machine, in calls that each fit one device call.

    python3 bench/device_check.py --call 1        # in the same device call as the kit's last part (see below)
    python3 bench/device_check.py --call 2        # then 3 and 4, each its own call, while the machine is warm
    python3 bench/device_check.py --plan          # the calls, their steps and their time budgets

A device call may run 600 s, and the machine time of a whole session is 15 minutes, its start and the kit's parts
included, so the figures that matter most come first and every call's results are complete on their own if the
machine goes away after it. Each call's steps have their own timeouts (killed with their child processes at the
limit), which add up, with the kit's unpacking in call 1, to at most ``CALL_BUDGET_S`` (a test holds them to it):

1. doctor, the machine, the gpu-marked tests (counted), the decode ceiling with the JPEG engine's utilisation
   read from NVML, and the main comparison: dali-gpu, dali-cpu, torchvision;
2. an A/B of DALI's executor settings on dali-gpu (operator concurrency, stream policy, a resize launch per
   batch, all three) and of ``hw_decoder_load`` (0 and 1 beside the default), the default run first and last;
3. dali-gpu with masks in the loop, DINO's recipe, the tar and array sources, the masks alone, the host budget
   (operators, GIL, decoder memory) and the host ms per ready batch of both graphs;
4. the training examples on the GPU (bf16) and an Nsight Systems timeline where nsys is installed.

The kit (``../shared/device/make-dali-kit.sh`` with its defaults and ``nvidia-nvvm`` added to ``EXTRA``: see
``bench/README.md``) brings DALI for CUDA 13 and numba, llvmlite, psutil, matplotlib, braceexpand, hypothesis,
pytest-timeout, huggingface_hub, safetensors, timm (without its dependencies) and CUDA's NVVM, which Numba's CUDA
target needs to compile the GPU graph's colour kernels (the steps' ``CUDA_HOME`` points at it where the machine has
none of its own); the device has torch, torchvision, pytest, typer, PyYAML, numpy and Pillow. Before its first step a
call checks that what it needs imports, and refuses to start with one line naming what does not.

Everything goes under ``$OUT/call-N`` (``./device-out`` without ``$OUT``); the summary goes to stdout and to
``summary.txt``. ``SAMPLES``, ``BATCH`` and ``BATCHES`` (or ``--samples`` ...) change the sizes; a dry run on a
machine without a GPU: ``SAMPLES=256 BATCH=16 BATCHES=4 python3 bench/device_check.py --call 1`` (the GPU rows
skip and say why, the A/B runs dali-cpu in dali-gpu's place).

Only the standard library here: the steps run the project's own commands in child processes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
CALL_BUDGET_S = 540
"""What one call's steps may take in all, their timeouts added up (the device allows 600 s a call)."""
KIT_S = 45
"""Kept for the kit's last part in call 1: checking the parts, unpacking DALI (about 600 MB) and importing it."""
PREFLIGHT_S = 30
"""The import check before a call's first step."""
CACHE = "/tmp/dali-multicrop-cache"
"""The steps' sample-data cache where ``DALI_MULTICROP_CACHE`` does not name one."""

REQUIRED = ("nvidia.dali", "numba", "llvmlite", "torch", "numpy", "PIL", "yaml", "typer", "rich", "braceexpand",
            "dali_multicrop")
"""What every call needs (the package and its runtime dependencies, DALI and the crop step's compiler)."""
NEEDED_BY_CALL = {1: ("pytest", "torchvision"), 2: (), 3: (), 4: ()}
"""What one call needs besides :data:`REQUIRED`."""
OPTIONAL = {"psutil": "host memory and CPU % cover the main process only", "matplotlib": "no charts",
            "cv2": "albumentations (the CPU peer) is not measured",
            "timm": "the training examples are skipped", "hypothesis": "the fuzz tests are skipped",
            "pytest_timeout": "no per-test timeout"}
"""Modules whose absence only narrows what a call reports (said in the summary)."""

EXECUTOR_AB = ("", "concurrency=full", "stream_policy=per_operator", "resize_batch=batch",
               "concurrency=full,stream_policy=per_operator,resize_batch=batch")
"""The executor settings call 2 measures on dali-gpu (the first: DALI's defaults)."""
HW_DECODER_LOADS = (0.0, 1.0)
"""``hw_decoder_load`` values call 2 measures beside the default (0.65): all CUDA, all hardware."""


@dataclass(frozen=True)
class Sizes:
    """The data and measurement sizes: ``samples`` sample JPEGs (one epoch holds warm-up and timed batches, so no
    epoch boundary is timed), ``batch`` images a batch, ``batches`` timed batches."""

    samples: int = 4096
    batch: int = 128
    batches: int = 28
    warmup: int = 3
    """The bench's own default: untimed batches before the timed ones."""

    @property
    def fits_one_epoch(self) -> bool:
        """Whether warm-up and timed batches fit in one epoch (the bench drops an epoch's last partial batch)."""
        return (self.warmup + self.batches) <= self.samples // self.batch

    @property
    def data(self) -> str:
        return f"{os.environ.get('DALI_MULTICROP_CACHE', CACHE)}/sample-v1-{self.samples}"

    def bench(self, crops: str = "2x224,6x96") -> list[str]:
        return [sys.executable, "-m", "dali_multicrop", "bench", "--crops", crops, "--sample-images",
                str(self.samples), "--batch-size", str(self.batch), "--batches", str(self.batches)]


@dataclass(frozen=True)
class Step:
    """One command of a call: its ``timeout`` in seconds, the lines of its output the summary shows (``show``, a
    regular expression), whether it needs a CUDA GPU (skipped without one, saying so), whether the JPEG engine is
    sampled while it runs (``engines``), and a ``check`` that turns its output into summary lines."""

    name: str
    timeout: int
    argv: tuple[str, ...]
    show: str = ""
    gpu_only: bool = False
    engines: bool = False
    check: Optional[Callable[[str], list[str]]] = None
    needs: tuple[str, ...] = ()
    """Optional modules without which the step is skipped (saying so)."""


def gpu_test_count(output: str) -> list[str]:
    """The gpu-marked tests' summary: how many ran, passed, failed, were skipped (or why none ran)."""
    last = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error|deselected)", line)]
    if not last:
        return ["gpu tests: NO SUMMARY LINE: collection failed or pytest was killed; see gpu-tests.log"]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", last[-1])}
    ran = sum(counts.get(k, 0) for k in ("passed", "failed", "error", "errors"))
    line = (f"gpu tests: {ran} ran ({counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, "
            f"{counts.get('error', 0) + counts.get('errors', 0)} errors), {counts.get('skipped', 0)} skipped")
    return [line + ("  <- none ran" if ran == 0 else "")]


def calls(sizes: Sizes) -> dict[int, list[Step]]:
    """The steps of each call, in order."""
    py = sys.executable
    bench = sizes.bench
    make_data = (py, "-c", f"from dali_multicrop.sample_data import ensure_sample_data as e; print(e({sizes.samples}))")
    data_step = Step("sample data (made once; later calls find it)", 30, make_data)
    first = [
        Step("doctor: driver, torch and DALI pairing, GPUs and their JPEG engine", 30,
             (py, "-m", "dali_multicrop", "doctor")),
        Step("machine", 15, ("bash", "-c", "command -v nvidia-smi >/dev/null && nvidia-smi; nproc; free -g | head -2; "
                             f"{py} -c \"import sys, nvidia.dali as d, torch, torchvision; print('python', "
                             "sys.version.split()[0], 'DALI', d.__version__, 'torch', torch.__version__, 'cuda', "
                             "torch.version.cuda, 'torchvision', torchvision.__version__, torch.cuda.is_available(), "
                             "torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')\""),
             show=r"python |NVIDIA H|Driver Version"),
        Step("sample data", 60, make_data),
        Step("gpu-marked tests (warnings shown, not errors: another torch and Python than CI's)", 140,
             (py, "-m", "pytest", "-q", "-m", "gpu", "-W", "default", "-p", "no:cacheprovider"), check=gpu_test_count),
        Step("decode ceiling: GPU decode vs CPU decode, the JPEG engine sampled", 70,
             (*bench(), "--backend", "decode", "--backend", "decode-cpu"), show=r"│ decode|decode:|warning",
             engines=True),
        Step("the main comparison: dali-gpu, dali-cpu, torchvision", 140,
             (*bench(), "--backend", "dali-gpu", "--backend", "dali-cpu", "--backend", "torchvision"),
             show=r"│ (dali|torch)|skipped|failed"),
    ]
    ab = [data_step]
    for k, executor in enumerate((*EXECUTOR_AB, "")):
        label = executor or "DALI's defaults" + (" (again)" if k else "")
        ab.append(Step(f"executor: {label}", 50, (*bench(), "--backend", "DALI_GPU", "--executor", executor),
                       show=r"│ dali"))
    for load in HW_DECODER_LOADS:
        ab.append(Step(f"hw_decoder_load {load:g}", 50, (*bench(), "--backend", "DALI_GPU", "--hw-decoder-load",
                                                         f"{load:g}"), show=r"│ dali"))
    third = [
        data_step,
        Step("dali-gpu with global_only masks in the loop", 60,
             (*bench(), "--backend", "dali-gpu", "--masks", "global_only"), show=r"│ dali"),
        Step("DINO's recipe on dali-gpu and dali-cpu", 70, (*bench("dino"), "--backend", "dali-gpu", "--backend",
                                                            "dali-cpu"), show=r"│ dali"),
        Step("sources: tar shards and arrays on dali-gpu", 80,
             (*bench(), "--backend", "dali-gpu", "--source", "tar", "--source", "arrays"), show=r"│ dali"),
        Step("masks alone (goal: under 1 ms per batch of 256)", 60,
             (py, "bench/masks.py", "--device", "cuda", "--out", "OUT"), show=r"ms|read", gpu_only=True),
        Step("host budget: operators per batch and the GIL per batch", 80,
             (py, "-m", "dali_multicrop", "overhead", "--rounds", "1", "--batches", "10", "--out", "OUT/overhead"),
             show=r"│|GIL"),
        Step("decoder memory per rank", 30,
             (py, "-c", "import torch; from dali_multicrop import DaliMultiCropLoader as L\n"
                        "print('decoder memory per rank:', L(" + repr(sizes.data) + ", device='gpu').decoder_memory)"),
             gpu_only=True, show="decoder memory"),
        Step("host ms per ready batch, both graphs, batch 256", 90, (py, "-c", READY), show=r"loader"),
    ]
    examples = [
        data_step,
        *(Step(f"{name} on the GPU (bf16), 30 steps", 120,
               (py, f"examples/{name}.py", "--arch", "vit_small_patch16_224", "--steps", "30", "--batch-size", "64",
                "--data", sizes.data, "--log-every", "5"), show=r"^(step|done)", gpu_only=True, needs=("timm",))
          for name in ("train_ijepa", "train_dino")),
        Step("sources: Parquet, a datasets.Dataset from its table and through PIL (issue #32: hf against hf-pil)", 90,
             (*bench(), "--backend", "dali-gpu", "--source", "parquet", "--source", "hf", "--source", "hf-pil"),
             show=r"│ dali", needs=("pyarrow", "datasets")),
        Step("a timeline of 20 batches of dali-gpu (nsys)", 120,
             ("nsys", "profile", "--trace=cuda,nvtx,osrt", "--force-overwrite=true", "-o", "OUT/dali-gpu",
              *bench(), "--batches", "20", "--backend", "dali-gpu"), gpu_only=True, show=r"Generated|│ dali"),
    ]
    return {1: first, 2: ab, 3: third, 4: examples}


READY = """
import dataclasses, json, torch
from dali_multicrop.benchmark.gil import measure_ready
from dali_multicrop.sample_data import ensure_tiny_data
data = str(ensure_tiny_data(16384))
for crops in ('2x224,6x96', 'dino'):
    for device in (['gpu'] if torch.cuda.is_available() else []) + ['cpu']:
        r = measure_ready('loader', crops, data, batch_size=256, batches=30, device=device)
        print('loader', crops, device, json.dumps(dataclasses.asdict(r)), flush=True)
"""


def call_seconds(call: int, steps: Sequence[Step]) -> int:
    """What a call may take at most: its steps' timeouts, the import check, and the kit in call 1."""
    return sum(s.timeout for s in steps) + PREFLIGHT_S + (KIT_S if call == 1 else 0)


KIT_NVVM = ("nvidia/cu13/lib/libnvvm.so.4", "nvidia/cu13/nvvm/libdevice/libdevice.10.bc")
"""CUDA's NVVM in the kit (the ``nvidia-nvvm`` wheel, relative to the kit's site folder): the GPU graph's colour
kernels are compiled by Numba's CUDA target, which needs it."""


def nvvm_home(site: Path, home: Path, system: Path = Path("/usr/local/cuda")) -> Optional[Path]:
    """A folder laid out as Numba looks for NVVM under ``CUDA_HOME`` (``nvvm/lib64/libnvvm.so``,
    ``nvvm/libdevice/libdevice.10.bc``), linking the kit's copy, made under ``home``; None where the system has its
    own (``system/nvvm``) or the kit has none."""
    library, libdevice = (site / name for name in KIT_NVVM)
    if (system / "nvvm" / "lib64").is_dir() or not library.exists() or not libdevice.exists():
        return None
    folder = home / "dali-nvvm"
    for link, target in ((folder / "nvvm" / "lib64" / "libnvvm.so", library),
                         (folder / "nvvm" / "libdevice" / "libdevice.10.bc", libdevice)):
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(target)
    return folder


def child_env() -> dict[str, str]:
    """The steps' environment: DALI from the kit and the project from the working tree importable, output
    unbuffered, one sample-data cache for every step; ``CUDA_HOME`` pointing Numba at the kit's NVVM where the
    machine has none of its own and none is named."""
    env = dict(os.environ)
    site = Path.home() / "dali-site"
    paths = [str(site), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("DALI_MULTICROP_CACHE", CACHE)
    if "CUDA_HOME" not in env:
        home = nvvm_home(site, Path.home())
        if home is not None:
            env["CUDA_HOME"] = str(home)
    return env


PROBE = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        out[name] = ""
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
try:
    import torch
    out["@cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
except Exception:
    out["@cuda"] = ""
try:  # the GPU graph's colour kernels are compiled by Numba's CUDA target, with CUDA's NVVM
    from numba.cuda.cudadrv import nvvm
    nvvm.NVVM()
    out["@nvvm"] = ""
except Exception as exc:
    out["@nvvm"] = f"{type(exc).__name__}: {exc}"[:300]
print(json.dumps(out))
"""


def preflight(call: int) -> tuple[Optional[str], str, dict[str, str]]:
    """``(why the call cannot start or None, the GPU's name or "", the optional modules missing and what that
    costs)``."""
    names = [*REQUIRED, *NEEDED_BY_CALL.get(call, ()), *OPTIONAL]
    proc = subprocess.run([sys.executable, "-c", PROBE, *names], capture_output=True, text=True, env=child_env(),
                          timeout=PREFLIGHT_S, cwd=ROOT)
    if proc.returncode != 0:
        return f"device check: the import check itself failed: {proc.stderr.strip()[-300:]}", "", {}
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    missing = [f"{n} ({found[n]})" for n in (*REQUIRED, *NEEDED_BY_CALL.get(call, ())) if found.get(n)]
    if missing:
        return (f"device check: call {call} cannot start: {'; '.join(missing)} not importable. Bring DALI and "
                f"the rest with ../shared/device/make-dali-kit.sh (its defaults) and run the kit's parts first "
                f"(bench/README.md, 'On a lent GPU')"), "", {}
    absent = {n: why for n, why in OPTIONAL.items() if found.get(n)}
    if found.get("@cuda") and found.get("@nvvm"):
        absent["CUDA's NVVM"] = (f"the GPU graph's colour kernels cannot compile, so every dali-gpu step fails "
                                 f"({found['@nvvm']}); build the kit with EXTRA naming nvidia-nvvm (bench/README.md)")
    return None, found.get("@cuda", ""), absent


@dataclass
class Outcome:
    name: str
    status: str
    seconds: float
    lines: list[str] = field(default_factory=list)


def run_step(step: Step, argv: list[str], log: Path) -> Outcome:
    """Runs one step in its own process group, its output to ``log``; kills the whole group at its timeout."""
    start = time.monotonic()
    sampler = None
    if step.engines:
        sampler = _nvml().EngineSampler().__enter__()
    with open(log, "w") as handle:
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=step.timeout)
            status = "ok" if rc == 0 else f"exit {rc}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = f"TIMED OUT after {step.timeout} s"
    output = log.read_text(errors="replace")
    lines = [line for line in output.splitlines() if step.show and re.search(step.show, line)][-12:]
    if step.check is not None:
        lines += step.check(output)
    if sampler is not None:
        sampler.__exit__(None, None, None)
        lines.append(sampler.reading.summary())
        with open(log, "a") as handle:
            handle.write(json.dumps({"engines": sampler.reading.__dict__}) + "\n")
    if status != "ok":
        lines += output.splitlines()[-6:]
    return Outcome(step.name, status, round(time.monotonic() - start, 1), lines)


def _skip_reason(step: Step, gpu: str, absent: dict[str, str]) -> Optional[str]:
    """Why ``step`` cannot run on this machine (``gpu``: the GPU's name or ""; ``absent``: the optional modules
    missing), or None."""
    if step.gpu_only and not gpu:
        return "no CUDA GPU"
    missing = [m for m in step.needs if m in absent]
    if missing:
        return f"{', '.join(missing)} missing"
    if step.argv[0] == "nsys" and not shutil.which("nsys"):
        return "nsys is not installed"
    return None


def run_call(call: int, sizes: Sizes, out: Path) -> int:
    """Runs one call's steps; 0 when every step ran (a step's own failure is reported, not fatal), 2 when the call
    could not start."""
    folder = out / f"call-{call}"
    folder.mkdir(parents=True, exist_ok=True)
    steps = calls(sizes)[call]
    with open(folder / "summary.txt", "w") as summary:

        def say(line: str) -> None:
            print(line, flush=True)
            summary.write(line + "\n")
            summary.flush()

        started = time.monotonic()
        why, gpu, absent = preflight(call)
        if why is not None:
            say(why)
            return 2
        say(f"device check, call {call}: {gpu or 'no CUDA GPU (a dry run: GPU steps skip)'}; sizes {sizes}")
        for name, cost in absent.items():
            say(f"note: {name} is missing: {cost}")
        outcomes = []
        for k, step in enumerate(steps):
            say(f"== {time.monotonic() - started:.0f}s: {step.name}")
            reason = _skip_reason(step, gpu, absent)
            if reason is not None:
                say(f"   skipped: {reason}")
                outcomes.append(Outcome(step.name, f"skipped: {reason}", 0.0))
                continue
            name = f"{k:02d}-{_slug(step.name)}"
            argv = [_fill(a, folder, gpu) for a in step.argv]
            if "bench" in argv[:4] and "--out" not in argv:  # each bench run's results in a folder of its own
                argv += ["--out", str(folder / name)]
            outcome = run_step(step, argv, folder / f"{name}.log")
            for line in outcome.lines:
                say(f"   {line}")
            say(f"   {outcome.status}, {outcome.seconds:.0f} s")
            outcomes.append(outcome)
        say(f"call {call} done in {time.monotonic() - started:.0f} s (budget {call_seconds(call, steps)} s)")
    (folder / "steps.json").write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
    return 0


def _nvml():
    """``dali_multicrop/benchmark/nvml.py`` loaded by its path: standard library only, so this process needs neither
    the package's dependencies nor the kit on its own path."""
    import importlib.util

    path = ROOT / "dali_multicrop" / "benchmark" / "nvml.py"
    spec = importlib.util.spec_from_file_location("device_check_nvml", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _fill(arg: str, folder: Path, gpu: str) -> str:
    """A step's argument with its placeholders filled: ``OUT`` (the call's folder), ``DALI_GPU`` (dali-gpu, or
    dali-cpu standing in on a dry run)."""
    if arg == "DALI_GPU":
        return "dali-gpu" if gpu else "dali-cpu"
    if arg == "OUT" or arg.startswith("OUT/"):
        return str(folder) + arg[3:]
    return arg


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--call", type=int, choices=[1, 2, 3, 4], help="which call to run")
    p.add_argument("--plan", action="store_true", help="print the calls, their steps and budgets, and exit")
    p.add_argument("--samples", type=int, default=int(os.environ.get("SAMPLES", Sizes.samples)))
    p.add_argument("--batch", type=int, default=int(os.environ.get("BATCH", Sizes.batch)))
    p.add_argument("--batches", type=int, default=int(os.environ.get("BATCHES", Sizes.batches)))
    args = p.parse_args(argv)
    sizes = Sizes(args.samples, args.batch, args.batches)
    if not sizes.fits_one_epoch:
        p.error(f"{sizes.warmup} warm-up and {sizes.batches} timed batches of {sizes.batch} do not fit in one epoch of "
                f"{sizes.samples} samples: an epoch boundary would be timed")
    if args.plan or args.call is None:
        for call, steps in calls(sizes).items():
            print(f"call {call}: at most {call_seconds(call, steps)} s of {CALL_BUDGET_S}")
            for step in steps:
                print(f"  {step.timeout:4d} s  {step.name}")
        return 0
    return run_call(args.call, sizes, Path(os.environ.get("OUT", "device-out")))


if __name__ == "__main__":
    sys.exit(main())
