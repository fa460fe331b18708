"""``GET /state``: what the virtual lab physically does, for anyone outside it.

A test, a benchmark or the dashboard asks this server, not a driver, whether the pumps
really stopped and the light really went off: the answer is read from the simulators
themselves (their motors, LED output, heater, valve rotors), never from what a driver
believes it commanded. It runs on the simulators' own event loop, so every read sees one
consistent instant, and it speaks just enough HTTP/1.1 for any client (no framework: the
simulated lab must not depend on the web stack).

The answer (docs/virtual-lab.md, "Ground truth over HTTP")::

    {"simulated_time": 1767225600.0, "wall_time": 1767225601.2, "speed": 1000.0,
     "devices": {
       "pump-substrate": {"kind": "pump", "running": true, "flow_ml_min": 0.39},
       "valve-collect": {"kind": "valve", "position": "1"},
       "reactor": {"kind": "photoreactor",
                   "light": {"on": true, "output_percent": 45.0},
                   "temperature": {"control": true, "setpoint_c": 27.0, "reading_c": 26.9}},
       "nmr": {"kind": "nmr", "busy": null}}}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("robochem.simulator.state")

__all__ = ["StateServer", "device_state", "lab_state"]

#: Longest request head accepted (a GET needs a few hundred bytes).
MAX_REQUEST_BYTES = 8192
#: Wall seconds a client may take to send its request.
REQUEST_TIMEOUT_S = 5.0


def _pump(flow_ml_min: float, running: bool) -> dict[str, Any]:
    return {"kind": "pump", "running": bool(running), "flow_ml_min": round(flow_ml_min, 9)}


def device_state(sim: Any) -> dict[str, Any]:
    """One simulator's physical state (by its ``family``), brought to the clock's now."""
    family = getattr(sim, "family", "device")
    if family == "knauer-azura":
        sim.update()  # pressure trips up to now
        return _pump(sim.flow_ml_min, sim.running)
    if family == "harvard-elite11":
        pump = sim.pump(0)  # the pump wired to the port; advances the chain to now
        return _pump(pump.flow_ml_min, pump.running)
    if family == "chemyx-fusion":
        sim.update()
        return _pump(sim.flow_ml_min, sim.running)
    if family == "knauer-valve":
        return {"kind": "valve", "position": str(sim.position)}
    if family == "photoreactor":
        output = sim.led_output_percent  # integrates the physics (and the watchdog) to now
        return {
            "kind": "photoreactor",
            "light": {"on": bool(sim.led_enabled), "output_percent": round(output, 3)},
            "temperature": {
                "control": bool(sim.running and not sim.sensor_error and not sim.manual),
                "setpoint_c": sim.setpoint_c,
                "reading_c": round(sim.temperature_c, 3),
            },
        }
    if family == "manson":
        output = 100 * sim.light_output_fraction
        return {"kind": "light", "light": {"on": bool(sim.output_on), "output_percent": output}}
    if family == "spinsolve":
        return {"kind": "nmr", "busy": sim.busy_with}
    return {"kind": family}


def lab_state(servers: Mapping[str, Any], clock: Any, world: Any = None) -> dict[str, Any]:
    """Every simulator's physical state at one instant, plus the simulated time."""
    if world is not None:
        try:
            world.update()
        except Exception:  # blind on purpose: a world bug must not hide the devices
            log.exception("virtual lab update failed before a state snapshot")
    return {
        "simulated_time": clock.now(),
        "wall_time": time.time(),
        "speed": clock.speed,
        "devices": {name: device_state(sim) for name, sim in servers.items()},
    }


class StateServer:
    """A minimal HTTP/1.1 server answering ``GET /state`` with ``snapshot()`` as JSON."""

    def __init__(
        self, snapshot: Callable[[], dict[str, Any]], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.snapshot = snapshot
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    def url(self) -> str:
        return f"http://{self.host}:{self.port}/state"

    async def start(self) -> StateServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError, TimeoutError):  # clients gone already
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            method, path = _request_line(head)
            writer.write(self._answer(method, path))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # a client that went away or sent no request: nothing to answer
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):  # the client already went away
                await writer.wait_closed()

    def _answer(self, method: str, path: str) -> bytes:
        if path.split("?", 1)[0] != "/state":
            return _response(404, {"detail": f"not found: {path}; try GET /state"})
        if method not in ("GET", "HEAD"):
            return _response(405, {"detail": "only GET /state"}, allow="GET, HEAD")
        try:
            body = self.snapshot()
        except Exception as exc:  # report, never take the simulated lab down
            log.exception("state snapshot failed")
            return _response(500, {"detail": f"{type(exc).__name__}: {exc}"})
        return _response(200, body, head_only=method == "HEAD")


def _request_line(head: bytes) -> tuple[str, str]:
    if len(head) > MAX_REQUEST_BYTES:
        return "", ""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    return (parts[0], parts[1]) if len(parts) == 3 else ("", "")


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


def _response(
    status: int, body: dict[str, Any], *, allow: str | None = None, head_only: bool = False
) -> bytes:
    data = json.dumps(body).encode()
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if allow:
        lines.append(f"Allow: {allow}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else data)
