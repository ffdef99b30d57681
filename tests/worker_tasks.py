"""Task functions the worker-pool tests run inside worker processes (tests/test_workers.py puts this folder on the
workers' PYTHONPATH)."""

from __future__ import annotations

import os
import signal
import time

_done = 0  # tasks this worker process has run


def echo(value, sleep_s: float = 0.0):
    """``value`` back, after ``sleep_s`` seconds; also the worker's pid and how many tasks it ran before."""
    global _done
    time.sleep(sleep_s)
    _done += 1
    return [value, os.getpid(), _done - 1]


def fail(message: str):
    raise ValueError(message)


def segfault():
    """Crashes its worker as a broken native decoder would."""
    os.kill(os.getpid(), signal.SIGSEGV)


def kill_self():
    """Dies as if the OOM killer had picked its worker."""
    os.kill(os.getpid(), signal.SIGKILL)


def crash_unless_first():
    """Crashes a worker that ran tasks before (state left by earlier work), succeeds in a fresh one."""
    global _done
    _done += 1
    if _done > 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    return "fine alone"


def scribble(value):
    """Writes to the process's stdout (file descriptor 1) as a native library might, then answers."""
    os.write(1, b"not an answer\n")
    print("nor this")
    return value
