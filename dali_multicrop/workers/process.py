"""One worker process (see :mod:`dali_multicrop.workers`): its command line, its main loop (:func:`serve`, run in the
worker) and the parent's handle on it (one task at a time, its death told apart from the task's failure)."""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

__all__ = ["PACKAGE_ROOT", "SELF_INFLICTED", "WorkerCrash", "WorkerStartError", "WorkerTaskError", "serve",
           "worker_command"]

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)
"""The folder this package was imported from: the workers import the very same copy."""

_BOOTSTRAP = ("import sys; root = sys.argv[1]; sys.path[:] = [p for p in sys.path if p != '']; "
              "root in sys.path or sys.path.insert(0, root); "
              "from dali_multicrop.workers.process import serve; serve(*sys.argv[2:])")

SELF_INFLICTED = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
"""Signals a process raises on itself when it crashes; any other signal came from outside."""

class WorkerStartError(RuntimeError):
    """No worker of a pool could start: the message says what was seen (exit code, the last line of stderr)."""


class WorkerCrash(RuntimeError):
    """A task crashed a fresh worker of its own, alone; ``how`` says how it died (``"killed by SIGSEGV"``, ...)."""

    def __init__(self, how: str) -> None:
        super().__init__(f"the worker process died running it alone: {how}")
        self.how = how


class WorkerTaskError(RuntimeError):
    """The task's function raised in the worker (a bug, not a crash); the message is the worker's error."""


def worker_command(target: str, prepare: Optional[str] = None) -> list[str]:
    """The command line of a worker running ``target`` (``"module:function"``), after ``prepare`` (same form,
    called once before the worker says it is ready)."""
    if not sys.executable:
        raise WorkerStartError("cannot start worker processes: this Python does not know its own executable "
                               "(sys.executable is empty)")
    # -W ignore: a PYTHONWARNINGS=error of the user's must not kill a worker on a library's deprecation warning
    return [sys.executable, "-W", "ignore", "-c", _BOOTSTRAP, PACKAGE_ROOT, target] + ([prepare] if prepare else [])


def _function(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def serve(target: str, prepare: Optional[str] = None) -> None:
    """The worker's main loop (see the module): one JSON list of arguments per line in, one answer per line out
    (``{"ok": result}`` or ``{"error": "..."}``), until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # a native library printing to stdout writes to stderr instead of into the answers
    sys.stdout = sys.stderr
    function = _function(target)
    if prepare:
        _function(prepare)()
    answers.write('{"ready": true}\n')
    answers.flush()
    for line in sys.stdin:
        try:
            answer = {"ok": function(*json.loads(line))}
        except Exception as exc:  # the task's own failure: reported, the worker goes on
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def _describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class _Died(Exception):
    def __init__(self, how: str, external: bool) -> None:
        super().__init__(how)
        self.how = how
        self.external = external


class _Process:
    """One worker process: started, then one task at a time."""

    def __init__(self, command: Sequence[str], start_timeout_s: float) -> None:
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, start_new_session=True, close_fds=True)
        except OSError as exc:  # out of processes or memory, no executable, ...
            self._stderr.close()
            raise WorkerStartError(f"could not start a worker process ({exc.strerror or exc})") from None
        self._buffer = b""
        self.used = 0
        try:
            ready = self._answer(start_timeout_s)
        except _Died as died:
            words = self._last_stderr_line()
            self.stop()
            raise WorkerStartError(f"a worker process {died.how} before it was ready{words}") from None
        if ready != {"ready": True}:
            self.stop()
            raise WorkerStartError(f"a worker process said {ready!r} instead of that it was ready")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _last_stderr_line(self) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 4096))
            lines = [ln.strip() for ln in self._stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        return f"; its last words: {lines[-1][:300]}" if lines else "; it printed nothing"

    def _answer(self, timeout_s: float) -> Any:
        """The next answer line, parsed; :class:`_Died` when the worker dies or stays silent ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        out = self.proc.stdout
        assert out is not None
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.proc.kill()
                self.proc.wait()
                raise _Died(f"gave no answer within {timeout_s:g} s (hung?)", external=False)
            ready, _, _ = select.select([out], [], [], left)
            if not ready:
                continue
            chunk = os.read(out.fileno(), 1 << 16)
            if not chunk:
                code = self.proc.wait()
                raise _Died(_describe_exit(code), external=code < 0 and -code not in SELF_INFLICTED)
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            self.proc.kill()
            self.proc.wait()
            raise _Died(f"wrote {line[:80]!r}, which is not an answer", external=False) from None

    def run(self, args: Sequence[Any], timeout_s: float) -> Any:
        """The task's result; :class:`WorkerTaskError` if it raised, :class:`_Died` if the worker died on it."""
        self.used += 1
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(list(args)) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it is dead: the read below says how
        answer = self._answer(timeout_s)
        if "error" in answer:
            raise WorkerTaskError(answer["error"])
        return answer["ok"]

    def stop(self) -> None:
        """Closes its stdin (it exits), killing it if it does not within a second."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self._stderr):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
