"""The worker processes (dali_multicrop.workers): started as their own program, one task at a time, a dead worker's
task run again alone in a fresh one, only a task that kills a fresh worker of its own condemned, one clear error
when no worker can start. Real processes throughout."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from dali_multicrop.workers import WorkerCrash, WorkerPool, WorkerStartError, WorkerTaskError

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _tasks_importable(monkeypatch):
    """The workers find tests/worker_tasks.py (they inherit the environment, not pytest's sys.path)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))


def _pool(target: str, workers: int = 1, **kw) -> WorkerPool:
    return WorkerPool(f"worker_tasks:{target}", workers, what="test", **kw)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_results_come_back_in_order_from_several_workers():
    with _pool("echo", workers=2) as pool:
        futures = [pool.submit(k) for k in range(40)]
        results = [f.result(timeout=60) for f in futures]
    assert [r[0] for r in results] == list(range(40))
    assert len({r[1] for r in results}) == 2  # both workers took tasks
    assert pool.started == 2


def test_the_worker_never_imports_the_parents_main_module():
    # the parent here is pytest; a worker importing __main__ would run pytest again. It runs its own bootstrap only.
    with _pool("echo") as pool:
        pid = pool.submit("x").result(timeout=60)[1]
    assert pid != os.getpid()
    with WorkerPool("builtins:eval", 1, what="test") as pool:
        assert pool.submit("__import__('sys').modules['__main__'].__dict__.get('__file__')").result(timeout=60) is None
        assert pool.submit("'torch' in __import__('sys').modules").result(timeout=60) is False


def test_a_task_that_raises_fails_alone_and_the_worker_goes_on():
    with _pool("fail") as pool:
        future = pool.submit("bad value")
        with pytest.raises(WorkerTaskError, match="ValueError: bad value"):
            future.result(timeout=60)
        assert pool.started == 1
    with _pool("echo") as pool:
        assert pool.submit(3).result(timeout=60)[0] == 3


def test_a_task_that_crashes_a_fresh_worker_alone_is_reported_and_the_rest_survive():
    with WorkerPool("worker_tasks:segfault", 1, what="test") as crash, _pool("echo") as good:
        future = crash.submit()
        with pytest.raises(WorkerCrash, match="killed by SIGSEGV"):
            future.result(timeout=60)
        assert crash.started == 2  # the worker it crashed among others, then a fresh one of its own
        assert good.submit(1).result(timeout=60)[0] == 1


def test_a_task_that_crashes_only_after_other_work_is_not_condemned():
    with _pool("crash_unless_first") as pool:
        futures = [pool.submit() for _ in range(4)]
        assert [f.result(timeout=60) for f in futures] == ["fine alone"] * 4
    assert pool.started == 4  # the first in the first worker; each later one crashed it, then ran alone


def test_a_worker_killed_from_outside_condemns_none_of_its_tasks():
    with _pool("echo", workers=1) as pool:
        futures = [pool.submit(k, 0.3) for k in range(6)]
        futures[0].result(timeout=60)
        time.sleep(0.1)  # the worker is inside task 1 now
        for pid in pool.pids():
            os.kill(pid, signal.SIGKILL)
        results = [f.result(timeout=60) for f in futures]
    assert [r[0] for r in results] == list(range(6))
    assert pool.started == 2
    assert results[1][2] == 0  # task 1 ran again, first (alone) in the fresh worker


def test_a_task_whose_fresh_workers_are_always_killed_is_reported_after_three():
    with WorkerPool("worker_tasks:kill_self", 1, what="test") as pool:
        with pytest.raises(WorkerCrash, match=r"killed by SIGKILL \(3 times in a row\)"):
            pool.submit().result(timeout=60)
    assert pool.started == 4


def test_a_hung_task_is_killed_and_reported():
    with _pool("echo", task_timeout_s=1.0) as pool:
        with pytest.raises(WorkerCrash, match="gave no answer within 1 s"):
            pool.submit(0, 30).result(timeout=60)
        assert pool.submit(1).result(timeout=60)[0] == 1


def test_native_writes_to_stdout_do_not_garble_the_answers():
    with _pool("scribble") as pool:
        assert [pool.submit(k).result(timeout=60) for k in range(3)] == [0, 1, 2]


def test_a_pool_whose_workers_cannot_start_says_what_it_saw():
    command = [sys.executable, "-c", "import sys; sys.stderr.write('ImportError: no DALI here\\n'); sys.exit(3)"]
    with WorkerPool("x:y", 2, what="image validation", command=command) as pool:
        futures = [pool.submit(k) for k in range(5)]
        for future in futures:
            with pytest.raises(WorkerStartError, match=r"image validation cannot run: a worker process exited with "
                                                       r"code 3 before it was ready; its last words: ImportError: "
                                                       r"no DALI here"):
                future.result(timeout=60)
        with pytest.raises(WorkerStartError):
            pool.submit(6).result(timeout=5)  # at once, without trying again


def test_a_missing_executable_is_a_start_error():
    with WorkerPool("x:y", 1, what="test", command=["/nonexistent/python"]) as pool:
        with pytest.raises(WorkerStartError, match="could not start a worker process"):
            pool.submit().result(timeout=60)


def test_dropping_or_closing_a_pool_stops_its_workers():
    pool = _pool("echo", workers=2)
    futures = [pool.submit(k) for k in range(4)]
    [f.result(timeout=60) for f in futures]
    pids = pool.pids()
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    del pool, futures
    gc.collect()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
    pool = _pool("echo")
    pending = [pool.submit(k, 0.5) for k in range(5)]
    pending[0].result(timeout=60)
    pool.close()
    assert all(f.cancelled() or f.done() for f in pending[1:])
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(1)
