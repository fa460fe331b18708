"""The supervisor: a parent process with one job, a safe lab when its controller dies.

``robochem run``, ``serve`` and ``demo`` become this small process. It loads the platform
file (and knows the database URL, to record an event), imports what safe state needs, and
spawns the real controller (the same command, marked by ``ROBOCHEM_SUPERVISOR_FD``) in its
own process group, linked by a socket pair (:mod:`.link` is the controller's end). It does
nothing else while the controller runs: no devices, no database.

When the controller exits without saying ``clean`` (killed, crashed, or hung: no heartbeat
for ``hang_timeout_s``, then killed), and it had said ``armed`` (its devices were
connected), the supervisor connects to every device but the NMR in parallel (each driver's
connect is a safe start: flow off, light off, temperature control stopped), reads what they
report, applies ``Lab.safe_state(temperature=True)`` (the collection valve to waste, the
reactor to the platform's safe temperature), disconnects, prints one line, and then records
what it found and did as a ``supervisor.safe_state`` event, retrying while the database is
unreachable (the safe state never waits for the database).

SIGINT and SIGTERM are forwarded to the controller (its abort path); if it has not exited
``stop_bound_s`` later it is killed and the lab made safe as above. SIGUSR1 is forwarded
(the controller prints where its tasks wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..platform import Platform
from .lab import Lab, open_devices, safety_devices
from .link import ENV_FD, ENV_SUPERVISOR_PID

log = logging.getLogger("robochem.protocols.runtime.supervisor")

__all__ = [
    "EXIT_CONTROLLER_DIED",
    "EXIT_SUPERVISOR_LOST",
    "Supervisor",
    "make_safe",
    "supervise",
    "supervision_wanted",
]

#: Exit code of the supervisor when its controller died and it made the lab safe.
EXIT_CONTROLLER_DIED = 6
#: Exit code of a controller that lost its supervisor (it made the lab safe itself).
EXIT_SUPERVISOR_LOST = 5
#: Wall seconds without a message after which an armed controller counts as hung.
HANG_TIMEOUT_S = 30.0
#: Wall seconds a controller has to stop after SIGINT/SIGTERM before it is killed.
STOP_BOUND_S = 20.0
#: Wall seconds the supervisor keeps trying to record its event.
RECORD_FOR_S = 60.0
#: ``ROBOCHEM_SUPERVISE=0`` runs the controller alone (debugging only: nothing then makes
#: the lab safe if it dies).
ENV_SUPERVISE = "ROBOCHEM_SUPERVISE"
ENV_HANG_TIMEOUT = "ROBOCHEM_HANG_TIMEOUT_S"


def supervision_wanted() -> bool:
    """True in a process that should become a supervisor (not already a controller)."""
    if ENV_FD in os.environ or os.name != "posix":
        return False
    return os.environ.get(ENV_SUPERVISE, "1").strip().lower() not in ("0", "false", "no", "off")


def supervise(
    command: Sequence[str],
    platform: Platform,
    *,
    database_url: str | None,
    resume_hint: Callable[[int], str] | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run ``command`` (argv after ``python -m robochem.cli``) as the supervised controller
    of ``platform`` (``env`` added to its environment); returns the exit code to leave
    with."""
    _preimport(platform)
    text = os.environ.get(ENV_HANG_TIMEOUT, str(HANG_TIMEOUT_S))
    try:
        hang_s = float(text)
        if not 1.0 <= hang_s <= 3600.0:
            raise ValueError
    except ValueError:
        print(f"{ENV_HANG_TIMEOUT}={text!r}: expected wall seconds 1..3600", file=sys.stderr)
        return 1
    supervisor = Supervisor(
        [sys.executable, "-m", "robochem.cli", *command],
        platform,
        database_url=database_url,
        hang_timeout_s=hang_s,
        resume_hint=resume_hint,
        env=env,
    )
    return asyncio.run(supervisor.run())


def _preimport(platform: Platform) -> None:
    """Import every driver safe state needs now, not after the controller died."""
    from robochem.drivers.registry import DRIVERS

    for name in safety_devices(platform):
        target = DRIVERS.get(platform.devices[name].driver)
        if isinstance(target, str):
            importlib.import_module(target.split(":", 1)[0])
    # the event is recorded after a death
    importlib.import_module("robochem.events")
    importlib.import_module("robochem.storage.db")


@dataclass
class Findings:
    """What the supervisor found and did after a controller died."""

    found: dict[str, Any] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    safe_after_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "done": self.done,
            "failed": self.failed,
            "safe_after_s": round(self.safe_after_s, 3),
        }


async def make_safe(platform: Platform) -> Findings:
    """Connect to every device but the NMR at once (connect is each driver's safe start),
    read them, apply the lab's safe state, disconnect. Never raises for a device."""
    t0 = time.monotonic()
    out = Findings()
    devices, failed = await open_devices(platform, safety_devices(platform))
    if failed:  # e.g. a serial port the dead process still held for a moment: once more
        await asyncio.sleep(0.5)
        more, failed = await open_devices(platform, list(failed))
        devices.update(more)
    out.done += [f"{name}: connected (safe start)" for name in devices]
    out.failed.update({f"{name}: connect": why for name, why in failed.items()})
    lab = Lab(platform, devices)
    try:
        out.found = await _read(lab)
        report = await lab.safe_state(temperature=True)
        out.done += report.done
        out.failed.update(report.failed)
        out.safe_after_s = time.monotonic() - t0
    finally:
        await lab.close()
    return out


async def _read(lab: Lab) -> dict[str, Any]:
    """What each device reports after its safe start (positions, setpoints left behind)."""
    from robochem.drivers.base import LightSource, Photoreactor, Pump, TemperatureController, Valve
    from robochem.drivers.errors import DeviceError

    async def one(device: Any) -> Any:
        if isinstance(device, Pump):
            s = await device.status()
            return {"state": str(s.state), "flow_ml_min": s.flow_rate_ml_min}
        if isinstance(device, Valve):
            return {"position": await device.get_position()}
        out: dict[str, Any] = {}
        light = device.light if isinstance(device, Photoreactor) else device
        temperature = device.temperature if isinstance(device, Photoreactor) else device
        if isinstance(light, LightSource):
            lamp = await light.lamp_status()
            out["light"] = {"on": lamp.enabled, "faults": list(lamp.faults)}
        if isinstance(temperature, TemperatureController):
            t = await temperature.temperature_status()
            out["temperature"] = {
                "control": t.running, "setpoint_c": t.setpoint_c, "reading_c": t.temperature_c,
            }  # fmt: skip
        return out

    async def bounded(name: str, device: Any) -> Any:
        try:
            return await asyncio.wait_for(one(device), 2.0)
        except (TimeoutError, DeviceError) as exc:  # silent, faulted, refused: reported
            return {"error": f"{type(exc).__name__}: {exc}"}
        except Exception as exc:
            # Reading is only a report, and the safe state after it must still reach every
            # device: a bug reading this one is logged, reported, and the others go on.
            log.exception("supervisor: reading %s after its safe start failed", name)
            return {"error": f"{type(exc).__name__}: {exc}"}

    names = list(lab.devices)
    results = await asyncio.gather(*(bounded(n, lab.devices[n]) for n in names))
    return dict(zip(names, results, strict=True))


class Supervisor:
    """Spawns the controller, watches it, and makes the lab safe when it dies."""

    def __init__(
        self,
        argv: Sequence[str],
        platform: Platform,
        *,
        database_url: str | None,
        hang_timeout_s: float = HANG_TIMEOUT_S,
        stop_bound_s: float = STOP_BOUND_S,
        resume_hint: Callable[[int], str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env or {})
        self.platform = platform
        self.database_url = database_url
        self.hang_timeout_s = hang_timeout_s
        self.stop_bound_s = stop_bound_s
        self.resume_hint = resume_hint
        self.proc: asyncio.subprocess.Process | None = None
        self.armed = False
        self.clean = False
        self.campaign_id: int | None = None
        self.last_step: str | None = None
        self.why: str | None = None  # why the supervisor killed the controller
        self.silent_s: float | None = None  # how long it had been silent when killed as hung
        self._last_message = time.monotonic()
        self._stop_deadline: float | None = None

    async def run(self) -> int:
        ours, theirs = socket.socketpair()
        env = {**os.environ, **self.env}
        env.update({ENV_FD: str(theirs.fileno()), ENV_SUPERVISOR_PID: str(os.getpid())})
        try:
            # Its own process group: a Ctrl-C at the terminal reaches the supervisor only,
            # which forwards it, so the controller sees one abort, not two.
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, env=env, pass_fds=(theirs.fileno(),), process_group=0
            )
        finally:
            theirs.close()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.add_signal_handler(sig, self._forward, sig)
        reader, writer = await asyncio.open_connection(sock=ours)
        reading = asyncio.create_task(self._read(reader))
        exited = asyncio.create_task(self.proc.wait())
        try:
            while not exited.done():
                await asyncio.wait({exited}, timeout=0.25)
                self._check_deadlines()
            with contextlib.suppress(TimeoutError):  # messages sent just before the exit
                await asyncio.wait_for(reading, 1.0)
        finally:
            reading.cancel()
            writer.close()
        code = exited.result()
        if self.clean or not self.armed:
            return code if code >= 0 else 128 - code
        await self._after_death(code)
        return EXIT_CONTROLLER_DIED

    # -- watching ---------------------------------------------------------------------------
    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            self._last_message = time.monotonic()
            try:
                message = json.loads(line)
            except ValueError:
                continue
            kind = message.get("kind")
            if kind == "armed":
                self.armed = True
            elif kind == "clean":
                self.clean = True
            elif kind == "campaign" and isinstance(message.get("id"), int):
                self.campaign_id = message["id"]
            elif kind == "step":
                self.last_step = str(message.get("text"))

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        if self.proc is None or self.proc.returncode is not None or self.why:
            return
        if self.armed and not self.clean and now - self._last_message > self.hang_timeout_s:
            self.silent_s = now - self._last_message
            self._kill(f"hung: no heartbeat for {self.hang_timeout_s:g} s")
        elif self._stop_deadline is not None and now > self._stop_deadline:
            self._kill(f"did not stop within {self.stop_bound_s:g} s of the stop signal")

    def _kill(self, why: str) -> None:
        self.why = why
        log.error("controller %s: killing it", why)
        with contextlib.suppress(ProcessLookupError):
            assert self.proc is not None
            self.proc.kill()

    def _forward(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return  # gone: what is left to do (safe state) is not interrupted
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)
        if sig in (signal.SIGINT, signal.SIGTERM) and self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.stop_bound_s

    # -- after a death ----------------------------------------------------------------------
    async def _after_death(self, code: int) -> None:
        assert self.proc is not None
        how = self.why or (
            f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        )
        findings = await make_safe(self.platform)
        print(self._line(how, findings), file=sys.stderr, flush=True)
        payload = {
            "controller": {
                "pid": self.proc.pid,
                "exit": how,
                "armed": self.armed,
                "silent_s": None if self.silent_s is None else round(self.silent_s, 2),
            },
            "last_step": self.last_step,
            **findings.to_dict(),
        }
        await self._record(payload)

    def _line(self, how: str, findings: Findings) -> str:
        text = f"robochem supervisor: the controller (pid {self.proc.pid if self.proc else '?'}) "
        text += f"{how}; "
        if findings.failed:
            text += f"lab NOT fully safe after {findings.safe_after_s:.2f} s, failed: " + "; ".join(
                f"{k}: {v}" for k, v in findings.failed.items()
            )
        else:
            text += f"lab made safe in {findings.safe_after_s:.2f} s"
        if self.campaign_id is not None and self.resume_hint is not None:
            text += f"; {self.resume_hint(self.campaign_id)}"
        return text

    async def _record(self, payload: dict[str, Any]) -> None:
        """The event, once the database is reachable (the lab is already safe)."""
        from sqlalchemy.exc import SQLAlchemyError

        from robochem.clock import Clock
        from robochem.events import EventBus
        from robochem.storage.db import StorageError, open_database

        clock_spec = self.platform.clock or {}
        clock = Clock(
            speed=float(clock_spec.get("speed", 1.0)),
            epoch=float(clock_spec.get("epoch", time.time())),
        )
        deadline = time.monotonic() + RECORD_FOR_S
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            db = None
            try:
                db = open_database(self.database_url)
                await EventBus(db, clock=clock).publish(
                    "supervisor", "supervisor.safe_state", payload, campaign_id=self.campaign_id
                )
                return
            except (SQLAlchemyError, StorageError, OSError) as exc:
                last_error = exc  # unreachable, locked, full: try again
                await asyncio.sleep(1.0)
            except Exception as exc:
                # Not the database being away but a bug: retrying will not help. The lab is
                # safe already; log it and print what was found and done (below) instead.
                log.exception("supervisor: recording the safe-state event failed")
                last_error = exc
                break
            finally:
                if db is not None:
                    db.dispose()
        print(
            f"robochem supervisor: could not record the event ({last_error}); "
            f"what it found and did: {json.dumps(payload)}",
            file=sys.stderr,
            flush=True,
        )
