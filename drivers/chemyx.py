"""Chemyx Fusion 100 / 200 / 4000 syringe pumps (RS-232 or USB serial).

URL: ``/dev/ttyUSB0?baudrate=38400`` (or 9600, as chosen in the pump menu; 8N1), or
``socket://127.0.0.1:PORT`` for the simulator.

Wire choices (docs/devices.md §5):

* commands are lower case and end with CR LF;
* a reply is two CR LF lines, the echoed command then the result (RoboChem v1 read the data
  from line 1) [unverified framing];
* set commands echo the value the pump now holds; a different value means the one sent was
  out of limits: the driver compares and raises ``EchoMismatch`` (it also checks the limits
  from ``read limit parameter`` before sending, so this only fires when the pump disagrees);
* units are fixed to mL/min (``set units 0``) at connect, so rates are mL/min, volumes mL;
* runs are closed-loop: ``dispense()`` polls ``pump status`` until it reads 0 (stopped)
  instead of sleeping for an estimated time, then checks ``dispensed volume``.
"""

from __future__ import annotations

import logging
import math
import re

from robochem.clock import Clock, get_clock
from robochem.drivers.base import PumpState, PumpStatus, SyringePump
from robochem.drivers.errors import (
    DeviceError,
    DeviceFault,
    GarbledReply,
    SetpointRejected,
    check_range,
)
from robochem.drivers.options import required_options
from robochem.drivers.transport import ByteTransport, open_byte_transport

log = logging.getLogger(__name__)

DIAMETER_RANGE_MM = (0.103, 40.0)
STATUS_CODES = {
    0: PumpState.STOPPED,
    1: PumpState.RUNNING,
    2: PumpState.PAUSED,
    3: PumpState.RUNNING,  # delayed: counting down the start delay
    4: PumpState.STALLED,
}
_NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_ASSIGN = re.compile(rf"^(\w+)\s*=\s*({_NUMBER})$")
_VOLUME = re.compile(rf"=\s*({_NUMBER})\s*(ml|ul|µl)?$", re.IGNORECASE)


class EchoMismatch(DeviceFault):
    """The pump echoed a different value than the one sent: it was out of the pump's limits."""


def _two_lines(buffer: bytes) -> int:
    first = buffer.find(b"\r\n")
    if first < 0:
        return 0
    second = buffer.find(b"\r\n", first + 2)
    return second + 2 if second >= 0 else 0


def _fmt(value: float) -> str:
    return f"{value:.6g}"


class ChemyxFusionPump(SyringePump):
    driver_name = "chemyx-fusion"
    required_options = required_options("chemyx-fusion")

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 1.0,
        diameter_mm: float | None = None,
        syringe_volume_ml: float | None = None,
        poll_interval_s: float = 0.5,
        volume_tolerance_ml: float = 0.005,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name)
        self.url = url
        self.diameter_mm = diameter_mm
        self.syringe_volume_ml = syringe_volume_ml
        self.poll_interval_s = poll_interval_s
        self.volume_tolerance_ml = volume_tolerance_ml
        self._clock = clock
        self.transport: ByteTransport = open_byte_transport(
            url, name=self.name, timeout_s=timeout_s
        )
        self.limits: dict[str, float] | None = None
        self.target_ml: float | None = None
        self._rate_ml_min: float | None = None

    @property
    def clock(self) -> Clock:
        """The clock ``dispense()`` polls on: the one given, else the shared clock."""
        return self._clock or get_clock()

    # -- wire ----------------------------------------------------------------------
    async def command(self, command: str, *, retries: int = 0) -> str:
        """Send ``command``; check the echo; return the result line."""
        raw = await self.transport.exchange(
            command.encode("ascii") + b"\r\n", _two_lines, retries=retries
        )
        try:
            echo, result = raw.decode("ascii").split("\r\n")[:2]
        except (UnicodeDecodeError, ValueError) as exc:
            raise GarbledReply(f"reply {raw!r} to {command!r}", device=self.name) from exc
        if echo.strip() != command:
            raise GarbledReply(f"echo {echo!r} does not match {command!r}", device=self.name)
        result = result.strip()
        lowered = result.lower()
        if "invalid" in lowered or "error" in lowered or lowered == "pump is running":
            raise DeviceFault(f"{command!r} answered {result!r}", device=self.name, code="rejected")
        return result

    async def _set_value(self, parameter: str, value: float, text: str | None = None) -> float:
        """``set <parameter> <text>``; raise EchoMismatch unless the echo equals ``value``."""
        sent = text or _fmt(value)
        result = await self.command(f"set {parameter} {sent}")
        m = _ASSIGN.match(result)
        if not m or m.group(1) != parameter:
            raise GarbledReply(f"set {parameter} answered {result!r}", device=self.name)
        echoed = float(m.group(2))
        if not math.isclose(echoed, float(sent), rel_tol=1e-5, abs_tol=1e-9):
            raise EchoMismatch(
                f"set {parameter} {sent} echoed {m.group(2)}: out of the pump's limits; "
                f"the pump now holds {parameter} = {m.group(2)}",
                device=self.name,
                code="echo-mismatch",
            )
        return echoed

    # -- lifecycle -------------------------------------------------------------------
    async def _initialise(self) -> None:
        """Stop, fix units to mL/min, apply the syringe, read the limits."""
        await self.stop()
        await self._set_value("units", 0, "0")
        if self.diameter_mm is not None:
            await self.set_syringe(self.diameter_mm, self.syringe_volume_ml or 0.0)
        else:
            await self.read_limits()

    async def disconnect(self) -> None:
        await self.transport.close()

    async def _probe(self) -> None:
        await self.pump_status()

    # -- syringe and limits -------------------------------------------------------------
    async def read_limits(self) -> dict[str, float]:
        """``read limit parameter`` -> max/min rate (mL/min) and max/min volume (mL)."""
        result = await self.command("read limit parameter", retries=1)
        try:
            max_r, min_r, max_v, min_v = (float(x) for x in result.split())
        except ValueError:
            raise GarbledReply(
                f"read limit parameter answered {result!r}", device=self.name
            ) from None
        self.limits = {
            "max_rate": max_r,
            "min_rate": min_r,
            "max_volume": max_v,
            "min_volume": min_v,
        }
        return self.limits

    async def set_syringe(self, diameter_mm: float, volume_ml: float) -> None:
        """Diameter in mm (3 decimals); ``volume_ml`` caps target volumes (0: no cap)."""
        check_range(self.name, "syringe diameter", diameter_mm, *DIAMETER_RANGE_MM, "mm")
        check_range(self.name, "syringe volume", volume_ml, 0.0, 1000.0, "mL")
        self.diameter_mm = await self._set_value(
            "diameter", round(diameter_mm, 3), f"{diameter_mm:.3f}"
        )
        self.syringe_volume_ml = volume_ml or None
        await self.read_limits()

    async def _limits(self) -> dict[str, float]:
        return self.limits if self.limits is not None else await self.read_limits()

    # -- rate ----------------------------------------------------------------------------
    async def set_flow_rate(self, ml_min: float) -> float:
        limits = await self._limits()
        check_range(
            self.name, "flow rate", ml_min, limits["min_rate"], limits["max_rate"], "mL/min"
        )
        self._rate_ml_min = await self._set_value("rate", ml_min)
        return self._rate_ml_min

    async def get_flow_rate(self) -> float:
        """The rate last confirmed by the pump's echo (the protocol has no rate query)."""
        if self._rate_ml_min is None:
            raise DeviceError("flow rate not set since connect", device=self.name)
        return self._rate_ml_min

    # -- volume and motion --------------------------------------------------------------
    async def set_target_volume(self, ml: float | None) -> None:
        """Volume the next infuse/withdraw delivers; None: the whole syringe."""
        if ml is not None:
            await self._check_volume(ml)
        self.target_ml = ml

    async def _check_volume(self, ml: float) -> float:
        limits = await self._limits()
        high = limits["max_volume"]
        if self.syringe_volume_ml is not None:
            high = min(high, self.syringe_volume_ml)
        return check_range(self.name, "volume", ml, limits["min_volume"], high, "mL")

    async def _run(self, sign: float) -> None:
        volume = self.target_ml if self.target_ml is not None else self.syringe_volume_ml
        if volume is None:
            raise SetpointRejected(
                device=self.name,
                quantity="volume",
                value=None,
                unit="mL",
                allowed="set a target volume or the syringe volume first",
            )
        await self._check_volume(volume)
        await self._set_value("volume", sign * volume)
        result = await self.command("start")
        if not result.startswith(("Pump start", "Pump delay")):
            raise DeviceFault(f"start answered {result!r}", device=self.name, code="not-started")

    async def infuse(self) -> None:
        await self._run(+1.0)

    async def withdraw(self) -> None:
        await self._run(-1.0)

    async def stop(self) -> None:
        result = await self.command("stop")
        if not result.startswith("Pump stop"):
            raise GarbledReply(f"stop answered {result!r}", device=self.name)

    async def pause(self) -> None:
        result = await self.command("pause")
        if not result.startswith("Pump pause"):
            raise GarbledReply(f"pause answered {result!r}", device=self.name)

    async def pump_status(self) -> int:
        result = await self.command("pump status", retries=1)
        if not result.isdigit() or int(result) not in STATUS_CODES:
            raise GarbledReply(f"pump status answered {result!r}", device=self.name)
        return int(result)

    async def status(self) -> PumpStatus:
        """Run state from ``pump status``; a stall (4) raises DeviceFault."""
        code = await self.pump_status()
        if code == 4:
            raise DeviceFault("pump stalled (pump status 4)", device=self.name, code="stall")
        detail = "delayed" if code == 3 else ""
        return PumpStatus(STATUS_CODES[code], flow_rate_ml_min=self._rate_ml_min, detail=detail)

    async def get_dispensed_volume(self) -> float:
        """Volume moved in the current (or last) run, in mL."""
        result = await self.command("dispensed volume", retries=1)
        m = _VOLUME.search(result)
        if not m:
            raise GarbledReply(f"dispensed volume answered {result!r}", device=self.name)
        unit = (m.group(2) or "ml").lower()
        return float(m.group(1)) * (1.0 if unit == "ml" else 1e-3)

    async def dispense(
        self, ml: float, ml_min: float, *, withdraw: bool = False, timeout_s: float | None = None
    ) -> float:
        """Deliver ``ml`` at ``ml_min`` and wait for the pump to finish (closed loop).

        Polls ``pump status`` every ``poll_interval_s`` simulated seconds until it reads 0,
        within ``timeout_s`` (default: twice the nominal time + 30 s), then checks the
        dispensed volume against ``ml`` within ``volume_tolerance_ml``. Returns it in mL.
        """
        await self.set_flow_rate(ml_min)
        await self.set_target_volume(ml)
        await (self.withdraw() if withdraw else self.infuse())
        clock = self.clock
        limit = timeout_s if timeout_s is not None else 2 * 60 * ml / ml_min + 30
        deadline = clock.now() + limit
        while True:
            await clock.sleep(self.poll_interval_s)
            status = await self.status()  # raises on stall
            if status.state is PumpState.STOPPED:
                break
            if clock.now() > deadline:
                await self.stop()
                raise DeviceFault(
                    f"run of {ml} mL at {ml_min} mL/min not finished after "
                    f"{limit:g} s; pump stopped",
                    device=self.name,
                    code="run-timeout",
                )
        done = await self.get_dispensed_volume()
        if abs(done - ml) > self.volume_tolerance_ml:
            raise DeviceFault(
                f"dispensed {done} mL of {ml} mL", device=self.name, code="short-delivery"
            )
        return done
