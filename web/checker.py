"""Checks of user input in separate processes, bounded in wall time and memory.

The dashboard process also drives the lab, so a protocol that arrives over the network is
checked neither on its event loop nor in one of its threads (CPU-bound Python in a thread
still competes for the GIL with the engine): each check runs in a fresh process, forked
from a forkserver that has already imported and warmed up the protocol language
(``robochem.web.check_worker``), so a check costs milliseconds to start. A check that
outlives ``check_timeout_s`` is killed; one cannot map more than ``memory_bytes`` beyond
what it started with (near that cap Python raises MemoryError, or crawls until the time
bound ends it); either way one clear message instead of a stalled or dead lab. At most
``processes`` checks run at once; a request beyond that is refused at once
(:class:`CheckerBusyError`, answered 429) rather than queued in a thread.
"""

from __future__ import annotations

import functools
import logging
import math
import multiprocessing
import os
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

__all__ = [
    "CheckFailedError",
    "CheckMemoryError",
    "CheckTimeoutError",
    "Checker",
    "CheckerBusyError",
]

log = logging.getLogger("robochem.web.checker")

WORKER = "robochem.web.check_worker"


class CheckerBusyError(Exception):
    """Every checker process is busy; try again in a moment (HTTP 429)."""


class CheckTimeoutError(Exception):
    """The check ran longer than its bound and was killed."""


class CheckFailedError(Exception):
    """The check raised (a bug: the message is the traceback) or its process died."""


class CheckMemoryError(CheckFailedError):
    """The check needed more memory than its cap."""


@functools.cache
def _context() -> Any:
    """forkserver where the platform has it (Linux, macOS); spawn elsewhere (slower)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # multiprocessing re-runs the main script in every child; for `robochem serve` that
        # script imports robochem.cli, imported here once. ("__main__" would preload the main
        # module itself, but Python 3.11's forkserver never receives its path.)
        context.set_forkserver_preload(["__main__", "robochem.cli", WORKER])
        return context
    return multiprocessing.get_context("spawn")


class Checker:
    def __init__(
        self, *, timeout_s: float, processes: int = 2, memory_bytes: int = 1 << 30
    ) -> None:
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self._slots = threading.BoundedSemaphore(processes)

    def warm_up(self) -> None:
        """Start the forkserver now (in a thread) so the first check does not wait for it."""

        def ping() -> None:
            try:
                self.call("ping")
            except Exception:  # a later check reports the problem
                log.exception("starting the protocol checker failed")

        threading.Thread(target=ping, name="checker-warm-up", daemon=True).start()

    def call(self, name: str, *args: Any) -> Any:
        """``check_worker.<name>(*args)`` in its own process; blocks the calling thread."""
        if not self._slots.acquire(blocking=False):
            raise CheckerBusyError("other protocol checks are running; try again in a moment")
        try:
            return self._run(name, args)
        finally:
            self._slots.release()

    def _run(self, name: str, args: tuple[Any, ...]) -> Any:
        context = _context()
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_child,
            args=(send, name, args, self.memory_bytes, self.timeout_s),
            name=f"robochem-check-{name}",
            daemon=True,
        )
        process.start()
        send.close()
        try:
            if not receive.poll(self.timeout_s):
                raise CheckTimeoutError(f"took longer than {self.timeout_s:g} s")
            try:
                ok, value = receive.recv()
            except EOFError:
                process.join(1)
                raise CheckFailedError(
                    f"the checking process ended without an answer (exit code {process.exitcode})"
                ) from None
        finally:
            if process.is_alive():
                process.kill()
            process.join()
            receive.close()
        if ok == "memory":
            raise CheckMemoryError(value)
        if not ok:
            raise CheckFailedError(value)
        return value


def _child(
    send: Connection, name: str, args: tuple[Any, ...], memory_bytes: int, timeout_s: float
) -> None:
    """Runs in the checking process: lower priority and caps, then the check."""
    import importlib

    os.nice(10)  # the lab's own process comes first on a busy machine
    _limit(memory_bytes, timeout_s)
    result: tuple[Any, Any] | None
    try:
        worker = importlib.import_module(WORKER)
        result = (True, getattr(worker, name)(*args))
    except MemoryError:
        result = None  # answered below: leaving this block frees the traceback and its data
    # Any other exception is a bug in a check. It cannot be re-raised across the process
    # boundary, so its traceback is sent instead: the caller raises CheckFailedError with it
    # and logs it (LabRuntime.validate), and the dashboard stays up.
    except Exception:  # noqa: BLE001 - reported to the parent, which raises and logs it
        result = (False, traceback.format_exc())
    if result is None:
        result = ("memory", f"the check needed more than {memory_bytes >> 20} MB of memory")
    send.send(result)
    send.close()


def _limit(extra_bytes: int, timeout_s: float) -> None:
    """Cap the address space at what the process maps now plus ``extra_bytes``, and its CPU
    time just past the wall-time bound: should the dashboard die while a check runs (nobody
    left to kill it), the kernel still ends it."""
    try:
        import resource
    except ImportError:
        return  # Windows: the time bound only
    cpu_s = math.ceil(timeout_s) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    try:
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return  # not Linux: no memory cap
    limit = mapped + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
