"""ModbusLedSource and ModbusPhotoreactor against the photoreactor simulator (devices.md §8)."""

from __future__ import annotations

import math
import time
import types
from collections.abc import AsyncIterator

import pytest
from wire import connections_served, h, rtu, wait_until

from robochem.clock import Clock
from robochem.drivers import open_device
from robochem.drivers.errors import CommunicationError, DeviceFault, SetpointRejected
from robochem.drivers.led import ModbusLedSource, ModbusPhotoreactor
from robochem.drivers.transport import ModbusError
from robochem.simulator.modbus_reactor import PhotoreactorSimulator

# Reply timeout 0.6 s, not 0.3 s: a healthy reply can miss 0.3 s on the loaded 2-core CI
# machine (Chemyx did once, 25 Nov 2026). The late-reply faults stay well past it.
TIMEOUT = 0.6


LED_ON = h("01 06 30 00 00 01 47 0A")
LED_OFF = h("01 06 30 00 00 00 86 CA")
LED_SP_50 = h("01 06 30 01 01 F4 D7 1D")
READ_LED_BLOCK = h("01 03 30 00 00 0A CA CD")
READ_FLUX = h("01 03 30 10 00 02 CA CE")
WATCHDOG_5 = h("01 06 30 08 00 05 C7 0B")
FAN_ON = rtu("01 06 30 05 00 01")
STOP = h("01 06 00 00 01 01 49 9A")


@pytest.fixture(autouse=True)
def _fast_socket_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyserial's socket:// close() sleeps 0.3 s "for quick reconnects"; not needed here."""
    from serial.urlhandler import protocol_socket

    monkeypatch.setattr(protocol_socket, "time", types.SimpleNamespace(sleep=lambda s: None))


@pytest.fixture
def clock() -> Clock:
    # The heartbeat and the watchdog count wall seconds; x2 makes the 0.5 s LED ramp quick.
    return Clock(speed=2.0)


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[PhotoreactorSimulator]:
    async with PhotoreactorSimulator(clock=clock) as server:
        yield server


@pytest.fixture
async def led(sim: PhotoreactorSimulator, clock: Clock) -> AsyncIterator[ModbusLedSource]:
    async with ModbusLedSource(sim.url(), timeout_s=TIMEOUT, watchdog_s=5, clock=clock) as dev:
        yield dev


async def test_connect_switches_the_light_off(sim: PhotoreactorSimulator, clock: Clock) -> None:
    sim.fan_on = True
    sim.led_enabled = True
    async with ModbusLedSource(sim.url(), timeout_s=TIMEOUT, clock=clock):
        assert sim.received == [LED_OFF]
        assert not sim.led_enabled


async def test_wavelength_expectation(sim: PhotoreactorSimulator, clock: Clock) -> None:
    async with ModbusLedSource(sim.url(), timeout_s=TIMEOUT, wavelength_nm=450, clock=clock):
        assert sim.received[-1] == rtu("01 03 30 03 00 01")
    led = ModbusLedSource(sim.url(), timeout_s=TIMEOUT, wavelength_nm=365, clock=clock)
    with pytest.raises(DeviceFault, match="450 nm, expected 365"):
        await led.connect()
    assert not led.transport.is_open


async def test_set_intensity_golden_frame(led: ModbusLedSource, sim) -> None:
    assert await led.set_intensity(50.0) == 50.0
    assert sim.received[-1] == LED_SP_50
    assert sim.led_setpoint_permille == 500
    assert await led.get_setpoint() == 50.0
    assert await led.set_intensity(33.33) == 33.3  # 0.1 % resolution
    assert await led.set_intensity(100) == 100.0
    assert sim.received[-1] == rtu("01 06 30 01 03 E8")


@pytest.mark.parametrize("value", [-0.1, 100.05, 150, math.inf, math.nan])
async def test_intensity_out_of_range_rejected_before_sending(
    led: ModbusLedSource, sim: PhotoreactorSimulator, value: float
) -> None:
    before = list(sim.received)
    with pytest.raises(SetpointRejected, match=r"0\.0\.\.100\.0") as info:
        await led.set_intensity(value)
    assert sim.received == before
    assert info.value.unit == "%"


async def test_light_on_sequence_and_off(led: ModbusLedSource, sim, clock: Clock) -> None:
    await led.set_intensity(50)
    n = len(sim.received)
    await led.light_on()
    assert sim.received[n:] == [FAN_ON, WATCHDOG_5, rtu("01 06 30 09 00 01"), LED_ON]
    assert sim.led_enabled and sim.fan_on
    await wait_until(lambda: sim.led_output_percent == 50.0)
    assert await led.get_intensity() == 50.0
    await led.light_off()
    assert sim.received[-1] == LED_OFF
    assert not sim.led_enabled
    assert await led.get_intensity() == 0.0


async def test_without_watchdog_no_heartbeat_is_sent(sim, clock: Clock) -> None:
    async with ModbusLedSource(sim.url(), timeout_s=TIMEOUT, watchdog_s=0, clock=clock) as led:
        await led.light_on()
        assert sim.received[1:] == [FAN_ON, LED_ON]
        assert led._heartbeat_task is None  # nothing that would send one
    with pytest.raises(ValueError, match="watchdog_s"):
        ModbusLedSource(sim.url(), watchdog_s=601)


async def test_lamp_status_reads_the_documented_blocks(led: ModbusLedSource, sim) -> None:
    await led.set_intensity(50)
    await led.light_on()
    await wait_until(lambda: sim.led_output_percent == 50.0)
    n = len(sim.received)
    status = await led.lamp_status()
    assert [f for f in sim.received[n:] if f[1] == 3] == [READ_LED_BLOCK, READ_FLUX]
    assert status.enabled
    assert status.intensity_percent == 50.0
    assert status.faults == ()
    assert status.wavelength_nm == 450.0
    assert status.photon_flux_umol_s == pytest.approx(25.0)
    assert status.heatsink_temperature_c == pytest.approx(sim.heatsink_c, abs=0.5)
    assert await led.get_photon_flux() == pytest.approx(25.0)
    assert await led.get_wavelength() == 450.0


async def test_door_open_refusal_names_the_cause(led: ModbusLedSource, sim) -> None:
    sim.set_door_open(True)
    with pytest.raises(DeviceFault, match="door_open") as info:
        await led.light_on()
    assert info.value.code == "interlock"
    assert not sim.led_enabled
    assert led._heartbeat_task is None
    sim.set_door_open(False)
    await led.light_on()
    assert sim.led_enabled


async def test_door_opened_while_on_reported(led: ModbusLedSource, sim) -> None:
    await led.light_on()
    sim.set_door_open(True)
    status = await led.lamp_status()
    assert not status.enabled and status.faults == ("door_open",)
    with pytest.raises(DeviceFault, match="door_open"):
        await led.check_faults()


async def test_latched_lamp_failure_and_clearing(led: ModbusLedSource, sim) -> None:
    await led.light_on()
    sim.set_lamp_failure(True)
    assert (await led.lamp_status()).faults == ("led_fault",)
    with pytest.raises(DeviceFault, match=r"led_fault.*latched"):
        await led.light_on()
    sim.set_lamp_failure(False)
    assert await led.clear_faults() == ()
    await led.light_on()
    assert sim.led_enabled


async def test_overtemperature_switches_off(led: ModbusLedSource, sim) -> None:
    await led.light_on()
    sim.set_led_overtemperature(True)
    status = await led.lamp_status()
    assert not status.enabled and "led_overtemperature" in status.faults
    assert status.heatsink_temperature_c is not None and status.heatsink_temperature_c > 70
    with pytest.raises(DeviceFault, match="led_overtemperature"):
        await led.check_faults()
    sim.set_led_overtemperature(False)
    assert await led.clear_faults() == ()


class ManualWall:
    """The device's wall seconds (its watchdog's), moved by the test."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_heartbeat_keeps_the_light_on_and_a_dead_host_turns_it_off() -> None:
    """Through a real socket at a simulated x1000, the device's watchdog counting wall
    seconds the test moves: each heartbeat restarts its 1 s window, so the light stays on
    over many windows; once the heartbeat stops the device switches the light off when its
    window (of wall time, not 1 ms of simulated time) has passed, and not before."""
    clock = Clock(speed=1000.0)
    wall = ManualWall()
    sim = PhotoreactorSimulator(clock=clock, wall=wall)
    async with (
        sim,
        ModbusLedSource(sim.url(), timeout_s=TIMEOUT, watchdog_s=1, clock=clock) as led,
    ):
        await led.set_intensity(50)
        await led.light_on()
        started = time.monotonic()
        for _ in range(6):  # 6 x 0.9 s: over five windows, each restarted by a beat
            wall.t += 0.9
            assert (await led.lamp_status()).enabled
            beats = sim.heartbeat
            await wait_until(lambda b=beats: sim.heartbeat > b)  # the window restarts now
        assert sim.led_output_percent == 50.0
        # The driver beats three times a window (wall seconds, not simulated ones): six
        # beats take 2 s. A one-sided bound, generous for a loaded machine; a beat per
        # window would take 6 s.
        assert time.monotonic() - started < 5.0
        # The host "crashes": the heartbeat stops without switching the light off.
        assert led._heartbeat_task is not None
        led._heartbeat_task.cancel()
        await wait_until(led._heartbeat_task.done)
        last = sim.heartbeat
        wall.t += 0.95
        assert (await led.lamp_status()).enabled, "tripped before its 1 s window"
        wall.t += 0.1
        status = await led.lamp_status()
        assert not status.enabled and status.faults == ("watchdog_tripped",)
        assert sim.led_output_percent == 0.0 and sim.heartbeat == last


async def test_default_watchdog_is_five_wall_seconds(sim, clock: Clock) -> None:
    async with ModbusLedSource(sim.url(), timeout_s=TIMEOUT, clock=clock) as led:
        await led.light_on()
        assert sim.watchdog_s == 5
        assert WATCHDOG_5 in sim.received


async def test_heartbeat_failure_is_recorded(led: ModbusLedSource, sim) -> None:
    await led.light_on()
    sim.faults.inject("device_error", count=None)  # every reply is exception 04
    await wait_until(lambda: led.heartbeat_error is not None)
    sim.faults.clear()
    with pytest.raises(DeviceFault, match="heartbeat"):
        await led.check_faults()


async def test_disconnect_stops_the_heartbeat(led: ModbusLedSource, sim) -> None:
    await led.light_on()
    task = led._heartbeat_task
    await led.disconnect()
    assert task is not None and task.done()


# -- faults --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["no_reply", "garbled", "late_reply"])
async def test_link_faults_raise_communication_error(
    led: ModbusLedSource, sim: PhotoreactorSimulator, kind: str
) -> None:
    sim.faults.inject(kind, delay_s=2 * TIMEOUT)
    start = time.monotonic()
    with pytest.raises(CommunicationError):
        await led.set_intensity(20)
    # Only "it fired rather than hung": a one-sided bound, generous for a loaded machine.
    assert time.monotonic() - start < 5.0
    await wait_until(lambda: connections_served(sim))  # a late reply landed on the old link
    assert await led.set_intensity(30) == 30.0
    assert await led.get_setpoint() == 30.0


async def test_dropped_connection_reconnects(led: ModbusLedSource, sim) -> None:
    sim.faults.inject("drop")
    with pytest.raises(CommunicationError):
        await led.light_off()
    assert await led.set_intensity(30) == 30.0
    assert sim.connections >= 2  # a new connection (pymodbus may also redial by itself)


async def test_device_error_reply(led: ModbusLedSource, sim) -> None:
    sim.faults.inject("device_error")
    with pytest.raises(ModbusError) as info:
        await led.set_intensity(10)
    assert info.value.exception_code == 4
    assert await led.set_intensity(10) == 10.0


# -- the photoreactor box --------------------------------------------------------------


@pytest.fixture
async def reactor(sim: PhotoreactorSimulator, clock: Clock) -> AsyncIterator[ModbusPhotoreactor]:
    async with ModbusPhotoreactor(sim.url(), timeout_s=TIMEOUT, clock=clock) as box:
        yield box


async def test_photoreactor_shares_one_connection(reactor: ModbusPhotoreactor, sim) -> None:
    assert reactor.light.transport is reactor.temperature.transport is reactor.transport
    assert sim.received[0] == LED_OFF  # the light is made safe first
    assert sim.received[-1] == STOP
    await reactor.light.set_intensity(40)
    await reactor.temperature.set_setpoint(35)
    await reactor.light.light_on()
    await reactor.temperature.run()
    assert sim.led_enabled and sim.running and sim.setpoint_c == 35.0
    assert sim.connections == 1


async def test_photoreactor_emergency_stop_light_first(reactor: ModbusPhotoreactor, sim) -> None:
    await reactor.light.light_on()
    await reactor.temperature.run()
    n = len(sim.received)
    await reactor.emergency_stop()
    assert sim.received[n:] == [LED_OFF, STOP]
    assert not sim.led_enabled and not sim.running


async def test_open_device_names(sim: PhotoreactorSimulator, clock: Clock) -> None:
    async with open_device("modbus-photoreactor", sim.url(), clock=clock, name="r1") as box:
        assert isinstance(box, ModbusPhotoreactor)
        assert box.light.name == "r1.light" and box.temperature.name == "r1.temperature"
        assert await box.is_reachable()
        assert 0 < await box.temperature.get_temperature() < 60
    async with open_device("modbus-led", sim.url(), clock=clock) as led:
        assert isinstance(led, ModbusLedSource)
        assert not (await led.lamp_status()).enabled


async def test_modbus_tcp_photoreactor(clock: Clock) -> None:
    sim = PhotoreactorSimulator(clock=clock, modbus_tcp=True)
    async with sim, ModbusPhotoreactor(sim.url(), timeout_s=TIMEOUT, clock=clock) as box:
        await box.light.set_intensity(50)
        assert sim.received[-1][2:] == h("00 00 00 06 01 06 30 01 01 F4")
        await box.light.light_on()
        assert (await box.light.lamp_status()).enabled
