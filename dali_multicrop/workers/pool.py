"""The worker pool (see :mod:`dali_multicrop.workers`): tasks queued to a few workers, a dead worker's task run again
alone in a fresh one, a pool none of whose workers can start failing every task with one clear error."""

from __future__ import annotations

import collections
import threading
import time
import weakref
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .process import WorkerCrash, WorkerStartError, WorkerTaskError, _Died, _Process, worker_command

__all__ = ["EXTERNAL_KILLS_ALONE", "WorkerPool"]

EXTERNAL_KILLS_ALONE = 3
"""Times a task's fresh worker may be killed from outside, alone, before the task is said to cause it (a file whose
decoding exhausts memory gets its worker killed by the OOM killer every time)."""


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
