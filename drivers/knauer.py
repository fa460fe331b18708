"""Knauer AZURA P 2.1S / P 4.1S HPLC pumps and AZURA V 2.1S valves (ASCII over LAN or RS-232).

URLs: ``tcp://192.168.1.20:10001`` (LAN, factory port 10001) or a serial URL such as
``/dev/ttyUSB0?baudrate=9600`` (9600 8N1) or ``socket://127.0.0.1:PORT`` (simulator).

Pump wire choices (docs/devices.md §2):

* requests end with LF CR (``\\n\\r``), the form flowchem uses against real pumps over LAN;
  replies are read up to CR and stripped, so a CR LF ending works too;
* flow is sent as an integer in µl/min (1 µl/min resolution; flowchem issue #3: a
  non-integer flow did nothing), and ``set_flow_rate`` returns the value read back;
* ``PRESSURE?`` is in 0.1 MPa = 1 bar: the raw number *is* bar (flowchem reads it 10x low);
* a latched PMAX/PMIN trip is detected by ``ERRORS?`` changing from the baseline read at
  connect (the codes themselves are undocumented) and raised as ``DeviceFault``.
"""

from __future__ import annotations

import logging
import re

from robochem.drivers.base import Pump, PumpState, PumpStatus, Valve
from robochem.drivers.errors import (
    DeviceError,
    DeviceFault,
    GarbledReply,
    SetpointRejected,
    check_range,
)
from robochem.drivers.transport import ByteTransport, open_byte_transport, terminated_by

log = logging.getLogger(__name__)

#: Per head (ml): (max flow µl/min, max pressure bar), from the manual / flowchem.
HEAD_LIMITS = {10: (10000, 400), 50: (50000, 150)}
PUMP_EOL = b"\n\r"
VALVE_EOL = b"\r\n"
_REPLY_END = terminated_by(b"\r")
_INT_RE = re.compile(r"^-?\d+(\.0*)?$")


class KnauerError(DeviceFault):
    """The pump answered ``ERROR:n`` (1: invalid message, 2: setpoint refused)."""


class KnauerAzuraPump(Pump):
    """AZURA P 4.1S (with pressure sensor) or P 2.1S (without)."""

    driver_name = "knauer-azura"

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 2.0,
        head_ml: int | None = None,
        model: str = "P4.1S",
        max_pressure_bar: int | None = None,
        min_pressure_bar: int | None = None,
    ) -> None:
        super().__init__(name)
        if head_ml not in (None, 10, 50):
            raise ValueError(f"head_ml must be 10 or 50 (or None to read it), got {head_ml!r}")
        if model not in ("P4.1S", "P2.1S"):
            raise ValueError(f"model must be 'P4.1S' or 'P2.1S', got {model!r}")
        self.url = url
        self.model = model
        self.head_ml: int | None = head_ml
        self._configured_head = head_ml
        self._pmax_init = max_pressure_bar
        self._pmin_init = min_pressure_bar
        self.transport: ByteTransport = open_byte_transport(
            url, name=self.name, timeout_s=timeout_s
        )
        self._running = False
        self._error_baseline: tuple[int, ...] | None = None

    # -- wire ------------------------------------------------------------------
    async def _send(self, command: str, *, retries: int = 0) -> str:
        raw = await self.transport.exchange(
            command.encode("ascii") + PUMP_EOL, _REPLY_END, retries=retries
        )
        try:
            reply = raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise GarbledReply(f"non-ASCII reply {raw!r} to {command!r}", device=self.name) from exc
        if reply.startswith("ERROR:"):
            code = reply[6:]
            meaning = {"1": "invalid message", "2": "setpoint refused"}.get(code, "unknown error")
            raise KnauerError(
                f"{command!r} answered {reply} ({meaning})", device=self.name, code=code
            )
        return reply

    async def _query(self, command: str) -> str:
        """``CMD?`` -> the text after the last ``:`` of ``CMD:value``."""
        reply = await self._send(f"{command}?", retries=1)
        head, sep, value = reply.rpartition(":")
        if not sep or head.split(":")[0] != command:
            raise GarbledReply(f"{command}? answered {reply!r}", device=self.name)
        return value.strip()

    async def _query_int(self, command: str) -> int:
        value = await self._query(command)
        if not _INT_RE.match(value):
            raise GarbledReply(f"{command}? answered non-integer {value!r}", device=self.name)
        return int(float(value))

    async def _set(self, command: str, value: int | None = None) -> None:
        text = command if value is None else f"{command}:{value}"
        reply = await self._send(text)
        # Sets answer "<CMD>:OK"; bare commands' replies are unverified, "OK" alone accepted.
        if reply not in (f"{command}:OK", "OK"):
            raise GarbledReply(
                f"{text!r} answered {reply!r}, expected {command}:OK", device=self.name
            )

    # -- lifecycle -------------------------------------------------------------
    async def _initialise(self) -> None:
        """HEADTYPE? -> REMOTE -> OFF (-> PMAX/PMIN), then record the error baseline."""
        head = await self._query_int("HEADTYPE")
        if head not in HEAD_LIMITS:
            raise GarbledReply(f"HEADTYPE? answered {head}", device=self.name)
        if self._configured_head is not None and head != self._configured_head:
            raise DeviceFault(
                f"configured for a {self._configured_head} ml head but the pump reports {head} ml",
                device=self.name,
                code="head-mismatch",
            )
        self.head_ml = head
        await self._set("REMOTE")
        await self.stop()
        if self._pmax_init is not None:
            await self.set_max_pressure(self._pmax_init)
        if self._pmin_init is not None:
            await self.set_min_pressure(self._pmin_init)
        self._error_baseline = await self.read_errors()

    async def disconnect(self) -> None:
        await self.transport.close()

    async def _probe(self) -> None:
        await self._query("HEADTYPE")

    # -- limits ----------------------------------------------------------------
    def _head(self) -> int:
        if self.head_ml is None:
            raise DeviceError("not connected: pump head unknown", device=self.name)
        return self.head_ml

    @property
    def max_flow_ml_min(self) -> float:
        return HEAD_LIMITS[self._head()][0] / 1000.0

    @property
    def max_pressure_limit_bar(self) -> int:
        return HEAD_LIMITS[self._head()][1]

    # -- flow ------------------------------------------------------------------
    async def set_flow_rate(self, ml_min: float) -> float:
        """Set the flow; sent as integer µl/min (1 µl/min resolution). Returns mL/min set."""
        check_range(self.name, "flow rate", ml_min, 0.0, self.max_flow_ml_min, "mL/min")
        await self._set("FLOW", round(ml_min * 1000))
        return await self.get_flow_rate()

    async def get_flow_rate(self) -> float:
        return await self._query_int("FLOW") / 1000.0

    async def start(self) -> None:
        await self._set("ON")
        self._running = True

    async def stop(self) -> None:
        """Stop the flow. Also acknowledges a latched pressure trip on the pump."""
        await self._set("OFF")
        self._running = False

    async def emergency_stop(self) -> None:
        await self.stop()

    # -- pressure --------------------------------------------------------------
    async def get_pressure(self) -> float | None:
        """Pressure in bar (raw unit 0.1 MPa = 1 bar); None on a P 2.1S (no sensor)."""
        if self.model == "P2.1S":
            return None
        return float(await self._query_int("PRESSURE"))

    def _pressure_command(self, kind: str) -> str:
        return f"{kind}{self._head()}"

    async def set_max_pressure(self, bar: float) -> int:
        """PMAX for the fitted head, whole bar; the pump stops at once above it."""
        check_range(self.name, "maximum pressure", bar, 0, self.max_pressure_limit_bar, "bar")
        await self._set(self._pressure_command("PMAX"), round(bar))
        return await self.get_max_pressure()

    async def get_max_pressure(self) -> int:
        return await self._query_int(self._pressure_command("PMAX"))

    async def set_min_pressure(self, bar: float) -> int:
        """PMIN for the fitted head, whole bar; 0 disables. Below it for 30 s stops the pump."""
        check_range(self.name, "minimum pressure", bar, 0, self.max_pressure_limit_bar, "bar")
        await self._set(self._pressure_command("PMIN"), round(bar))
        return await self.get_min_pressure()

    async def get_min_pressure(self) -> int:
        return await self._query_int(self._pressure_command("PMIN"))

    # -- status ----------------------------------------------------------------
    async def read_errors(self) -> tuple[int, ...]:
        """The last five error codes from ``ERRORS?`` (their meanings are undocumented)."""
        value = await self._query("ERRORS")
        try:
            return tuple(int(c) for c in value.split(","))
        except ValueError as exc:
            raise GarbledReply(f"ERRORS? answered {value!r}", device=self.name) from exc

    async def clear_fault(self) -> None:
        """Acknowledge a latched trip: OFF, then take the current error list as baseline."""
        await self.stop()
        self._error_baseline = await self.read_errors()

    async def status(self) -> PumpStatus:
        """Flow, pressure and state; a new entry in ``ERRORS?`` raises ``DeviceFault``."""
        errors = await self.read_errors()
        if self._error_baseline is not None and errors != self._error_baseline:
            self._running = False
            raise DeviceFault(
                f"pump reported error(s) {list(errors)} (was {list(self._error_baseline)}); "
                "pressure limit trip or drive fault: the pump has stopped; call clear_fault()",
                device=self.name,
                code=str(errors[0]),
            )
        flow = await self.get_flow_rate()
        pressure = await self.get_pressure()
        state = PumpState.RUNNING if self._running else PumpState.STOPPED
        return PumpStatus(state, flow_rate_ml_min=flow, pressure_bar=pressure)


# -- valve -----------------------------------------------------------------------
VALVE_ERRORS = {
    "E0": "valve refused to switch",
    "E1": "motor current too high",
    "E2": "switching took too long",
    "E3": "DIP switches 3/4 set wrong",
    "E4": "homing position not recognised",
    "E5": "DIP switches 1/2 set wrong",
    "E6": "memory error",
}
_VALVE_POSITIONS = {
    "LI": ("L", "I"),
    "6": tuple(str(i) for i in range(1, 7)),
    "12": tuple(str(i) for i in range(1, 13)),
    "16": tuple(str(i) for i in range(1, 17)),
}
_LI_ALIASES = {"L": "L", "LOAD": "L", "I": "I", "INJECT": "I", "INJECTION": "I"}


class KnauerValve(Valve):
    """AZURA V 2.1S valve drive. Positions are the numbers printed on the valve body:
    ``set_position(3)`` sends ``3`` and connects the common port to physical port 3."""

    driver_name = "knauer-valve"

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 5.0,
        valve_type: str | None = None,
    ) -> None:
        super().__init__(name)
        self.url = url
        self.valve_type: str | None = valve_type
        self._configured_type = valve_type
        self.transport: ByteTransport = open_byte_transport(
            url, name=self.name, timeout_s=timeout_s
        )

    async def _send(self, token: str, *, retries: int = 0) -> str:
        raw = await self.transport.exchange(
            token.encode("ascii") + VALVE_EOL, _REPLY_END, retries=retries
        )
        try:
            reply = raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise GarbledReply(f"non-ASCII reply {raw!r} to {token!r}", device=self.name) from exc
        if reply in VALVE_ERRORS:
            raise DeviceFault(
                f"{token!r} answered {reply}: {VALVE_ERRORS[reply]}", device=self.name, code=reply
            )
        return reply

    async def _initialise(self) -> None:
        """Check the drive's valve type; a valve is safe where it is, so nothing moves."""
        reply = await self._send("T", retries=1)
        kind = reply.removeprefix("VALVE").strip()
        if not reply.startswith("VALVE") or kind not in _VALVE_POSITIONS:
            raise GarbledReply(f"T answered {reply!r}, expected VALVE LI/6/12/16", device=self.name)
        if self._configured_type is not None and kind != self._configured_type:
            raise DeviceFault(
                f"configured as VALVE {self._configured_type} but the drive reports VALVE {kind}",
                device=self.name,
                code="type-mismatch",
            )
        self.valve_type = kind
        self.positions = _VALVE_POSITIONS[kind]
        await self.get_position()  # proves the drive answers; a valve is safe where it is

    async def disconnect(self) -> None:
        await self.transport.close()

    async def _probe(self) -> None:
        await self._send("T", retries=1)

    def _token(self, position: str | int) -> str:
        if not self.positions:
            raise DeviceError("not connected: valve type unknown", device=self.name)
        allowed = ", ".join(self.positions)
        if self.valve_type == "LI":
            token = (
                _LI_ALIASES.get(str(position).strip().upper())
                if isinstance(position, str)
                else None
            )
        else:
            text = str(position).strip()
            token = text if text in self.positions and not isinstance(position, bool) else None
        if token is None:
            raise SetpointRejected(
                device=self.name,
                quantity="valve position",
                value=position,
                unit="",
                allowed=allowed,
            )
        return token

    async def set_position(self, position: str | int) -> str:
        """Move to ``position`` (a printed port number, or L/I = load/inject) and read it back."""
        token = self._token(position)
        reply = await self._send(token)
        if reply == "?":
            # flowchem saw occasional "?" and retried once; moving to a position is idempotent.
            reply = await self._send(token)
            if reply == "?":
                raise DeviceFault(
                    f"valve did not accept position {token!r} ('?')", device=self.name, code="?"
                )
        actual = await self.get_position()
        if actual != token:
            raise DeviceFault(
                f"asked for position {token}, valve reports {actual}",
                device=self.name,
                code="position-mismatch",
            )
        return actual

    async def get_position(self) -> str:
        reply = await self._send("P", retries=1)
        if reply not in _VALVE_POSITIONS.get(self.valve_type or "", ()):
            raise GarbledReply(f"P answered {reply!r}", device=self.name)
        return reply

    async def emergency_stop(self) -> None:
        """A valve holds no energy: staying where it is is safe."""
