"""Simulated photoreactor box on Modbus: an Omron E5CC-compatible temperature block and
robochem's LED register map (devices.md §7, §8), both on one unit id.

One pymodbus ``ModbusTcpServer`` (current ``SimData``/``SimDevice`` API, physics in the
``action`` hook) serves the registers; a ``ModbusFaultProxy`` in front of it frames the
traffic, records ``received`` and injects link faults. By default the proxy speaks RTU
framing over TCP (drivers use ``modbus+rtu+socket://``); ``modbus_tcp=True`` serves plain
Modbus TCP (``modbus+tcp://``).

State evolves lazily on the shared clock: every request (and every read of a public
property) first integrates the physics up to ``clock.now()``. The LED watchdog is the one
exception: like a device's firmware it counts wall seconds (``wall``, default
``time.monotonic``), whatever the simulation speed, and fires at the simulated instant
that corresponds to its wall-time deadline. Everything a virtual lab
needs is a plain attribute: ``ambient_c``, ``extra_heat_w``, ``heat_sources`` (callables
of simulated time returning watts), ``led_output_percent``, ``photon_flux_umol_s``...

This module is written from the reference alone; it shares no code with the drivers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from robochem.clock import Clock, get_clock
from robochem.simulator.base import FaultInjector
from robochem.simulator.proxy import ModbusFaultProxy

# Omron status bits (32-bit word, devices.md §7).
ST_AD_ERROR = 2
ST_INPUT_ERROR = 6
ST_POTENTIOMETER_ERROR = 7
ST_OUT_HEAT = 8
ST_OUT_COOL = 9
ST_ALARM1 = 12  # alarms 1..3 are bits 12..14
ST_PROGRAM_END = 15
ST_WRITE_MODE_RAM = 20
ST_NV_DIFFERS = 21
ST_SETUP_AREA1 = 22
ST_AT_RUNNING = 23
ST_STOP = 24
ST_COMM_WRITING = 25
ST_MANUAL = 26
ST_PROGRAM_START = 27

# LED STATUS bits (devices.md §8).
LED_DOOR = 0
LED_OVERTEMP = 1
LED_FAULT = 2
LED_WATCHDOG = 3

#: PV register value while the sensor input is in error (an obviously impossible reading).
PV_INPUT_ERROR = 0x7FFF

# Valid info bytes per operation command code.
_OP_INFO: dict[int, set[int]] = {
    0x00: {0, 1},
    0x01: {0, 1},
    0x02: set(range(8)),
    0x03: {0, 1, 2},
    0x04: {0, 1},
    0x05: {0},
    0x06: {0},
    0x07: {0},
    0x08: {0},
    0x09: {0, 1},
    0x0B: {0},
    0x0C: {0, 1, 2, 3, 4, 5, 0x0F},
    0x0D: {0, 1},
    0x0E: {0, 1},
    0x11: {0, 1},
}

# Four-byte-mode addresses of the setpoint/alarm block, each a 32-bit value (2 registers).
_FOUR_BYTE_SETTINGS = {
    0x0106: "sp",
    0x0108: "al1",
    0x010A: "al1_upper",
    0x010C: "al1_lower",
    0x010E: "al2",
    0x0110: "al2_upper",
    0x0112: "al2_lower",
}
_TWO_BYTE_SETTINGS = {
    0x2103: "sp",
    0x2104: "al1",
    0x2105: "al1_upper",
    0x2106: "al1_lower",
    0x2107: "al2",
    0x2108: "al2_upper",
    0x2109: "al2_lower",
}


def _signed16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def _u16(value: int) -> int:
    return value & 0xFFFF


class PhotoreactorSimulator:
    """LED photoreactor with temperature control, unit ``unit`` (default 1).

    Constructor state worth overriding: ``ambient_c`` (°C), ``wavelength_nm``,
    ``photon_flux_umol_s`` (calibrated flux at 100 % output), ``led_heat_w`` (heat the
    LED puts into the reactor at 100 %), ``setpoint_c`` and ``running`` (power-on state).
    """

    family = "photoreactor"

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        unit: int = 1,
        modbus_tcp: bool = False,
        ambient_c: float = 22.0,
        setpoint_c: float = 25.0,
        running: bool = True,
        wavelength_nm: int = 450,
        photon_flux_umol_s: float = 50.0,
        led_max_current_ma: int = 700,
        led_heat_w: float = 30.0,
        led_ramp_s: float = 0.5,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self.clock = clock or get_clock()
        self._wall = wall or time.monotonic  # what the watchdog counts: real seconds
        self.host = host
        self.port = port
        self.unit = unit
        self.modbus_tcp = modbus_tcp
        self.faults = FaultInjector()
        self.received: list[bytes] = []  # every request frame, CRC/MBAP included

        # -- thermal plant (lumped: heat capacity, loss to ambient) -----------------
        self.ambient_c = ambient_c
        self.temperature_c_true = ambient_c
        self.heat_capacity_j_k = 300.0
        self.loss_w_k = 5.0  # time constant C/G = 60 s
        self.heater_max_w = 500.0
        self.cooler_max_w = 250.0  # heating/cooling control: MV < 0 cools
        self.extra_heat_w = 0.0
        self.heat_sources: list[Callable[[float], float]] = []
        self.led_heat_w = led_heat_w

        # -- Omron controller -------------------------------------------------------
        self.setpoint_raw = round(setpoint_c * 10)
        self.sp_limits_raw = (-2000, 13000)  # K thermocouple input range, x0.1 °C
        self.running = running
        self.comm_writing = False
        self.write_mode_ram = False
        self.nv_differs = False
        self.setup_area1 = False
        self.at_running = False
        self.manual = False
        self.program_start = False
        self.multi_sp = 0
        self.sp_mode_remote = False
        self.direct_operation = 0  # 0x2D12: 0 reverse (heating), 1 direct
        self.pid_on = 1  # 0x2D14: 1 = 2-PID
        self.input_type = 6  # K_1
        self.p_band_raw = 80  # P = 8.0 °C (proportional band)
        self.i_time_s = 60  # I: integral time, s
        self.d_time_s = 0  # D: stored, not used by the model (explicit D is unstable here)
        self.alarm_values = {
            "al1": 0,
            "al1_upper": 9999,
            "al1_lower": -1999,
            "al2": 0,
            "al2_upper": 9999,
            "al2_lower": -1999,
        }
        self.sensor_error = False
        self.forced_alarms: set[int] = set()  # alarm numbers 1..3 forced on
        self.mv_percent = 0.0  # >0 heating, <0 cooling
        self._integral = 0.0
        self._suppress_reply = False

        # -- LED source -------------------------------------------------------------
        self.led_enabled = False
        self.led_setpoint_permille = 0
        self.led_actual_permille = 0.0
        self.led_ramp_s = led_ramp_s
        self.wavelength_nm = wavelength_nm
        self.led_max_current_ma = led_max_current_ma
        self.photon_flux_full_umol_s = photon_flux_umol_s
        self.fan_on = False
        self.door_open = False
        self.lamp_failure = False
        self.led_overtemp_forced = False
        self.heatsink_c = ambient_c
        self.heatsink_rise_c = 25.0  # at 100 % with the fan on; 3x with the fan off
        self.heatsink_tau_s = 20.0
        self.heatsink_limit_c = 70.0
        self.latched: set[int] = set()  # LED status bits 1..3
        self.watchdog_s = 0
        self.heartbeat = 0
        self._heartbeat_wall = self._wall()  # wall time of the last heartbeat (or enable)

        self._t: float | None = None
        self._server: Any = None
        self.proxy: ModbusFaultProxy | None = None

    # ------------------------------------------------------------------ lifecycle --
    def url(self, scheme: str | None = None) -> str:
        scheme = scheme or ("modbus+tcp" if self.modbus_tcp else "modbus+rtu+socket")
        return f"{scheme}://{self.host}:{self.port}?unit={self.unit}"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def start(self) -> PhotoreactorSimulator:
        self._t = self.clock.now()
        self._heartbeat_wall = self._wall()
        device = SimDevice(self.unit, simdata=self._simdata(), action=self._action)
        framer = FramerType.SOCKET if self.modbus_tcp else FramerType.RTU
        self._server = ModbusTcpServer(device, address=("127.0.0.1", 0), framer=framer)
        await self._server.serve_forever(background=True)
        backend_port = self._server.transport.sockets[0].getsockname()[1]
        self.proxy = ModbusFaultProxy(
            ("127.0.0.1", backend_port),
            unit=self.unit,
            rtu=not self.modbus_tcp,
            host=self.host,
            port=self.port,
            faults=self.faults,
            reply_allowed=self._reply_allowed,
        )
        self.proxy.received = self.received
        await self.proxy.start()
        self.port = self.proxy.port
        return self

    async def stop(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def __aenter__(self) -> PhotoreactorSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connections(self) -> int:
        """Client connections accepted so far."""
        return self.proxy.connections if self.proxy is not None else 0

    def disconnect_clients(self) -> None:
        if self.proxy is not None:
            self.proxy.disconnect_clients()

    def _reply_allowed(self) -> bool:
        allowed, self._suppress_reply = not self._suppress_reply, False
        return allowed

    @staticmethod
    def _simdata() -> list[SimData]:
        def block(address: int, count: int, readonly: bool = False) -> SimData:
            return SimData(address, count, 0, DataType.REGISTERS, readonly=readonly)

        return [
            block(0x0000, 12),  # op command (FC06) / four-byte monitors (FC03)
            block(0x0106, 14),  # four-byte SP and alarm values
            block(0x2000, 6, readonly=True),  # PV, status, internal SP, CT1, MV heat/cool
            block(0x2103, 7),  # SP, alarm 1 and 2 value/upper/lower
            block(0x2406, 2, readonly=True),  # 32-bit status, high word first
            block(0x2A00, 3),  # P, I, D
            block(0x2C00, 1),  # input type
            block(0x2D12, 1),  # direct/reverse
            block(0x2D14, 1),  # PID ON/OFF
            block(0x3000, 2),  # LED_ENABLE, LED_SETPOINT
            block(0x3002, 3, readonly=True),  # LED_ACTUAL, WAVELENGTH, LED_CURRENT
            block(0x3005, 1),  # FAN
            block(0x3006, 2, readonly=True),  # STATUS, HEATSINK_TEMP
            block(0x3008, 2),  # WATCHDOG_TIMEOUT, HEARTBEAT
            block(0x3010, 2, readonly=True),  # PHOTON_FLUX (uint32, high word first)
        ]

    # ------------------------------------------------------------ fault injection --
    def set_door_open(self, is_open: bool) -> None:
        """Open/close the door; the interlock switches the LED off at once."""
        self.update()
        self.door_open = is_open
        self._check_led_faults()

    def set_lamp_failure(self, failed: bool = True) -> None:
        """LED module failure (open string, driver fault): latches STATUS bit 2."""
        self.update()
        self.lamp_failure = failed
        self._check_led_faults()

    def set_led_overtemperature(self, hot: bool = True) -> None:
        """Force the heatsink over its limit (e.g. a blocked fan): latches STATUS bit 1."""
        self.update()
        self.led_overtemp_forced = hot
        if hot:
            self.heatsink_c = max(self.heatsink_c, self.heatsink_limit_c + 10)
        else:
            self.heatsink_c = min(self.heatsink_c, self.ambient_c)
        self._check_led_faults()

    def set_sensor_error(self, error: bool = True) -> None:
        """Temperature input error (broken thermocouple): status bit 6, control output off."""
        self.update()
        self.sensor_error = error

    def set_alarm(self, number: int, on: bool = True) -> None:
        """Force Omron alarm 1..3 on or off, whatever the alarm limits say."""
        if number not in (1, 2, 3):
            raise ValueError("alarm number must be 1, 2 or 3")
        self.update()
        (self.forced_alarms.add if on else self.forced_alarms.discard)(number)

    # ------------------------------------------------------------ observable state --
    @property
    def temperature_c(self) -> float:
        self.update()
        return self.temperature_c_true

    @property
    def setpoint_c(self) -> float:
        return self.setpoint_raw / 10

    @property
    def led_output_percent(self) -> float:
        self.update()
        return self.led_actual_permille / 10

    @property
    def photon_flux_umol_s(self) -> float:
        self.update()
        return self.photon_flux_full_umol_s * self.led_actual_permille / 1000

    def status_word(self) -> int:
        """The Omron 32-bit status."""
        bits = 0

        def put(bit: int, on: bool) -> None:
            nonlocal bits
            if on:
                bits |= 1 << bit

        put(ST_INPUT_ERROR, self.sensor_error)
        active = self.running and not self.sensor_error
        put(ST_OUT_HEAT, active and self.mv_percent > 0)
        put(ST_OUT_COOL, active and self.mv_percent < 0)
        for n in self.active_alarms():
            put(ST_ALARM1 + n - 1, True)
        put(ST_WRITE_MODE_RAM, self.write_mode_ram)
        put(ST_NV_DIFFERS, self.nv_differs)
        put(ST_SETUP_AREA1, self.setup_area1)
        put(ST_AT_RUNNING, self.at_running)
        put(ST_STOP, not self.running)
        put(ST_COMM_WRITING, self.comm_writing)
        put(ST_MANUAL, self.manual)
        put(ST_PROGRAM_START, self.program_start)
        return bits

    def active_alarms(self) -> list[int]:
        alarms = set(self.forced_alarms)
        if not self.sensor_error:
            pv = round(self.temperature_c_true * 10)
            for n in (1, 2):
                upper = self.alarm_values[f"al{n}_upper"]
                lower = self.alarm_values[f"al{n}_lower"]
                if pv > upper or pv < lower:
                    alarms.add(n)
        return sorted(alarms)

    def led_status_bits(self) -> int:
        bits = 1 << LED_DOOR if self.door_open else 0
        for bit in self.latched:
            bits |= 1 << bit
        return bits

    def pv_raw(self) -> int:
        if self.sensor_error:
            return PV_INPUT_ERROR
        return round(self.temperature_c_true * 10)

    # ------------------------------------------------------------------- physics --
    def update(self) -> None:
        """Integrate the state up to ``clock.now()``."""
        now = self.clock.now()
        if self._t is None:
            self._t = now
            self._heartbeat_wall = self._wall()
            return
        trip_at = self._watchdog_due(now)
        dt = now - self._t
        if dt <= 0:
            if trip_at is not None:
                self._trip_watchdog()
            return
        t = self._t
        if dt > 3600:  # a long gap: start from equilibrium, then integrate the last 10 min
            if trip_at is not None and trip_at <= now - 600:
                self._trip_watchdog()
            self._settle()
            t = now - 600
            dt = 600
        n = min(4000, max(1, math.ceil(dt / 0.25)))
        h = dt / n
        for _ in range(n):
            t += h
            self._step(h, t, trip_at)
        self._t = now

    def _watchdog_due(self, now: float) -> float | None:
        """The simulated instant the watchdog fires at, or None while it is not due.

        A device's firmware counts real seconds, so the window is wall time: at x1000 a 5 s
        watchdog is still 5 s without a heartbeat, not 5 ms."""
        if not (self.led_enabled and self.watchdog_s > 0):
            return None
        overdue = self._wall() - (self._heartbeat_wall + self.watchdog_s)
        if overdue < 0:
            return None
        return now - self.clock.simulated_seconds(overdue)

    def _trip_watchdog(self) -> None:
        self.latched.add(LED_WATCHDOG)
        self._led_off()

    def _settle(self) -> None:
        self.led_actual_permille = self._led_target()
        self.heatsink_c = self._heatsink_target()
        if self.running and not self.sensor_error and not self.manual:
            self.temperature_c_true = self.setpoint_raw / 10
        else:
            self.temperature_c_true = self.ambient_c + self._free_heat_w(0) / self.loss_w_k

    def _led_target(self) -> float:
        ok = self.led_enabled and not self.latched and not self.door_open
        return float(self.led_setpoint_permille) if ok else 0.0

    def _heatsink_target(self) -> float:
        rise = self.heatsink_rise_c * self.led_actual_permille / 1000
        return self.ambient_c + (rise if self.fan_on else 3 * rise)

    def _free_heat_w(self, t: float) -> float:
        led = self.led_heat_w * self.led_actual_permille / 1000
        return led + self.extra_heat_w + sum(source(t) for source in self.heat_sources)

    def _step(self, h: float, t: float, trip_at: float | None = None) -> None:
        # Watchdog: the host must write HEARTBEAT within WATCHDOG_TIMEOUT while the LED is on.
        if trip_at is not None and t >= trip_at and self.led_enabled:
            self._trip_watchdog()
        # LED output: ramps up toward the setpoint, drops at once when off.
        target = self._led_target()
        if target < self.led_actual_permille:
            self.led_actual_permille = target
        else:
            step = 1000 * h / self.led_ramp_s if self.led_ramp_s > 0 else 1000
            self.led_actual_permille = min(target, self.led_actual_permille + step)
        self.heatsink_c += (self._heatsink_target() - self.heatsink_c) * (
            1 - math.exp(-h / self.heatsink_tau_s)
        )
        if self.led_overtemp_forced:
            self.heatsink_c = max(self.heatsink_c, self.heatsink_limit_c + 10)
        self._check_led_faults()
        # Temperature controller (P and I of the Omron 2-PID form) and the thermal plant.
        temp = self.temperature_c_true
        if self.running and not self.sensor_error and not self.manual:
            error = self.setpoint_raw / 10 - temp
            if self.direct_operation:
                error = -error
            kp = 100.0 / max(self.p_band_raw / 10, 0.1)
            integral = self._integral + error * h
            mv = kp * (error + (integral / self.i_time_s if self.i_time_s else 0.0))
            low = -100.0 if self.cooler_max_w > 0 else 0.0
            if low <= mv <= 100.0 or (mv > 100 and error < 0) or (mv < low and error > 0):
                self._integral = integral  # anti-windup: integrate only when not saturated
            self.mv_percent = min(100.0, max(low, mv))
        else:
            self.mv_percent = 0.0
            self._integral = 0.0
        if self.mv_percent >= 0:
            control_w = self.mv_percent / 100 * self.heater_max_w
        else:
            control_w = self.mv_percent / 100 * self.cooler_max_w
        if self.direct_operation:
            control_w = -control_w
        net_w = control_w + self._free_heat_w(t) - self.loss_w_k * (temp - self.ambient_c)
        self.temperature_c_true = temp + h * net_w / self.heat_capacity_j_k

    def _check_led_faults(self) -> None:
        if self.door_open and self.led_enabled:
            self._led_off()  # the interlock: not latched, bit 0 follows the door
        if self.lamp_failure:
            self.latched.add(LED_FAULT)
        if self.led_overtemp_forced or self.heatsink_c > self.heatsink_limit_c:
            self.latched.add(LED_OVERTEMP)
        if self.latched and self.led_enabled:
            self._led_off()

    def _led_off(self) -> None:
        self.led_enabled = False
        self.led_actual_permille = 0.0

    # ------------------------------------------------------------- register I/O --
    def _publish(self, regs: list[int], start: int) -> None:
        """Write the current state into the register list the server reads from."""

        def put(address: int, value: int) -> None:
            regs[address - start] = _u16(value)

        def put32(address: int, value: int) -> None:
            put(address, (value >> 16) & 0xFFFF)
            put(address + 1, value & 0xFFFF)

        status = self.status_word()
        pv = self.pv_raw()
        heat = round(max(self.mv_percent, 0) * 10)
        cool = round(max(-self.mv_percent, 0) * 10)
        # Four-byte monitors: PV, status, internal SP, heater current, MV heat, MV cool.
        for i, value in enumerate((pv, status, self.setpoint_raw, 0, heat, cool)):
            put32(0x0000 + 2 * i, value)
        settings = {"sp": self.setpoint_raw, **self.alarm_values}
        for address, key in _FOUR_BYTE_SETTINGS.items():
            put32(address, settings[key])
        for i, value in enumerate((pv, status & 0xFFFF, self.setpoint_raw, 0, heat, cool)):
            put(0x2000 + i, value)
        for address, key in _TWO_BYTE_SETTINGS.items():
            put(address, settings[key])
        put(0x2406, status >> 16)
        put(0x2407, status & 0xFFFF)
        put(0x2A00, self.p_band_raw)
        put(0x2A01, self.i_time_s)
        put(0x2A02, self.d_time_s)
        put(0x2C00, self.input_type)
        put(0x2D12, self.direct_operation)
        put(0x2D14, self.pid_on)
        actual = round(self.led_actual_permille)
        put(0x3000, int(self.led_enabled))
        put(0x3001, self.led_setpoint_permille)
        put(0x3002, actual)
        put(0x3003, self.wavelength_nm)
        put(0x3004, 0 if self.lamp_failure else round(self.led_max_current_ma * actual / 1000))
        put(0x3005, int(self.fan_on))
        put(0x3006, self.led_status_bits())
        put(0x3007, round(self.heatsink_c * 10))
        put(0x3008, self.watchdog_s)
        put(0x3009, self.heartbeat)
        put32(0x3010, round(self.photon_flux_full_umol_s * actual))  # µmol/s x 1000

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.update()
        if set_values is None:
            if function_code in (3, 4):
                self._publish(registers, start_address)
            # The read that follows a write (the FC06 echo) must return what was written.
            return None
        values = [int(v) for v in set_values]
        return self._write(function_code, address, values)

    def _write(self, fc: int, address: int, values: list[int]) -> ExcCodes | None:
        """Validate the whole write first, then apply it (a rejected write changes nothing)."""
        if address < 0x0100:
            if address == 0x0000 and fc == 6:
                return self._operation_command(values[0])
            return ExcCodes.ILLEGAL_ADDRESS  # monitors; FC16 cannot carry op commands
        if address < 0x2000:
            return self._write_four_byte(fc, address, values)
        if address < 0x3000 and not self.comm_writing:
            return ExcCodes.ILLEGAL_VALUE  # comm writing OFF refuses every write
        appliers: list[Callable[[], None]] = []
        for i, value in enumerate(values):
            result = self._check_register(address + i, value)
            if isinstance(result, ExcCodes):
                return result
            appliers.append(result)
        for apply in appliers:
            apply()
        return None

    def _check_register(self, address: int, raw: int) -> ExcCodes | Callable[[], None]:
        value = _signed16(raw)
        if address in _TWO_BYTE_SETTINGS:
            return self._check_setting(_TWO_BYTE_SETTINGS[address], value)
        if address == 0x2A00:
            if not 1 <= raw <= 9999:
                return ExcCodes.ILLEGAL_VALUE
            return lambda: setattr(self, "p_band_raw", raw)
        if address in (0x2A01, 0x2A02):
            if not 0 <= raw <= 9999:
                return ExcCodes.ILLEGAL_VALUE
            name = "i_time_s" if address == 0x2A01 else "d_time_s"
            return lambda: setattr(self, name, raw)
        if address == 0x2C00:
            if not 0 <= raw <= 29:
                return ExcCodes.ILLEGAL_VALUE
            return lambda: setattr(self, "input_type", raw)
        if address in (0x2D12, 0x2D14):
            if raw not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
            name = "direct_operation" if address == 0x2D12 else "pid_on"
            return lambda: setattr(self, name, raw)
        return self._check_led_register(address, raw)

    def _check_setting(self, key: str, value: int) -> ExcCodes | Callable[[], None]:
        if key == "sp":
            low, high = self.sp_limits_raw
            if not low <= value <= high:
                return ExcCodes.ILLEGAL_VALUE

            def set_sp() -> None:
                self.setpoint_raw = value
                if self.write_mode_ram:
                    self.nv_differs = True

            return set_sp
        if not -1999 <= value <= 9999:
            return ExcCodes.ILLEGAL_VALUE
        return lambda: self.alarm_values.__setitem__(key, value)

    def _write_four_byte(self, fc: int, address: int, values: list[int]) -> ExcCodes | None:
        if fc != 16:
            return ExcCodes.ILLEGAL_ADDRESS  # FC06 is for two-byte mode only
        if not self.comm_writing:
            return ExcCodes.ILLEGAL_VALUE
        if address not in _FOUR_BYTE_SETTINGS or len(values) % 2:
            return ExcCodes.ILLEGAL_ADDRESS
        appliers = []
        for i in range(0, len(values), 2):
            key = _FOUR_BYTE_SETTINGS.get(address + i)
            if key is None:
                return ExcCodes.ILLEGAL_ADDRESS
            value = (values[i] << 16) | values[i + 1]
            if value & 0x8000_0000:
                value -= 1 << 32
            result = self._check_setting(key, value)
            if isinstance(result, ExcCodes):
                return result
            appliers.append(result)
        for apply in appliers:
            apply()
        return None

    def _operation_command(self, word: int) -> ExcCodes | None:
        code, info = word >> 8, word & 0xFF
        if code not in _OP_INFO or info not in _OP_INFO[code]:
            return ExcCodes.ILLEGAL_VALUE
        if code != 0x00 and not self.comm_writing:
            return ExcCodes.ILLEGAL_VALUE
        if code == 0x00:
            self.comm_writing = info == 1
        elif code == 0x01:
            self.running = info == 0
        elif code == 0x02:
            self.multi_sp = info
        elif code == 0x03:
            self.at_running = info != 0
        elif code == 0x04:
            self.write_mode_ram = info == 1
        elif code == 0x05:
            self.nv_differs = False
        elif code == 0x06:  # software reset: the device restarts and sends no reply
            self.comm_writing = False
            self.setup_area1 = False
            self._suppress_reply = True
        elif code == 0x07:
            self.setup_area1 = True
        elif code == 0x09:
            self.manual = info == 1
        elif code == 0x0B:
            self.p_band_raw, self.i_time_s, self.d_time_s = 80, 60, 0
        elif code == 0x0D:
            self.sp_mode_remote = info == 1
        elif code == 0x0E:
            self.direct_operation = info
        elif code == 0x11:
            self.program_start = info == 1
        return None

    def _check_led_register(self, address: int, raw: int) -> ExcCodes | Callable[[], None]:
        if address == 0x3000:
            if raw not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
            if raw == 0:
                return self._led_disable
            if self.door_open or not self.fan_on or self.latched:
                return ExcCodes.DEVICE_FAILURE
            return self._led_enable
        if address == 0x3001:
            if raw > 1000:
                return ExcCodes.ILLEGAL_VALUE
            return lambda: setattr(self, "led_setpoint_permille", raw)
        if address == 0x3005:
            if raw not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
            if raw == 0 and self.led_enabled:
                return ExcCodes.DEVICE_FAILURE  # the fan must run while the LED is on
            return lambda: setattr(self, "fan_on", raw == 1)
        if address == 0x3008:
            if raw > 600:
                return ExcCodes.ILLEGAL_VALUE

            def set_watchdog() -> None:
                self.watchdog_s = raw
                self._heartbeat_wall = self._wall()

            return set_watchdog
        if address == 0x3009:

            def beat() -> None:
                self.heartbeat = raw
                self._heartbeat_wall = self._wall()

            return beat
        return ExcCodes.ILLEGAL_ADDRESS

    def _led_enable(self) -> None:
        self.led_enabled = True
        self._heartbeat_wall = self._wall()  # the watchdog window starts now

    def _led_disable(self) -> None:
        self._led_off()
        # Writing 0 clears latched faults whose cause is gone.
        self.latched.discard(LED_WATCHDOG)
        if not self.lamp_failure:
            self.latched.discard(LED_FAULT)
        if not self.led_overtemp_forced and self.heatsink_c <= self.heatsink_limit_c - 5:
            self.latched.discard(LED_OVERTEMP)
