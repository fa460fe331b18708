"""LED light source on robochem's own Modbus register map (devices.md §8), and the
photoreactor box that also carries an Omron-compatible temperature block on the same unit.

URL forms as for every Modbus device: ``modbus+rtu:///dev/ttyUSB0?baudrate=9600&unit=1``,
``modbus+rtu+socket://host:port?unit=1``, ``modbus+tcp://host:port?unit=1``.

While the light is on, the driver writes HEARTBEAT every second (a third of
WATCHDOG_TIMEOUT when that is shorter); if the host dies, the device switches the LED off
by itself. Both count wall seconds: the device's firmware counts real time, whatever the
speed of a simulated clock.
"""

from __future__ import annotations

import asyncio
import logging

from robochem.clock import Clock, get_clock
from robochem.drivers.base import LampStatus, LightSource, Photoreactor
from robochem.drivers.errors import (
    LINK_ERRORS,
    CommunicationError,
    DeviceError,
    DeviceFault,
    check_range,
)
from robochem.drivers.omron import OmronE5CC
from robochem.drivers.transport import ModbusError, ModbusTransport

log = logging.getLogger(__name__)

LED_ENABLE = 0x3000
LED_SETPOINT = 0x3001  # 0..1000 = 0.0..100.0 %
LED_ACTUAL = 0x3002
WAVELENGTH = 0x3003
LED_CURRENT = 0x3004
FAN = 0x3005
STATUS = 0x3006
HEATSINK_TEMP = 0x3007
WATCHDOG_TIMEOUT = 0x3008
HEARTBEAT = 0x3009
PHOTON_FLUX = 0x3010  # uint32, high word first, µmol/s x 1000

STATUS_BITS = {
    0: "door_open",
    1: "led_overtemperature",
    2: "led_fault",
    3: "watchdog_tripped",
}
#: Latched faults: cleared by writing LED_ENABLE = 0 once the cause is gone.
LATCHED_BITS = (1, 2, 3)
#: Wall seconds without a heartbeat after which the device switches the LED off.
DEFAULT_WATCHDOG_S = 5
#: Longest wall time between heartbeats (shorter for a watchdog under 3 s).
HEARTBEAT_PERIOD_S = 1.0


def _signed(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class ModbusLedSource(LightSource):
    """``modbus-led``: intensity 0.0-100.0 % in 0.1 % steps, read-back, faults, photon flux.

    Options: ``watchdog_s`` (wall seconds 1..600, 0 disables the device watchdog and the
    heartbeat; default 5); ``wavelength_nm`` (expected peak wavelength: connect fails if the
    fitted module differs by more than ``wavelength_tolerance_nm``); ``transport`` (a shared
    ``ModbusTransport``); ``clock`` (the shared clock by default; the heartbeat does not use
    it: the watchdog counts real seconds).
    """

    driver_name = "modbus-led"
    verified = False

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 1.0,
        watchdog_s: int = DEFAULT_WATCHDOG_S,
        wavelength_nm: float | None = None,
        wavelength_tolerance_nm: float = 5.0,
        transport: ModbusTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name)
        if not isinstance(watchdog_s, int) or not 0 <= watchdog_s <= 600:
            raise ValueError(f"watchdog_s must be an integer 0..600 s, got {watchdog_s!r}")
        self.url = url
        self.watchdog_s = watchdog_s
        self.wavelength_nm = wavelength_nm
        self.wavelength_tolerance_nm = wavelength_tolerance_nm
        self.transport = transport or ModbusTransport(url, name=self.name, timeout_s=timeout_s)
        self._clock = clock
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._heartbeat_count = 0
        #: Set when a heartbeat write failed; the device watchdog will act on its own.
        self.heartbeat_error: DeviceError | None = None

    @property
    def clock(self) -> Clock:
        return self._clock or get_clock()

    # -- link ---------------------------------------------------------------------
    async def _initialise(self) -> None:
        # Safe state: light off (which also clears latched faults whose cause is gone).
        await self.transport.write_register(LED_ENABLE, 0)
        if self.wavelength_nm is not None:
            (nm,) = await self.transport.read_registers(WAVELENGTH, 1)
            if abs(nm - self.wavelength_nm) > self.wavelength_tolerance_nm:
                raise DeviceFault(
                    f"LED module is {nm} nm, expected {self.wavelength_nm} nm",
                    device=self.name,
                    code="wrong-wavelength",
                )

    async def disconnect(self) -> None:
        await self._stop_heartbeat()
        await self.transport.close()

    async def _probe(self) -> None:
        await self.transport.read_registers(STATUS, 1, retries=0)

    # -- light --------------------------------------------------------------------
    async def set_intensity(self, percent: float) -> float:
        """Set the output (0.0-100.0 %, rounded to the 0.1 % step); returns the value set."""
        check_range(self.name, "intensity", percent, 0.0, 100.0, "%")
        raw = round(percent * 10)
        await self.transport.write_register(LED_SETPOINT, raw)
        return raw / 10

    async def get_intensity(self) -> float:
        """The measured output (LED_ACTUAL) in percent; 0 while off or faulted."""
        (raw,) = await self.transport.read_registers(LED_ACTUAL, 1)
        return raw / 10

    async def get_setpoint(self) -> float:
        (raw,) = await self.transport.read_registers(LED_SETPOINT, 1)
        return raw / 10

    async def light_on(self) -> None:
        """Fan on, watchdog armed, LED on; DeviceFault naming the cause if refused."""
        await self.transport.write_register(FAN, 1)  # the device refuses the LED without it
        if self.watchdog_s:
            await self.transport.write_register(WATCHDOG_TIMEOUT, self.watchdog_s)
            await self._beat()
        try:
            await self.transport.write_register(LED_ENABLE, 1)
        except ModbusError as exc:
            if exc.exception_code != 4:
                raise
            raise DeviceFault(
                f"LED refused to switch on: {await self._refusal_cause()}",
                device=self.name,
                code="interlock",
            ) from exc
        if self.watchdog_s:
            self._start_heartbeat()

    async def light_off(self) -> None:
        try:
            await self.transport.write_register(LED_ENABLE, 0)
        finally:
            # Even if this write was lost, stopping the heartbeat lets the watchdog act.
            await self._stop_heartbeat()

    async def clear_faults(self) -> tuple[str, ...]:
        """Write LED_ENABLE = 0 (clears latched faults whose cause is gone); returns the
        faults still present."""
        await self.light_off()
        return (await self.lamp_status()).faults

    async def lamp_status(self) -> LampStatus:
        regs = await self.transport.read_registers(LED_ENABLE, 10)
        high, low = await self.transport.read_registers(PHOTON_FLUX, 2)
        return LampStatus(
            enabled=bool(regs[0]),
            intensity_percent=regs[LED_ACTUAL - LED_ENABLE] / 10,
            faults=self._fault_names(regs[STATUS - LED_ENABLE]),
            wavelength_nm=float(regs[WAVELENGTH - LED_ENABLE]),
            photon_flux_umol_s=((high << 16) | low) / 1000,
            heatsink_temperature_c=_signed(regs[HEATSINK_TEMP - LED_ENABLE]) / 10,
        )

    async def check_faults(self) -> None:
        """Raise DeviceFault if the device reports a fault (door, over-temperature, LED,
        watchdog) or if the heartbeat could not be delivered."""
        (status,) = await self.transport.read_registers(STATUS, 1)
        faults = self._fault_names(status)
        if faults:
            raise DeviceFault(
                f"light source fault: {', '.join(faults)}", device=self.name, code=faults[0]
            )
        if self.heartbeat_error is not None:
            raise DeviceFault(
                f"heartbeat failed: {self.heartbeat_error}", device=self.name, code="heartbeat"
            )

    async def get_photon_flux(self) -> float:
        """Calibrated photon flux at the present output, µmol/s."""
        high, low = await self.transport.read_registers(PHOTON_FLUX, 2)
        return ((high << 16) | low) / 1000

    async def get_wavelength(self) -> float:
        (nm,) = await self.transport.read_registers(WAVELENGTH, 1)
        return float(nm)

    # -- helpers ------------------------------------------------------------------
    @staticmethod
    def _fault_names(status: int) -> tuple[str, ...]:
        return tuple(name for bit, name in STATUS_BITS.items() if status & (1 << bit))

    async def _refusal_cause(self) -> str:
        try:
            regs = await self.transport.read_registers(LED_ENABLE, 10)
        except DeviceError as exc:
            return f"unknown (status unreadable: {exc})"
        causes = list(self._fault_names(regs[STATUS - LED_ENABLE]))
        if not regs[FAN - LED_ENABLE]:
            causes.append("fan_off")
        latched = [STATUS_BITS[b] for b in LATCHED_BITS if regs[STATUS - LED_ENABLE] & (1 << b)]
        text = ", ".join(causes) or "interlock (no status bit set)"
        if latched:
            text += "; latched faults clear with light_off() once their cause is gone"
        return text

    async def _beat(self) -> None:
        self._heartbeat_count = (self._heartbeat_count + 1) & 0xFFFF
        await self.transport.write_register(HEARTBEAT, self._heartbeat_count)

    def _start_heartbeat(self) -> None:
        if self._heartbeat_task is None or self._heartbeat_task.done():
            self.heartbeat_error = None
            self._heartbeat_task = asyncio.get_running_loop().create_task(
                self._heartbeat_loop(), name=f"{self.name}-heartbeat"
            )

    async def _stop_heartbeat(self) -> None:
        task, self._heartbeat_task = self._heartbeat_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass  # what cancel() asked for
            except LINK_ERRORS as exc:  # the loop logs its own; this is a last word
                log.warning("%s: heartbeat ended with %r", self.name, exc)

    async def _heartbeat_loop(self) -> None:
        # Wall seconds, not the simulated clock: at x1000 a simulated pace would hammer the
        # bus, and the device's window is real time anyway.
        period = min(HEARTBEAT_PERIOD_S, self.watchdog_s / 3)
        while True:
            await asyncio.sleep(period)
            try:
                await self._beat()
            except CommunicationError as exc:
                # Keep trying: if the link is gone for good the device switches off itself.
                self.heartbeat_error = exc
                log.warning("%s: heartbeat failed: %s", self.name, exc)
            except DeviceError as exc:
                self.heartbeat_error = exc
                log.error("%s: heartbeat refused: %s", self.name, exc)


class ModbusPhotoreactor(Photoreactor):
    """``modbus-photoreactor``: the LED map and the Omron-compatible temperature block
    of one box, on ONE shared Modbus connection.

    Options go to the parts: ``watchdog_s``, ``wavelength_nm``, ``clock`` to the light;
    ``sp_range_c``, ``stop_on_connect`` to the temperature controller.
    """

    driver_name = "modbus-photoreactor"
    verified = False

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 1.0,
        watchdog_s: int = DEFAULT_WATCHDOG_S,
        wavelength_nm: float | None = None,
        sp_range_c: tuple[float, float] = (-20.0, 150.0),
        stop_on_connect: bool = True,
        clock: Clock | None = None,
    ) -> None:
        name = name or self.driver_name
        self.url = url
        self.transport = ModbusTransport(url, name=name, timeout_s=timeout_s)
        light = ModbusLedSource(
            url,
            name=f"{name}.light",
            watchdog_s=watchdog_s,
            wavelength_nm=wavelength_nm,
            transport=self.transport,
            clock=clock,
        )
        temperature = OmronE5CC(
            url,
            name=f"{name}.temperature",
            sp_range_c=sp_range_c,
            stop_on_connect=stop_on_connect,
            transport=self.transport,
        )
        super().__init__(light, temperature, name=name)
        self.light: ModbusLedSource = light
        self.temperature: OmronE5CC = temperature
