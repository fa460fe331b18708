"""OmronE5CC driver against the photoreactor simulator over real sockets (devices.md §7)."""

from __future__ import annotations

import math
import time
import types
from collections.abc import AsyncIterator

import pytest
from wire import connections_served, h, rtu, wait_until

from robochem.clock import Clock
from robochem.drivers import open_device
from robochem.drivers.errors import (
    CommunicationError,
    DeviceFault,
    ReplyTimeout,
    SetpointRejected,
)
from robochem.drivers.omron import OmronE5CC
from robochem.drivers.transport import ModbusError
from robochem.simulator.modbus_reactor import PhotoreactorSimulator

# Reply timeout 0.6 s, not 0.3 s: a healthy reply can miss 0.3 s on the loaded 2-core CI
# machine (Chemyx did once, 25 Nov 2026). The late-reply faults stay well past it.
TIMEOUT = 0.6


COMM_ON = h("01 06 00 00 00 01 48 0A")
RAM_MODE = rtu("01 06 00 00 04 01")
RUN = h("01 06 00 00 01 00 88 5A")
STOP = h("01 06 00 00 01 01 49 9A")
READ_PV = h("01 03 20 00 00 01 8F CA")
READ_STATUS16 = h("01 03 20 01 00 01 DE 0A")
READ_STATUS32 = h("01 03 24 06 00 02 2E FA")
WRITE_SP_500 = h("01 06 21 03 01 F4 73 E1")
READ_SP = rtu("01 03 21 03 00 01")


@pytest.fixture(autouse=True)
def _fast_socket_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyserial's socket:// close() sleeps 0.3 s "for quick reconnects"; not needed here."""
    from serial.urlhandler import protocol_socket

    monkeypatch.setattr(protocol_socket, "time", types.SimpleNamespace(sleep=lambda s: None))


@pytest.fixture
def clock() -> Clock:
    return Clock(speed=600.0)  # ten simulated minutes per wall second


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[PhotoreactorSimulator]:
    # Powered up stopped, so the PV stays at ambient until a test runs the controller
    # (at 600x a few loaded wall milliseconds would otherwise move it).
    async with PhotoreactorSimulator(clock=clock, ambient_c=22.0, running=False) as server:
        yield server


@pytest.fixture
async def omron(sim: PhotoreactorSimulator) -> AsyncIterator[OmronE5CC]:
    async with OmronE5CC(sim.url(), timeout_s=TIMEOUT) as device:
        yield device


async def test_connect_sequence_is_the_documented_bytes(sim: PhotoreactorSimulator) -> None:
    sim.running = True  # a controller that powered up running
    async with OmronE5CC(sim.url(), timeout_s=TIMEOUT):
        assert sim.received == [COMM_ON, READ_STATUS32, RAM_MODE, STOP]
        assert sim.comm_writing and sim.write_mode_ram and not sim.running


async def test_stop_on_connect_can_be_disabled(sim: PhotoreactorSimulator) -> None:
    sim.running = True
    async with OmronE5CC(sim.url(), timeout_s=TIMEOUT, stop_on_connect=False):
        assert STOP not in sim.received
        assert sim.running


async def test_setpoint_golden_frame_and_readback(omron: OmronE5CC, sim) -> None:
    assert await omron.set_setpoint(50.0) == 50.0
    assert sim.received[-1] == WRITE_SP_500
    assert sim.setpoint_c == 50.0
    assert await omron.get_setpoint() == 50.0
    assert sim.received[-1] == READ_SP


async def test_negative_setpoint_is_twos_complement(omron: OmronE5CC, sim) -> None:
    assert await omron.set_setpoint(-12.5) == -12.5
    assert sim.received[-1] == rtu("01 06 21 03 FF 83")
    assert sim.setpoint_raw == -125
    assert await omron.get_setpoint() == -12.5


async def test_setpoint_rounds_to_tenths(omron: OmronE5CC) -> None:
    assert await omron.set_setpoint(37.04) == 37.0


@pytest.mark.parametrize("value", [150.1, -20.5, 1000.0, math.nan])
async def test_out_of_range_setpoint_rejected_before_sending(
    omron: OmronE5CC, sim: PhotoreactorSimulator, value: float
) -> None:
    before = list(sim.received)
    with pytest.raises(SetpointRejected) as info:
        await omron.set_setpoint(value)
    assert sim.received == before
    assert "degC" in str(info.value) and "-20.0..150.0" in str(info.value)
    assert info.value.device == omron.name


async def test_sp_range_option(sim: PhotoreactorSimulator) -> None:
    async with OmronE5CC(sim.url(), timeout_s=TIMEOUT, sp_range_c=(0, 80)) as omron:
        with pytest.raises(SetpointRejected, match=r"0\.0\.\.80\.0"):
            await omron.set_setpoint(90)
        assert await omron.set_setpoint(80) == 80.0
    with pytest.raises(ValueError):
        OmronE5CC(sim.url(), sp_range_c=(80, 0))


async def test_controller_refusing_a_setpoint_raises_modbus_error(omron: OmronE5CC, sim) -> None:
    sim.sp_limits_raw = (0, 1000)  # the controller's own SP limits are narrower
    with pytest.raises(ModbusError) as info:
        await omron.set_setpoint(120.0)
    assert info.value.exception_code == 3
    assert isinstance(info.value, DeviceFault)
    assert "refused" in str(info.value)


async def test_temperature_golden_frames(omron: OmronE5CC, sim) -> None:
    n = len(sim.received)
    temperature = await omron.get_temperature()
    assert sim.received[n:] == [READ_PV, READ_STATUS16]
    assert temperature == pytest.approx(sim.temperature_c, abs=0.3)


async def test_run_and_stop_golden_frames(omron: OmronE5CC, sim) -> None:
    await omron.run()
    assert sim.received[-1] == RUN and sim.running
    status = await omron.temperature_status()
    assert status.running
    assert sim.received[-3:] == [READ_PV, READ_SP, READ_STATUS32]
    await omron.stop_control()
    assert sim.received[-1] == STOP and not sim.running
    assert not (await omron.temperature_status()).running
    await omron.run()
    await omron.emergency_stop()
    assert sim.received[-1] == STOP and not sim.running


async def test_run_reaches_setpoint(omron: OmronE5CC) -> None:
    await omron.set_setpoint(40.0)
    await omron.run()
    async def near_setpoint() -> bool:
        return abs(await omron.get_temperature() - 40.0) < 0.3

    await wait_until(near_setpoint, interval=0.02)
    assert await omron.get_temperature() == pytest.approx(40.0, abs=0.3)
    status = await omron.temperature_status()
    assert status.setpoint_c == 40.0 and status.running and status.alarms == ()


async def test_alarms_reported_in_status(omron: OmronE5CC, sim) -> None:
    sim.set_alarm(1)
    sim.set_alarm(3)
    status = await omron.temperature_status()
    assert status.alarms == ("alarm1", "alarm3")
    sim.set_alarm(1, False)
    sim.set_alarm(3, False)
    assert (await omron.temperature_status()).alarms == ()


async def test_sensor_input_error_raises_device_fault(omron: OmronE5CC, sim) -> None:
    sim.set_sensor_error(True)
    with pytest.raises(DeviceFault, match="input_error") as info:
        await omron.get_temperature()
    assert info.value.code == "input_error"
    status = await omron.temperature_status()
    assert math.isnan(status.temperature_c)
    assert "input_error" in status.alarms
    sim.set_sensor_error(False)
    assert await omron.get_temperature() == pytest.approx(sim.temperature_c, abs=0.3)


async def test_comm_writing_switched_off_is_restored(omron: OmronE5CC, sim) -> None:
    sim.comm_writing = False  # e.g. the controller was reset or switched at its panel
    n = len(sim.received)
    assert await omron.set_setpoint(30.0) == 30.0
    assert sim.received[n:] == [
        rtu("01 06 21 03 01 2C"),
        READ_STATUS32,
        COMM_ON,
        rtu("01 06 21 03 01 2C"),
    ]
    assert sim.comm_writing and sim.setpoint_c == 30.0


async def test_connect_fails_if_comm_writing_stays_off(sim: PhotoreactorSimulator) -> None:
    original = sim._operation_command

    def refuse_comm_writing(word: int):  # a controller at a protect level that forbids it
        if word >> 8 == 0:
            return None
        return original(word)

    sim._operation_command = refuse_comm_writing  # type: ignore[method-assign]
    omron = OmronE5CC(sim.url(), timeout_s=TIMEOUT)
    with pytest.raises(DeviceFault, match="communications writing"):
        await omron.connect()


def test_unit_zero_broadcast_rejected() -> None:
    with pytest.raises(ValueError, match="unit"):
        OmronE5CC("modbus+rtu+socket://127.0.0.1:1?unit=0")
    with pytest.raises(ValueError, match="unit"):
        OmronE5CC("modbus+rtu:///dev/ttyUSB1?baudrate=9600&parity=E&unit=0")


async def test_other_unit_times_out(sim: PhotoreactorSimulator) -> None:
    url = sim.url().replace("unit=1", "unit=2")
    omron = OmronE5CC(url, timeout_s=TIMEOUT)
    start = time.monotonic()
    with pytest.raises(ReplyTimeout):
        await omron.connect()
    # Only "it fired rather than hung": a one-sided bound, generous for a loaded machine.
    assert time.monotonic() - start < 8.0
    assert not omron.transport.is_open  # a failed connect leaves no link open


async def test_link_cut_by_the_device_side_heals(omron: OmronE5CC, sim) -> None:
    sim.disconnect_clients()
    await wait_until(lambda: not omron.transport.is_open)  # the driver saw the link go
    assert await omron.set_setpoint(33.0) == 33.0
    assert sim.connections == 2


# -- faults --------------------------------------------------------------------------


async def _recovers(omron: OmronE5CC) -> None:
    assert await omron.set_setpoint(45.0) == 45.0
    assert await omron.get_setpoint() == 45.0


@pytest.mark.parametrize("kind", ["no_reply", "garbled", "late_reply"])
async def test_link_faults_on_a_write_raise_communication_error(
    omron: OmronE5CC, sim: PhotoreactorSimulator, kind: str
) -> None:
    sim.faults.inject(kind, delay_s=2 * TIMEOUT)
    start = time.monotonic()
    with pytest.raises(CommunicationError):
        await omron.set_setpoint(45.0)
    # Only "it fired rather than hung": a one-sided bound, generous for a loaded machine.
    assert time.monotonic() - start < 5.0
    await wait_until(lambda: connections_served(sim))  # a late reply landed on the old link
    await _recovers(omron)


async def test_query_is_retried_once(omron: OmronE5CC, sim: PhotoreactorSimulator) -> None:
    sim.faults.inject("no_reply")
    assert await omron.get_setpoint() == sim.setpoint_c
    sim.faults.inject("no_reply", count=2)
    with pytest.raises(ReplyTimeout):
        await omron.get_setpoint()
    await _recovers(omron)


async def test_dropped_connection_reconnects(omron: OmronE5CC, sim: PhotoreactorSimulator) -> None:
    sim.faults.inject("drop")
    with pytest.raises(CommunicationError):
        await omron.stop_control()
    connections = sim.connections
    await _recovers(omron)
    assert sim.connections == connections + 1


async def test_device_error_reply_raises_device_fault(omron: OmronE5CC, sim) -> None:
    sim.faults.inject("device_error")
    with pytest.raises(ModbusError) as info:
        await omron.run()
    assert info.value.exception_code == 4
    await _recovers(omron)


async def test_is_reachable(omron: OmronE5CC, sim: PhotoreactorSimulator) -> None:
    assert await omron.is_reachable()
    sim.faults.inject("no_reply")
    assert not await omron.is_reachable()


async def test_modbus_tcp_url(clock: Clock) -> None:
    sim = PhotoreactorSimulator(clock=clock, modbus_tcp=True)
    async with sim, OmronE5CC(sim.url(), timeout_s=TIMEOUT) as omron:
        await omron.set_setpoint(50.0)
        # MBAP: transaction id, protocol 0, length 6, unit 1, then the same PDU.
        assert sim.received[-1][2:] == h("00 00 00 06 01 06 21 03 01 F4")
        assert await omron.get_setpoint() == 50.0


async def test_open_device_by_driver_name(sim: PhotoreactorSimulator) -> None:
    async with open_device("omron-e5cc", sim.url(), timeout_s=TIMEOUT, name="jacket") as omron:
        assert isinstance(omron, OmronE5CC)
        assert omron.name == "jacket"
        assert await omron.get_temperature() == pytest.approx(sim.temperature_c, abs=0.3)


async def test_serial_options_on_rtu_over_tcp(sim: PhotoreactorSimulator) -> None:
    # 8E1 as on the controller's RS-485 port; socket:// ignores them but they must parse.
    url = sim.url() + "&baudrate=9600&parity=E"
    async with OmronE5CC(url, timeout_s=TIMEOUT) as omron:
        assert await omron.set_setpoint(50.0) == 50.0
        assert sim.received[-1] == WRITE_SP_500
