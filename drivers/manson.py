"""Manson HCS-3xxx laboratory power supply driving an LED (devices.md §9).

URL: the supply's USB virtual COM port, e.g. ``/dev/ttyUSB0`` (9600 8N1) or
``socket://host:port`` in tests. Commands are ASCII ending in ``\\r``; replies are
``\\r``-terminated lines, the last one ``OK``.

The LED runs current-controlled: the voltage is set once to ``led_voltage_v`` (above the
LED's forward voltage, acting as a compliance limit) and intensity maps linearly onto the
current between ``min_current_a`` (0 %) and ``max_current_a`` (100 %).

Unlike flowchem (which sends ``VOLT33.0`` for 3.3 V), set values are three zero-padded
integer digits; a value that needs finer resolution than the supply has is rejected.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from robochem.drivers.base import LampStatus, LightSource
from robochem.drivers.errors import DeviceFault, GarbledReply, SetpointRejected, check_range
from robochem.drivers.options import required_options
from robochem.drivers.transport import ByteTransport, ReplyFramer, open_byte_transport

log = logging.getLogger(__name__)

#: Models that program current in 0.01 A (x100); the others use 0.1 A (x10).
FINE_CURRENT_MODELS = frozenset({"HCS-3102", "HCS-3014", "HCS-3204", "HCS-3202"})


def _lines(count: int) -> ReplyFramer:
    """A framer for replies of exactly ``count`` CR-terminated lines."""

    def frame(buffer: bytes) -> int:
        end = 0
        for _ in range(count):
            i = buffer.find(b"\r", end)
            if i < 0:
                return 0
            end = i + 1
        return end

    return frame


@dataclass(frozen=True)
class MansonReading:
    voltage_v: float
    current_a: float
    constant_current: bool  # False: constant-voltage mode


class MansonLedSupply(LightSource):
    """``manson-hcs``: an LED on a Manson HCS-3xxx supply.

    Required options: ``led_voltage_v`` (compliance voltage) and ``max_current_a``
    (current at 100 %). Optional: ``min_current_a`` (current at 0 %, default 0),
    ``current_scale`` (10 or 100 counts per amp; default from the model reported by
    GMOD).
    """

    driver_name = "manson-hcs"
    required_options = required_options("manson-hcs")
    verified = False

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 1.0,
        led_voltage_v: float,
        max_current_a: float,
        min_current_a: float = 0.0,
        current_scale: int | None = None,
    ) -> None:
        super().__init__(name)
        if not 0 <= min_current_a < max_current_a:
            raise ValueError(
                f"need 0 <= min_current_a < max_current_a, got {min_current_a}, {max_current_a}"
            )
        if (
            not 0 < led_voltage_v <= 99.9
            or abs(round(led_voltage_v * 10) - led_voltage_v * 10) > 1e-6
        ):
            raise ValueError(
                f"led_voltage_v must be 0.1..99.9 V in 0.1 V steps, got {led_voltage_v}"
            )
        if current_scale not in (None, 10, 100):
            raise ValueError("current_scale must be 10 or 100 counts per amp")
        self.url = url
        self.led_voltage_v = led_voltage_v
        self.min_current_a = min_current_a
        self.max_current_a = max_current_a
        self.current_scale = current_scale
        self.transport: ByteTransport = open_byte_transport(
            url, name=self.name, timeout_s=timeout_s
        )
        self.model = ""
        self.max_voltage_v: float | None = None
        self.max_supply_current_a: float | None = None
        self._output_on = False
        self._set_current_a = min_current_a

    # -- wire ---------------------------------------------------------------------
    async def _command(self, command: str) -> None:
        """A set command: the reply is a single ``OK`` line."""
        reply = await self.transport.exchange(command.encode("ascii") + b"\r", _lines(1))
        if reply != b"OK\r":
            raise DeviceFault(
                f"{command} not acknowledged (got {reply!r})", device=self.name, code="no-ok"
            )

    async def _query(self, command: str, pattern: str) -> str:
        """A query: one data line matching ``pattern``, then ``OK``."""
        reply = await self.transport.exchange(command.encode("ascii") + b"\r", _lines(2), retries=1)
        data, ok = reply.split(b"\r")[:2]
        try:
            text = data.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise GarbledReply(f"{command}: non-ASCII reply {reply!r}", device=self.name) from exc
        if ok != b"OK":
            if re.fullmatch(pattern, text):
                raise DeviceFault(
                    f"{command} not acknowledged (got {reply!r})", device=self.name, code="no-ok"
                )
            raise GarbledReply(f"{command}: unexpected reply {reply!r}", device=self.name)
        if not re.fullmatch(pattern, text):
            raise GarbledReply(f"{command}: unexpected reply {reply!r}", device=self.name)
        return text

    # -- link ---------------------------------------------------------------------
    async def _initialise(self) -> None:
        model = await self._query("GMOD", r"[A-Za-z0-9-]+")
        self.model = model if model.upper().startswith("HCS") else f"HCS-{model}"
        if self.current_scale is None:
            self.current_scale = 100 if self.model in FINE_CURRENT_MODELS else 10
        limits = await self._query("GMAX", r"\d{6}")
        self.max_voltage_v = int(limits[:3]) / 10
        self.max_supply_current_a = int(limits[3:]) / self.current_scale
        if self.max_current_a > self.max_supply_current_a:
            raise SetpointRejected(
                device=self.name,
                quantity="max_current_a",
                value=self.max_current_a,
                unit="A",
                allowed=f"0..{self.max_supply_current_a} (this {self.model})",
            )
        # Safe state first: output OFF (SOUT1, the inverted logic), then the LED settings.
        await self.light_off()
        await self.set_voltage(self.led_voltage_v)
        await self.set_current(self.min_current_a)

    async def disconnect(self) -> None:
        await self.transport.close()

    async def _probe(self) -> None:
        await self._query("GMOD", r"[A-Za-z0-9-]+")

    # -- supply -------------------------------------------------------------------
    async def set_voltage(self, volts: float) -> float:
        """Set the voltage (0.1 V steps, up to the model's maximum)."""
        high = self.max_voltage_v if self.max_voltage_v is not None else 99.9
        counts = self._counts("voltage", volts, 10, high, "V")
        await self._command(f"VOLT{counts:03d}")
        return counts / 10

    async def set_current(self, amps: float) -> float:
        """Set the current limit (0.1 A or 0.01 A steps depending on the model)."""
        scale = self._scale()
        high = self.max_supply_current_a if self.max_supply_current_a is not None else 999 / scale
        counts = self._counts("current", amps, scale, high, "A")
        await self._command(f"CURR{counts:03d}")
        self._set_current_a = counts / scale
        return counts / scale

    async def read_output(self) -> MansonReading:
        """GETD: the actual voltage, current and regulation mode."""
        text = await self._query("GETD", r"\d{8}[01]")
        return MansonReading(int(text[:4]) / 100, int(text[4:8]) / 100, text[8] == "1")

    async def get_settings(self) -> tuple[float, float]:
        """GETS: the (voltage, current) setpoints."""
        text = await self._query("GETS", r"\d{6}")
        return int(text[:3]) / 10, int(text[3:]) / self._scale()

    # -- light --------------------------------------------------------------------
    async def set_intensity(self, percent: float) -> float:
        """Map 0-100 % onto min..max current, rounded to the supply's current step;
        returns the percentage that step corresponds to."""
        check_range(self.name, "intensity", percent, 0.0, 100.0, "%")
        span = self.max_current_a - self.min_current_a
        scale = self._scale()
        counts = round((self.min_current_a + span * percent / 100) * scale)
        amps = await self.set_current(counts / scale)
        return round((amps - self.min_current_a) / span * 100, 3)

    async def get_intensity(self) -> float:
        """Measured intensity from the GETD current; 0 at or below ``min_current_a``."""
        reading = await self.read_output()
        return self._percent(reading.current_a)

    async def light_on(self) -> None:
        await self._command("SOUT0")  # SOUT0 = output ON (inverted logic)
        self._output_on = True

    async def light_off(self) -> None:
        await self._command("SOUT1")  # SOUT1 = output OFF
        self._output_on = False

    async def lamp_status(self) -> LampStatus:
        """Output state and measured intensity. With the output on, a supply stuck in
        constant voltage with (almost) no current means the LED string is open."""
        reading = await self.read_output()
        faults: tuple[str, ...] = ()
        if (
            self._output_on
            and self._set_current_a > 0
            and not reading.constant_current
            and reading.current_a < 0.5 * self._set_current_a
        ):
            faults = ("led_open_circuit",)
        return LampStatus(
            enabled=self._output_on,
            intensity_percent=self._percent(reading.current_a),
            faults=faults,
        )

    # -- helpers ------------------------------------------------------------------
    def _scale(self) -> int:
        return self.current_scale or 10

    def _percent(self, amps: float) -> float:
        if amps <= self.min_current_a:
            return 0.0
        span = self.max_current_a - self.min_current_a
        return round((amps - self.min_current_a) / span * 100, 3)

    def _counts(self, quantity: str, value: float, scale: int, high: float, unit: str) -> int:
        check_range(self.name, quantity, value, 0.0, high, unit)
        counts = round(value * scale)
        if abs(counts - value * scale) > 1e-6 or counts > 999:
            raise SetpointRejected(
                device=self.name,
                quantity=quantity,
                value=value,
                unit=unit,
                allowed=f"0..{high} in steps of {1 / scale:g} {unit}",
            )
        return counts
