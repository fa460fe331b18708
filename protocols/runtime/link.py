"""The controller's end of its link to the supervisor (:mod:`.supervisor`).

A supervised controller (``robochem run``, ``serve``, ``demo`` started by their supervisor)
finds a socket in ``ROBOCHEM_SUPERVISOR_FD``. Over it, one JSON object per line, it
tells the supervisor what the supervisor needs to keep the lab safe::

    {"kind": "armed"}                  the lab's devices are connected: from now on a death
                                       without "clean" leaves devices to be made safe
    {"kind": "campaign", "id": 7}      the campaign it runs (for the event and the hint)
    {"kind": "step", "text": "..."}    what it was doing (recorded if it dies)
    {"kind": "beat"}                   every second, from the event loop: a controller whose
                                       loop stops answering is hung
    {"kind": "clean"}                  its own final safe state is done, devices closed

The other direction carries nothing: when the supervisor dies, the socket reads end of
file, and on Linux the kernel also sends SIGUSR2 (``prctl(PR_SET_PDEATHSIG)``, in case
the socket outlives it somehow). Either calls ``on_lost`` once; the controller then puts
the lab in its safe state itself and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger("robochem.protocols.runtime.link")

__all__ = ["ENV_FD", "ENV_SUPERVISOR_PID", "HEARTBEAT_S", "SupervisorLink"]

#: Environment of a supervised controller: the link's file descriptor, the supervisor's pid.
ENV_FD = "ROBOCHEM_SUPERVISOR_FD"
ENV_SUPERVISOR_PID = "ROBOCHEM_SUPERVISOR_PID"
#: Wall seconds between heartbeats.
HEARTBEAT_S = 1.0
#: The signal the kernel sends when the supervisor dies (Linux); never the default SIGKILL,
#: which would leave nobody to make the lab safe.
PARENT_DEATH_SIGNAL = signal.SIGUSR2 if hasattr(signal, "SIGUSR2") else None
_PR_SET_PDEATHSIG = 1


class SupervisorLink:
    """Messages to the supervisor, and notice of its death."""

    def __init__(self, sock: socket.socket, supervisor_pid: int | None) -> None:
        self.sock = sock
        self.supervisor_pid = supervisor_pid
        self.lost_reason: str | None = None
        self._on_lost: Callable[[str], None] | None = None
        self._beat: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_env(cls) -> SupervisorLink | None:
        """The link if this process is a supervised controller (call it early: it arms the
        parent-death signal), else None."""
        fd = os.environ.pop(ENV_FD, None)
        if fd is None:
            return None
        pid_text = os.environ.pop(ENV_SUPERVISOR_PID, "")
        sock = socket.socket(fileno=int(fd))
        sock.set_inheritable(False)  # the controller's own children are not controllers
        sock.settimeout(2.0)  # a supervisor that stopped reading cannot block the lab
        link = cls(sock, int(pid_text) if pid_text.isdigit() else None)
        link._arm_parent_death_signal()
        return link

    # -- to the supervisor ------------------------------------------------------------------
    def send(self, kind: str, **fields: Any) -> None:
        """One message; never raises (a dead supervisor is noticed by the reader)."""
        data = (json.dumps({"kind": kind, **fields}) + "\n").encode()
        try:
            self.sock.sendall(data)
        except OSError as exc:
            log.debug("supervisor link: %s not sent: %s", kind, exc)

    # -- from the supervisor: only its death --------------------------------------------------
    def start(self, on_lost: Callable[[str], None] | None = None) -> None:
        """Send heartbeats and watch for the supervisor's death on the running loop."""
        self._loop = loop = asyncio.get_running_loop()
        loop.add_reader(self.sock.fileno(), self._readable)
        if PARENT_DEATH_SIGNAL is not None:
            loop.add_signal_handler(
                PARENT_DEATH_SIGNAL, self._lost, "the supervisor died (parent-death signal)"
            )
        self._beat = loop.create_task(self._heartbeat(), name="supervisor-heartbeat")
        self.set_on_lost(on_lost)

    def set_on_lost(self, on_lost: Callable[[str], None] | None) -> None:
        """Who is called (once) when the supervisor dies: soon, if it already has (e.g.
        while the devices were connecting, before anyone could act on it)."""
        self._on_lost = on_lost
        if on_lost is not None and self.lost_reason is not None and self._loop is not None:
            self._on_lost = None
            self._loop.call_soon(on_lost, self.lost_reason)

    async def stop(self) -> None:
        """Stop watching (the link stays open for a last ``send``)."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        if self._loop is not None:
            # ValueError: the link is closed already (its fileno() is -1), nothing to remove.
            with contextlib.suppress(ValueError):
                self._loop.remove_reader(self.sock.fileno())
            if PARENT_DEATH_SIGNAL is not None:
                try:
                    self._loop.remove_signal_handler(PARENT_DEATH_SIGNAL)
                except (ValueError, RuntimeError, OSError) as exc:
                    log.warning("supervisor link: the loop's parent-death handler stays: %s", exc)
                self._catch_parent_death()  # never the default action (terminate)
            self._loop = None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    async def _heartbeat(self) -> None:
        while True:
            self.send("beat")
            await asyncio.sleep(HEARTBEAT_S)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(4096)
        except (BlockingIOError, TimeoutError, InterruptedError):
            return
        except OSError as exc:
            data, why = b"", f"the supervisor link failed ({exc})"
        else:
            why = "the supervisor died (its link closed)"
        if not data:
            if self._loop is not None:
                self._loop.remove_reader(self.sock.fileno())
            self._lost(why)

    def _lost(self, reason: str) -> None:
        """Record the first reason; call ``on_lost`` once, if watching."""
        if self.lost_reason is None:
            self.lost_reason = reason
        callback, self._on_lost = self._on_lost, None
        if callback is not None:
            callback(self.lost_reason)

    def _catch_parent_death(self) -> None:
        if PARENT_DEATH_SIGNAL is not None:
            signal.signal(PARENT_DEATH_SIGNAL, lambda *_: self._lost("the supervisor died"))

    def _arm_parent_death_signal(self) -> None:
        """Linux: have the kernel signal this process when the supervisor dies."""
        if PARENT_DEATH_SIGNAL is None or not sys.platform.startswith("linux"):
            return
        # A Python-level handler first: the default action of SIGUSR2 is to terminate,
        # which would leave the lab to nobody if the supervisor died before the event loop
        # took the signal over.
        self._catch_parent_death()
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError) as exc:
            log.warning("no parent-death signal: %s", exc)
        # The supervisor may have died before prctl: then we are someone else's child.
        if self.supervisor_pid is not None and os.getppid() != self.supervisor_pid:
            self._lost("the supervisor died before the controller started")
