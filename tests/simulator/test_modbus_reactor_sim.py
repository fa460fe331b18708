"""The photoreactor simulator answered with raw Modbus frames (devices.md §7, §8 golden frames)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from wire import WAIT_S, Framer, RawClient, h, mbap_length, registers, rtu, rtu_reply_length

from robochem.clock import Clock
from robochem.simulator.modbus_reactor import PhotoreactorSimulator


class ManualClock(Clock):
    """Simulated time that moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 0.0
        super().__init__(speed=1.0, epoch=0.0, _wall=lambda: self.t)

    def advance(self, seconds: float) -> None:
        self.t += seconds


#: A silence is observed over a window: long enough that a reply would have come.
QUIET_S = 0.3


class Raw(RawClient):
    """Sends a frame and reads one framed reply (RTU unless told MBAP)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        framer: Framer = rtu_reply_length,
    ) -> None:
        super().__init__(reader, writer)
        self.framer = framer

    async def __call__(self, frame: bytes) -> bytes:
        """The reply; b"" if the simulator closed the connection instead."""
        await self.send(frame)
        return await self.reply()

    async def reply(self) -> bytes:
        try:
            return await self.read(self.framer, WAIT_S)
        except ConnectionError:
            return b""

    async def unanswered(self, frame: bytes, quiet_s: float = QUIET_S) -> bool:
        await self.send(frame)
        return await self.silent(quiet_s)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[PhotoreactorSimulator]:
    async with PhotoreactorSimulator(clock=clock, ambient_c=25.3) as server:
        yield server


@pytest.fixture
async def raw(sim: PhotoreactorSimulator) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    yield Raw(reader, writer)
    writer.close()


COMM_ON = h("01 06 00 00 00 01 48 0A")
RUN = h("01 06 00 00 01 00 88 5A")
STOP = h("01 06 00 00 01 01 49 9A")
READ_PV = h("01 03 20 00 00 01 8F CA")
READ_STATUS16 = h("01 03 20 01 00 01 DE 0A")
READ_STATUS32 = h("01 03 24 06 00 02 2E FA")
WRITE_SP_500 = h("01 06 21 03 01 F4 73 E1")
LED_ON = h("01 06 30 00 00 01 47 0A")
LED_OFF = h("01 06 30 00 00 00 86 CA")
LED_SP_50 = h("01 06 30 01 01 F4 D7 1D")
READ_LED_BLOCK = h("01 03 30 00 00 0A CA CD")
READ_FLUX = h("01 03 30 10 00 02 CA CE")
WATCHDOG_5 = h("01 06 30 08 00 05 C7 0B")
HEARTBEAT_42 = h("01 06 30 09 00 2A D7 17")
EXC_03 = h("01 86 03 02 61")
EXC_04 = h("01 86 04 43 A3")
FAN_ON = rtu("01 06 30 05 00 01")


# -- Omron block: golden frames ------------------------------------------------------


async def test_read_pv_golden(raw: Raw) -> None:
    assert await raw(READ_PV) == h("01 03 02 00 FD 79 C5")  # 25.3 °C


async def test_echoback_golden(raw: Raw) -> None:
    frame = h("01 08 00 00 12 34 ED 7C")
    assert await raw(frame) == frame


async def test_writes_refused_until_comm_writing_on(raw: Raw, sim: PhotoreactorSimulator) -> None:
    assert await raw(WRITE_SP_500) == EXC_03
    assert await raw(RUN) == EXC_03
    assert sim.setpoint_raw == 250
    assert await raw(COMM_ON) == COMM_ON
    assert await raw(WRITE_SP_500) == WRITE_SP_500
    assert sim.setpoint_c == 50.0
    assert await raw(STOP) == STOP
    assert sim.running is False
    assert await raw(RUN) == RUN
    assert sim.running is True


async def test_status_pair_reports_stop_and_comm_writing(raw: Raw) -> None:
    assert await raw(COMM_ON) == COMM_ON
    assert await raw(STOP) == STOP
    high, low = registers(await raw(READ_STATUS32))
    status = (high << 16) | low
    assert status & (1 << 24)  # STOP
    assert status & (1 << 25)  # comm writing
    assert await raw(RUN) == RUN
    high, low = registers(await raw(READ_STATUS32))
    assert not high & (1 << 8)
    (low16,) = registers(await raw(READ_STATUS16))
    assert low16 == low


async def test_two_and_four_byte_write_multiple_golden(
    raw: Raw, sim: PhotoreactorSimulator
) -> None:
    assert await raw(COMM_ON) == COMM_ON
    two = h("01 10 21 05 00 02 04 03 E8 FC 18 66 BB")
    assert await raw(two) == h("01 10 21 05 00 02 5B F5")
    assert sim.alarm_values["al1_upper"] == 1000
    assert sim.alarm_values["al1_lower"] == -1000
    four = h("01 10 01 0A 00 04 08 00 00 03 E8 FF FF FC 18 8D E9")
    sim.alarm_values["al1_upper"] = 0
    assert await raw(four) == h("01 10 01 0A 00 04 E0 34")
    assert sim.alarm_values["al1_upper"] == 1000
    assert sim.alarm_values["al1_lower"] == -1000
    # Four-byte addresses take FC16 only.
    assert await raw(rtu("01 06 01 06 00 10")) == rtu("01 86 02")


async def test_illegal_address_golden(raw: Raw) -> None:
    assert await raw(rtu("01 03 2F 00 00 01")) == h("01 83 02 C0 F1")
    # Read-only monitors refuse writes with 02 as well.
    assert await raw(COMM_ON) == COMM_ON
    assert await raw(rtu("01 06 20 00 00 01")) == rtu("01 86 02")


async def test_setpoint_beyond_controller_limits_is_03(
    raw: Raw, sim: PhotoreactorSimulator
) -> None:
    assert await raw(COMM_ON) == COMM_ON
    assert await raw(rtu("01 06 21 03 32 C9")) == EXC_03  # 1300.1 °C: above the K range
    assert await raw(rtu("01 06 21 03 32 C8")) == rtu("01 06 21 03 32 C8")  # 1300.0 °C
    sim.sp_limits_raw = (-200, 1500)
    assert await raw(rtu("01 06 21 03 05 DD")) == EXC_03  # 150.1 °C
    assert await raw(rtu("01 06 21 03 FF 38")) == rtu("01 06 21 03 FF 38")  # -20.0 °C
    assert sim.setpoint_c == -20.0


async def test_unknown_operation_command_is_03(raw: Raw) -> None:
    assert await raw(COMM_ON) == COMM_ON
    assert await raw(rtu("01 06 00 00 0A 00")) == EXC_03  # code 0A does not exist
    assert await raw(rtu("01 06 00 00 01 02")) == EXC_03  # RUN/STOP info 02


async def test_software_reset_sends_no_reply(raw: Raw, sim: PhotoreactorSimulator) -> None:
    assert await raw(COMM_ON) == COMM_ON
    assert await raw.unanswered(rtu("01 06 00 00 06 00"))
    assert sim.comm_writing is False
    assert await raw(READ_PV) == h("01 03 02 00 FD 79 C5")  # and it answers again


async def test_other_unit_and_bad_crc_get_silence(raw: Raw) -> None:
    assert await raw.unanswered(rtu("02 03 20 00 00 01"))
    assert await raw.unanswered(h("01 03 20 00 00 01 8F CB"))
    assert await raw(READ_PV) == h("01 03 02 00 FD 79 C5")


# -- thermal physics -----------------------------------------------------------------


async def test_run_reaches_setpoint_and_stop_drifts_to_ambient(
    raw: Raw, sim: PhotoreactorSimulator, clock: ManualClock
) -> None:
    assert await raw(COMM_ON) == COMM_ON
    assert await raw(WRITE_SP_500) == WRITE_SP_500
    assert await raw(RUN) == RUN
    clock.advance(20)
    assert 30 < sim.temperature_c < 50.5
    (mv_heat,) = registers(await raw(rtu("01 03 20 04 00 01")))
    assert mv_heat > 0
    clock.advance(600)
    (pv,) = registers(await raw(READ_PV))
    assert pv == pytest.approx(500, abs=2)
    assert await raw(STOP) == STOP
    clock.advance(900)
    assert sim.temperature_c == pytest.approx(25.3, abs=0.2)
    sim.ambient_c = 30.0  # overridable: the virtual lab moves the room
    sim.extra_heat_w = 10.0  # 10 W / (5 W/K) = +2 K
    clock.advance(1200)
    assert sim.temperature_c == pytest.approx(32.0, abs=0.2)


async def test_led_heat_warms_the_reactor(raw: Raw, sim: PhotoreactorSimulator, clock) -> None:
    assert await raw(COMM_ON) == COMM_ON
    assert await raw(STOP) == STOP
    assert await raw(FAN_ON) == FAN_ON
    assert await raw(rtu("01 06 30 01 03 E8")) == rtu("01 06 30 01 03 E8")  # 100 %
    assert await raw(LED_ON) == LED_ON
    clock.advance(900)
    # 30 W LED heat over 5 W/K loss: +6 K at steady state.
    assert sim.temperature_c == pytest.approx(25.3 + 6.0, abs=0.2)


# -- LED map -------------------------------------------------------------------------


async def test_led_golden_sequence(raw: Raw, sim: PhotoreactorSimulator, clock) -> None:
    assert await raw(LED_ON) == EXC_04  # fan off: refused
    assert await raw(FAN_ON) == FAN_ON
    assert await raw(LED_SP_50) == LED_SP_50
    assert await raw(WATCHDOG_5) == WATCHDOG_5
    assert await raw(HEARTBEAT_42) == HEARTBEAT_42
    assert await raw(LED_ON) == LED_ON
    clock.advance(0.25)  # half of the 0.5 s full-scale ramp
    regs = registers(await raw(READ_LED_BLOCK))
    assert regs[:2] == [1, 500]
    assert regs[2] == 500  # 0.25 s ramps 500 ‰: reached the setpoint
    assert regs[3] == 450  # wavelength
    assert regs[4] == 350  # 700 mA at full output
    assert regs[5:7] == [1, 0]  # fan on, no status bits
    assert regs[8:] == [5, 42]
    assert registers(await raw(READ_FLUX)) == [0, 25000]  # 25.000 µmol/s
    assert await raw(LED_OFF) == LED_OFF
    assert registers(await raw(READ_FLUX)) == [0, 0]


async def test_led_actual_ramps(raw: Raw, clock: ManualClock) -> None:
    for frame in (FAN_ON, rtu("01 06 30 01 03 E8"), LED_ON):
        assert await raw(frame) == frame
    clock.advance(0.1)
    (actual,) = registers(await raw(rtu("01 03 30 02 00 01")))
    assert actual == 200
    clock.advance(1.0)
    (actual,) = registers(await raw(rtu("01 03 30 02 00 01")))
    assert actual == 1000


async def test_led_range_readonly_and_reserved(raw: Raw) -> None:
    assert await raw(rtu("01 06 30 01 03 E9")) == EXC_03  # 1001 > 1000
    assert await raw(rtu("01 06 30 00 00 02")) == EXC_03
    assert await raw(rtu("01 06 30 08 02 59")) == EXC_03  # watchdog 601 s
    assert await raw(rtu("01 06 30 02 00 01")) == rtu("01 86 02")  # LED_ACTUAL is R
    assert await raw(rtu("01 06 30 06 00 00")) == rtu("01 86 02")  # STATUS is R
    assert await raw(rtu("01 03 30 0A 00 01")) == rtu("01 83 02")  # reserved
    assert await raw(rtu("01 03 30 09 00 02")) == rtu("01 83 02")  # runs into reserved
    # FC04 reads the same data as FC03.
    assert registers(await raw(rtu("01 04 30 03 00 01"))) == [450]


async def test_door_interlock(raw: Raw, sim: PhotoreactorSimulator) -> None:
    assert await raw(FAN_ON) == FAN_ON
    sim.set_door_open(True)
    assert await raw(LED_ON) == EXC_04
    sim.set_door_open(False)
    assert await raw(LED_ON) == LED_ON
    sim.set_door_open(True)  # opening the door switches the LED off
    regs = registers(await raw(READ_LED_BLOCK))
    assert regs[0] == 0 and regs[6] == 0b0001
    sim.set_door_open(False)
    (status,) = registers(await raw(rtu("01 03 30 06 00 01")))
    assert status == 0  # bit 0 follows the door, it does not latch


async def test_faults_latch_until_enable_zero(raw: Raw, sim: PhotoreactorSimulator) -> None:
    assert await raw(FAN_ON) == FAN_ON
    assert await raw(LED_ON) == LED_ON
    sim.set_lamp_failure(True)
    sim.set_led_overtemperature(True)
    regs = registers(await raw(READ_LED_BLOCK))
    assert regs[0] == 0 and regs[6] == 0b0110
    assert regs[7] > 700  # heatsink over its 70 °C limit
    assert await raw(LED_ON) == EXC_04
    assert await raw(LED_OFF) == LED_OFF  # causes still present: stays latched
    (status,) = registers(await raw(rtu("01 03 30 06 00 01")))
    assert status == 0b0110
    sim.set_lamp_failure(False)
    sim.set_led_overtemperature(False)
    (status,) = registers(await raw(rtu("01 03 30 06 00 01")))
    assert status == 0b0110  # latched until the host writes LED_ENABLE = 0
    assert await raw(LED_OFF) == LED_OFF
    (status,) = registers(await raw(rtu("01 03 30 06 00 01")))
    assert status == 0
    assert await raw(LED_ON) == LED_ON


class ManualWall:
    """Wall seconds for the watchdog, moved by the test."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_watchdog_trips_without_heartbeat(clock: ManualClock) -> None:
    wall = ManualWall()
    async with PhotoreactorSimulator(clock=clock, wall=wall) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        raw = Raw(reader, writer)
        for frame in (FAN_ON, WATCHDOG_5, LED_ON):
            assert await raw(frame) == frame
        wall.t += 4
        assert await raw(HEARTBEAT_42) == HEARTBEAT_42
        wall.t += 4  # 8 s since enable, but only 4 s since the heartbeat
        assert registers(await raw(rtu("01 03 30 00 00 01"))) == [1]
        wall.t += 1.5
        regs = registers(await raw(READ_LED_BLOCK))
        assert regs[0] == 0 and regs[6] == 0b1000
        assert await raw(LED_ON) == EXC_04
        assert await raw(LED_OFF) == LED_OFF
        assert await raw(LED_ON) == LED_ON
        writer.close()


async def test_watchdog_counts_wall_seconds_not_simulated_ones(clock: ManualClock) -> None:
    """A device's firmware counts real time: an hour of simulated time within one wall
    second does not trip a 5 s watchdog, and 6 wall seconds do while the clock stands."""
    wall = ManualWall()
    async with PhotoreactorSimulator(clock=clock, wall=wall) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        raw = Raw(reader, writer)
        for frame in (FAN_ON, WATCHDOG_5, LED_SP_50, LED_ON):
            assert await raw(frame) == frame
        clock.advance(3600)
        wall.t += 1
        assert registers(await raw(rtu("01 03 30 00 00 01"))) == [1]
        assert sim.led_output_percent == 50.0
        wall.t += 5
        assert registers(await raw(rtu("01 03 30 00 00 01"))) == [0]
        assert sim.led_output_percent == 0.0 and sim.led_status_bits() == 0b1000
        writer.close()


async def test_fan_cannot_stop_while_led_on(raw: Raw) -> None:
    for frame in (FAN_ON, LED_ON):
        assert await raw(frame) == frame
    assert await raw(rtu("01 06 30 05 00 00")) == EXC_04


async def test_sensor_error_and_alarms_in_status(raw: Raw, sim: PhotoreactorSimulator) -> None:
    sim.set_sensor_error(True)
    sim.set_alarm(2, True)
    (status,) = registers(await raw(READ_STATUS16))
    assert status & (1 << 6) and status & (1 << 13)
    (pv,) = registers(await raw(READ_PV))
    assert pv == 0x7FFF
    sim.set_sensor_error(False)
    sim.set_alarm(2, False)
    (status,) = registers(await raw(READ_STATUS16))
    assert not status & (1 << 6) and not status & (1 << 13)
    # An absolute-limit alarm from the alarm registers: AL1 upper = 20.0 °C < PV.
    sim.alarm_values["al1_upper"] = 200
    (status,) = registers(await raw(READ_STATUS16))
    assert status & (1 << 12)


# -- faults --------------------------------------------------------------------------


async def test_fault_kinds(raw: Raw, sim: PhotoreactorSimulator) -> None:
    good = h("01 03 02 00 FD 79 C5")
    sim.faults.inject("no_reply")
    assert await raw.unanswered(READ_PV)
    sim.faults.inject("garbled")
    await raw.send(READ_PV)
    garbled = await raw.read_exactly(len(good))  # a garbled byte count would mislead framing
    assert garbled != good
    sim.faults.inject("device_error")
    assert await raw(READ_PV) == rtu("01 83 04")
    sim.faults.inject("late_reply", delay_s=0.4)
    assert await raw.unanswered(READ_PV, quiet_s=0.2)
    # The simulator answers in order: the late reply, then this one.
    assert await raw(READ_PV) == good
    assert await raw.reply() == good
    sim.faults.inject("drop")
    assert await raw(READ_PV) == b""  # connection closed
    assert sim.received[-1] == READ_PV


async def test_received_records_request_frames(raw: Raw, sim: PhotoreactorSimulator) -> None:
    await raw(READ_PV)
    await raw(COMM_ON)
    assert sim.received == [READ_PV, COMM_ON]


async def test_modbus_tcp_mode(clock: ManualClock) -> None:
    async with PhotoreactorSimulator(clock=clock, modbus_tcp=True) as sim:
        assert sim.url().startswith("modbus+tcp://127.0.0.1:")
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        raw = Raw(reader, writer, framer=mbap_length)
        frame = h("00 01 00 00 00 06 01 06 30 01 01 F4")  # devices.md §8 MBAP example
        assert await raw(frame) == frame
        assert sim.led_setpoint_permille == 500
        assert await raw(h("00 02 00 00 00 06 01 06 30 01 03 E9")) == h(
            "00 02 00 00 00 03 01 86 03"
        )
        sim.faults.inject("device_error")
        assert await raw(h("00 03 00 00 00 06 01 03 30 03 00 01")) == h(
            "00 03 00 00 00 03 01 83 04"
        )
        writer.close()
