"""Omron E5CC / E5EC (E5@C) temperature controller over Modbus RTU (devices.md §7).

URL forms::

    modbus+rtu:///dev/ttyUSB1?baudrate=9600&parity=E&unit=1   # the controller's RS-485
    modbus+rtu+socket://host:port?unit=1                       # RTU frames through a gateway
    modbus+tcp://host:port?unit=1                              # a Modbus TCP gateway

The controller must be set to the Modbus protocol (factory default is CompoWay/F). The
driver uses two-byte addressing (0x2xxx, one register per value; values are tenths of
°C, negatives in two's complement) and the operation command (FC06 to 0x0000). Unit 0 is
broadcast, never answered, and is rejected by the URL parser.
"""

from __future__ import annotations

import logging
import math

from robochem.drivers.base import TemperatureController, TemperatureStatus
from robochem.drivers.errors import DeviceFault, check_range
from robochem.drivers.transport import ModbusError, ModbusTransport

log = logging.getLogger(__name__)

# Two-byte-mode addresses.
OP_COMMAND = 0x0000
PV = 0x2000
STATUS_16 = 0x2001
SETPOINT = 0x2103
STATUS_32 = 0x2406  # two registers, high word first

# Operation command codes: FC06 to 0x0000 with data (code << 8) | info.
CMD_COMM_WRITING = 0x00  # info 01 on, 00 off
CMD_RUN_STOP = 0x01  # info 00 run, 01 stop
CMD_WRITE_MODE = 0x04  # info 00 backup (non-volatile), 01 RAM

# 32-bit status bits (the two-byte 0x2001 word holds bits 0..15).
STATUS_BITS = {
    0: "heater_overcurrent_ct1",
    2: "ad_converter_error",
    3: "hs_alarm_ct1",
    4: "rsp_input_error",
    6: "input_error",
    7: "potentiometer_error",
    10: "hb_alarm_ct1",
    11: "hb_alarm_ct2",
    12: "alarm1",
    13: "alarm2",
    14: "alarm3",
    28: "heater_overcurrent_ct2",
    31: "hs_alarm_ct2",
}
BIT_STOP = 24
BIT_COMM_WRITING = 25
#: Faults that make the PV meaningless: reading the temperature then raises.
SENSOR_FAULTS = {2: "ad_converter_error", 6: "input_error"}


def _signed(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class OmronE5CC(TemperatureController):
    """``omron-e5cc``: setpoint, PV, RUN/STOP and alarms of an E5CC/E5EC.

    Options: ``sp_range_c=(low, high)``, the setpoints this installation allows (checked
    before sending; the controller's own SP limits may be wider); ``stop_on_connect``
    (default True: connect leaves control stopped, the safe state); ``transport``, a
    ``ModbusTransport`` shared with other drivers on the same unit.
    """

    driver_name = "omron-e5cc"
    verified = False

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 1.0,
        sp_range_c: tuple[float, float] = (-20.0, 150.0),
        stop_on_connect: bool = True,
        transport: ModbusTransport | None = None,
    ) -> None:
        super().__init__(name)
        low, high = (float(v) for v in sp_range_c)
        if not low < high:
            raise ValueError(f"sp_range_c must be (low, high) with low < high, got {sp_range_c}")
        self.sp_range_c = (low, high)
        self.stop_on_connect = stop_on_connect
        self.transport = transport or ModbusTransport(url, name=self.name, timeout_s=timeout_s)
        self.url = url

    # -- link ---------------------------------------------------------------------
    async def _initialise(self) -> None:
        await self._op(CMD_COMM_WRITING, 1)
        status = await self._status32()
        if not status & (1 << BIT_COMM_WRITING):
            raise DeviceFault(
                "communications writing did not switch on (check the protect level)",
                device=self.name,
                code="comm-writing-off",
            )
        # RAM write mode keeps frequent setpoint changes out of non-volatile memory.
        await self._op(CMD_WRITE_MODE, 1)
        if self.stop_on_connect:
            await self.stop_control()

    async def disconnect(self) -> None:
        await self.transport.close()

    async def _probe(self) -> None:
        await self.transport.read_registers(PV, 1, retries=0)

    # -- commands -----------------------------------------------------------------
    async def set_setpoint(self, celsius: float) -> float:
        low, high = self.sp_range_c
        check_range(self.name, "setpoint", celsius, low, high, "degC")
        raw = round(celsius * 10)
        await self._write(SETPOINT, raw, f"setpoint {celsius} degC")
        return raw / 10

    async def get_setpoint(self) -> float:
        (raw,) = await self.transport.read_registers(SETPOINT, 1)
        return _signed(raw) / 10

    async def get_temperature(self) -> float:
        """The process value in °C; DeviceFault if the sensor input is in error."""
        (raw,) = await self.transport.read_registers(PV, 1)
        (status,) = await self.transport.read_registers(STATUS_16, 1)
        faults = [name for bit, name in SENSOR_FAULTS.items() if status & (1 << bit)]
        if faults:
            raise DeviceFault(
                f"temperature input fault: {', '.join(faults)} (PV is not valid)",
                device=self.name,
                code=faults[0],
            )
        return _signed(raw) / 10

    async def run(self) -> None:
        await self._op(CMD_RUN_STOP, 0)

    async def stop_control(self) -> None:
        await self._op(CMD_RUN_STOP, 1)

    async def temperature_status(self) -> TemperatureStatus:
        """Running state, setpoint, PV and active alarms (never raises for alarms).

        ``temperature_c`` is NaN while the sensor input is in error.
        """
        (pv,) = await self.transport.read_registers(PV, 1)
        (sp,) = await self.transport.read_registers(SETPOINT, 1)
        status = await self._status32()
        alarms = tuple(name for bit, name in sorted(STATUS_BITS.items()) if status & (1 << bit))
        sensor_bad = any(status & (1 << bit) for bit in SENSOR_FAULTS)
        return TemperatureStatus(
            running=not status & (1 << BIT_STOP),
            setpoint_c=_signed(sp) / 10,
            temperature_c=math.nan if sensor_bad else _signed(pv) / 10,
            alarms=alarms,
        )

    async def status_word(self) -> int:
        """The raw 32-bit status (bit table in devices.md §7)."""
        return await self._status32()

    # -- helpers ------------------------------------------------------------------
    async def _status32(self) -> int:
        high, low = await self.transport.read_registers(STATUS_32, 2)
        return (high << 16) | low

    async def _op(self, code: int, info: int) -> None:
        await self._write(
            OP_COMMAND, (code << 8) | info, f"operation command {code:02X}/{info:02X}"
        )

    async def _write(self, address: int, value: int, what: str) -> None:
        """FC06 write; if refused because communications writing went off (the controller
        was reset or switched at its panel), switch it on again and repeat once."""
        try:
            await self.transport.write_register(address, value)
            return
        except ModbusError as exc:
            if exc.exception_code != 3 or (address, value >> 8) == (OP_COMMAND, CMD_COMM_WRITING):
                raise self._explain(exc, what) from exc
            status = await self._status32()
            if status & (1 << BIT_COMM_WRITING):
                raise self._explain(exc, what) from exc
        log.info("%s: communications writing was off; switching it on again", self.name)
        await self.transport.write_register(OP_COMMAND, (CMD_COMM_WRITING << 8) | 1)
        try:
            await self.transport.write_register(address, value)
        except ModbusError as exc:
            raise self._explain(exc, what) from exc

    def _explain(self, exc: ModbusError, what: str) -> DeviceFault:
        reason = {
            2: "address not writable",
            3: "value refused (out of the controller's limits, or writing not enabled)",
            4: "device failure",
        }.get(exc.exception_code, f"Modbus exception {exc.exception_code:02d}")
        return ModbusError(f"{what}: {reason}", device=self.name, exception_code=exc.exception_code)
