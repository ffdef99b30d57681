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

from .pool import WorkerPool
from .process import WorkerCrash, WorkerStartError, WorkerTaskError, serve, worker_command

__all__ = ["WorkerPool", "WorkerCrash", "WorkerStartError", "WorkerTaskError", "serve", "worker_command"]
