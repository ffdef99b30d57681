"""Worker processes that never import the user's main module, and never condemn a task for a death not its own.

Why not :mod:`multiprocessing`: its ``spawn`` and ``forkserver`` start methods (the latter the default on Linux from
Python 3.14) import the user's ``__main__`` in every worker, so a training script without an
``if __name__ == "__main__":`` guard runs again in each worker (and dies there); ``fork`` copies a process that may
hold DALI's and torch's threads. Here every worker is a fresh interpreter started as its own program::

    python -W ignore -c "<bootstrap>" PACKAGE_ROOT dali_multicrop.badsamples.validation:check_file [module:prepare]

which imports only this package (from the folder the parent imported it from) and the task's module, then talks
JSON lines over its stdin (tasks) and a private copy of its stdout (answers; the real stdout is pointed at stderr,
so a native library printing there cannot garble the stream). Its stderr goes to a temporary file: its last line
explains a worker that could not start. The workers ignore Ctrl-C (the parent decides) and run in a session of their
own; a parent that dies closes their stdin, and they exit.

A worker takes one task at a time. When it dies (a crash, a signal from outside such as the OOM killer's SIGKILL, a
time-out), the task it held is run again first, alone, in a fresh worker; only a task that crashes a fresh worker of
its own, alone, fails with :class:`WorkerCrash` (a task whose fresh workers are killed from outside three times in
a row too, saying so). A worker that cannot start is tried once more; a pool none of whose workers can start fails
every task with one :class:`WorkerStartError` that says what it saw.
"""

from __future__ import annotations

import collections
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

__all__ = ["WorkerPool", "WorkerCrash", "WorkerStartError", "WorkerTaskError", "serve", "worker_command"]

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
"""The folder this package was imported from: the workers import the very same copy."""

_BOOTSTRAP = ("import sys; root = sys.argv[1]; sys.path[:] = [p for p in sys.path if p != '']; "
              "root in sys.path or sys.path.insert(0, root); "
              "from dali_multicrop.workers import serve; serve(*sys.argv[2:])")

SELF_INFLICTED = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
"""Signals a process raises on itself when it crashes; any other signal came from outside."""

EXTERNAL_KILLS_ALONE = 3
"""Times a task's fresh worker may be killed from outside, alone, before the task is said to cause it (a file whose
decoding exhausts memory gets its worker killed by the OOM killer every time)."""


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


@dataclass
class _Task:
    args: tuple[Any, ...]
    future: "Future[Any]"
    deaths: int = 0  # workers that died holding it (the first perhaps with others before it, the rest alone)
    killed_alone: int = 0  # fresh workers of its own killed from outside while running it


def _settle(future: "Future[Any]", result: Any = None, error: Optional[BaseException] = None) -> None:
    """Sets a future's outcome unless its waiter cancelled it meanwhile."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class _Pool:
    """The pool's state and its slot threads (they hold this, never the :class:`WorkerPool`, so that dropping
    the pool stops them)."""

    def __init__(self, command: list[str], workers: int, what: str, task_timeout_s: float,
                 start_timeout_s: float) -> None:
        self.command, self.workers, self.what = command, workers, what
        self.task_timeout_s, self.start_timeout_s = task_timeout_s, start_timeout_s
        self.queue: collections.deque[_Task] = collections.deque()
        self.cv = threading.Condition()
        self.threads: list[threading.Thread] = []
        self.alive = 0  # slots that can still start workers
        self.closed = False
        self.broken: Optional[WorkerStartError] = None
        self.processes: dict[int, _Process] = {}
        self.running: dict[int, _Task] = {}
        self.started = 0

    def submit(self, args: tuple[Any, ...]) -> "Future[Any]":
        future: Future = Future()
        with self.cv:
            if self.closed:
                raise RuntimeError(f"this {self.what} pool is closed")
            if self.broken is not None:
                future.set_exception(self.broken)
                return future
            self.queue.append(_Task(args, future))
            if len(self.threads) < self.workers:
                thread = threading.Thread(target=self._slot, name=f"dali-multicrop-{self.what}-{len(self.threads)}",
                                          daemon=True)
                self.threads.append(thread)
                self.alive += 1
                thread.start()
            self.cv.notify()
        return future

    def _next(self) -> Optional[_Task]:
        with self.cv:
            while not self.queue and not self.closed:
                self.cv.wait()
            return None if self.closed else self.queue.popleft()

    def _requeue(self, task: _Task) -> None:
        with self.cv:
            self.queue.appendleft(task)
            self.cv.notify()

    def _start(self, slot: int) -> _Process:
        process = _Process(self.command, self.start_timeout_s)
        with self.cv:
            self.started += 1
            self.processes[slot] = process
            if self.closed:
                process.proc.kill()
        return process

    def _retire(self, slot: int, process: Optional[_Process]) -> None:
        with self.cv:
            self.processes.pop(slot, None)
        if process is not None:
            process.stop()

    def _slot(self) -> None:
        slot = threading.get_ident()
        process: Optional[_Process] = None
        try:
            while True:
                task = self._next()
                if task is None:
                    return
                if task.future.cancelled():
                    continue
                if task.deaths and process is not None and process.used:  # a suspect runs alone, in a fresh worker
                    self._retire(slot, process)
                    process = None
                if process is None:
                    process = self._start_or_give_up(slot, task)
                    if process is None:
                        return
                with self.cv:
                    self.running[slot] = task
                try:
                    kept = self._run(process, task)
                except Exception as exc:  # a fault of this module: the task fails with it rather than hang
                    _settle(task.future, error=exc)
                    kept = False
                with self.cv:
                    self.running.pop(slot, None)
                if not kept:
                    self._retire(slot, process)
                    process = None
        finally:
            self._retire(slot, process)

    def _start_or_give_up(self, slot: int, task: _Task) -> Optional[_Process]:
        """A fresh worker, trying twice; else this slot stops (``task`` goes back to the queue) and, if it was the
        last slot, the pool is broken: every queued task fails with the error."""
        error: Optional[WorkerStartError] = None
        for attempt in range(2):
            try:
                return self._start(slot)
            except WorkerStartError as exc:
                error = exc
                time.sleep(0.2 * (attempt + 1))
        assert error is not None
        with self.cv:
            self.alive -= 1
            if self.alive > 0 and not self.closed:
                self.queue.appendleft(task)
                self.cv.notify()
                return None
            self.broken = WorkerStartError(f"{self.what} cannot run: {error}")
            left = [task, *self.queue]
            self.queue.clear()
        for t in left:
            _settle(t.future, error=self.broken)
        return None

    def _run(self, process: _Process, task: _Task) -> bool:
        """Runs ``task`` on ``process``; False when the worker died on it (the task is then queued again first, or
        failed with :class:`WorkerCrash` if it ran alone)."""
        alone = task.deaths > 0 and process.used == 0
        try:
            result = process.run(task.args, self.task_timeout_s)
        except WorkerTaskError as exc:
            _settle(task.future, error=exc)
            return True
        except _Died as died:
            if self.closed:
                task.future.cancel()
                return False
            if alone and not (died.external and task.killed_alone + 1 < EXTERNAL_KILLS_ALONE):
                times = f" ({task.killed_alone + 1} times in a row)" if died.external else ""
                _settle(task.future, error=WorkerCrash(died.how + times))
                return False
            if alone:
                task.killed_alone += 1
            task.deaths += 1
            self._requeue(task)
            return False
        _settle(task.future, result)
        return True

    def close(self) -> None:
        """Cancels the tasks not done, kills the workers and waits (a few seconds at most) for the slots to end."""
        with self.cv:
            self.closed = True
            left = list(self.queue) + list(self.running.values())
            self.queue.clear()
            processes = list(self.processes.values())
            self.cv.notify_all()
        for task in left:
            task.future.cancel()
        for process in processes:
            try:
                process.proc.kill()
            except OSError:
                pass
        deadline = time.monotonic() + 5.0
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


class WorkerPool:
    """Runs ``target(*args)`` (a ``"module:function"`` whose arguments and result are JSON values) in up to
    ``workers`` worker processes (see the module); ``prepare`` (same form) runs once in each before it takes tasks.
    :meth:`submit` returns a ``Future``; workers start with the first tasks, each served by a thread of the parent.
    ``task_timeout_s``: the longest one task may take (then its worker is killed and the task run again, alone);
    ``start_timeout_s``: the longest a worker may take to be ready; ``what`` names the workers in errors (e.g.
    "image validation"); ``command``: another worker command line (tests). Dropping the pool stops it."""

    def __init__(self, target: str, workers: int, *, prepare: Optional[str] = None, what: str = "worker",
                 task_timeout_s: float = 300.0, start_timeout_s: float = 120.0,
                 command: Optional[Sequence[str]] = None) -> None:
        broken: Optional[WorkerStartError] = None
        if command is None:
            try:
                command = worker_command(target, prepare)
            except WorkerStartError as exc:  # every task fails with it, as when no worker starts
                command, broken = [], exc
        self._pool = _Pool(list(command), max(1, int(workers)), what, float(task_timeout_s), float(start_timeout_s))
        self._pool.broken = broken
        self._finalizer = weakref.finalize(self, self._pool.close)

    @property
    def started(self) -> int:
        """Worker processes started so far (fresh ones after a death included)."""
        return self._pool.started

    def pids(self) -> list[int]:
        """Process ids of the workers running now."""
        with self._pool.cv:
            return [p.pid for p in self._pool.processes.values()]

    def submit(self, *args: Any) -> "Future[Any]":
        """Queues ``target(*args)``; the future holds its result, or :class:`WorkerCrash`, :class:`WorkerTaskError`
        or :class:`WorkerStartError`."""
        return self._pool.submit(tuple(args))

    def close(self) -> None:
        """Stops the workers now; tasks not done are cancelled."""
        self._finalizer()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
