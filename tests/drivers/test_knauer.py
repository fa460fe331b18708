"""Knauer AZURA pump and valve drivers against their simulators over real sockets."""

from __future__ import annotations

import math
import time

import pytest

from robochem.drivers.base import PumpState
from robochem.drivers.errors import (
    ConnectionLost,
    DeviceFault,
    GarbledReply,
    ReplyTimeout,
    SetpointRejected,
)
from robochem.drivers.knauer import KnauerAzuraPump, KnauerError, KnauerValve
from robochem.drivers.registry import driver_class, open_device
from robochem.simulator.base import FaultKind
from robochem.simulator.knauer import KnauerPumpSimulator, KnauerValveSimulator

# Reply timeout 0.6 s, not 0.3 s: a healthy reply can miss 0.3 s on the loaded 2-core CI
# machine (Chemyx did once, 25 Nov 2026). The late-reply faults stay well past it.
T = 0.6


async def _pump(running, manual_clock, *, url_scheme="tcp", sim_kw=None, **driver_kw):
    sim = await KnauerPumpSimulator(clock=manual_clock, **(sim_kw or {})).start()
    running.append(sim)
    pump = KnauerAzuraPump(sim.url(url_scheme), timeout_s=T, **driver_kw)
    await pump.connect()
    running.append(pump.transport)
    return sim, pump


async def test_connect_sends_safe_init_sequence(running, manual_clock, raw_requests):
    sim = await KnauerPumpSimulator(clock=manual_clock).start()
    running.append(sim)
    raw = raw_requests(sim)
    sim.running = True  # e.g. left running by an earlier session
    pump = KnauerAzuraPump(sim.url("tcp"))
    await pump.connect()
    assert raw == [b"HEADTYPE?\n\r", b"REMOTE\n\r", b"OFF\n\r", b"ERRORS?\n\r"]
    assert sim.running is False and sim.remote is True
    assert pump.head_ml == 10
    await pump.disconnect()


async def test_connect_applies_pressure_limits(running, manual_clock, raw_requests):
    sim = await KnauerPumpSimulator(clock=manual_clock, head_ml=50).start()
    running.append(sim)
    raw = raw_requests(sim)
    async with KnauerAzuraPump(sim.url("tcp"), max_pressure_bar=100, min_pressure_bar=5):
        pass
    assert b"PMAX50:100\n\r" in raw and b"PMIN50:5\n\r" in raw
    assert sim.pmax[50] == 100 and sim.pmin[50] == 5


async def test_open_device_through_registry_over_serial_url(running, manual_clock):
    sim = await KnauerPumpSimulator(clock=manual_clock, head_ml=50).start()
    running.append(sim)
    async with open_device("knauer-azura", sim.url("socket"), head_ml=50) as pump:
        assert isinstance(pump, KnauerAzuraPump)
        assert await pump.set_flow_rate(25.0) == 25.0
        assert sim.flow_ul_min == 25000


@pytest.mark.parametrize(
    ("driver", "cls"),
    [
        ("knauer-azura", "KnauerAzuraPump"),
        ("knauer-valve", "KnauerValve"),
        ("harvard-elite11", "Elite11Pump"),
        ("chemyx-fusion", "ChemyxFusionPump"),
    ],
)
def test_registry_names_match_classes(driver, cls):
    found = driver_class(driver)
    assert found.__name__ == cls and found.driver_name == driver
    with pytest.raises(TypeError):
        found("tcp://127.0.0.1:1", no_such_option=1)


async def test_head_mismatch_is_a_fault(running, manual_clock):
    sim = await KnauerPumpSimulator(clock=manual_clock, head_ml=10).start()
    running.append(sim)
    pump = KnauerAzuraPump(sim.url("tcp"), head_ml=50)
    with pytest.raises(DeviceFault, match="50 ml head"):
        await pump.connect()


async def test_flow_is_integer_microlitres_and_returns_value_set(
    running, manual_clock, raw_requests
):
    sim, pump = await _pump(running, manual_clock)
    raw = raw_requests(sim)
    assert await pump.set_flow_rate(1.0) == 1.0
    assert raw == [b"FLOW:1000\n\r", b"FLOW?\n\r"]
    # 1 µl/min resolution: 12.3456 µl/min is sent as 12 and 0.012 mL/min comes back.
    assert await pump.set_flow_rate(0.0123456) == pytest.approx(0.012)
    assert raw[-2] == b"FLOW:12\n\r"
    assert sim.flow_ul_min == 12


async def test_start_stop_status(running, manual_clock, raw_requests):
    sim, pump = await _pump(running, manual_clock)
    raw = raw_requests(sim)
    await pump.set_flow_rate(2.0)
    await pump.start()
    assert sim.running and raw[-1] == b"ON\n\r"
    status = await pump.status()
    assert status.state is PumpState.RUNNING
    assert status.flow_rate_ml_min == 2.0
    assert status.pressure_bar == pytest.approx(sim.pressure_bar, abs=0.5)
    await pump.stop()
    assert not sim.running and raw[-1] == b"OFF\n\r"
    assert (await pump.status()).state is PumpState.STOPPED
    await pump.start()
    await pump.emergency_stop()
    assert not sim.running and raw[-1] == b"OFF\n\r"


@pytest.mark.parametrize(
    ("head", "bad"), [(10, 10.001), (10, -0.001), (50, 50.001), (10, math.nan), (10, "1")]
)
async def test_flow_out_of_range_rejected_before_sending(running, manual_clock, head, bad):
    sim, pump = await _pump(running, manual_clock, sim_kw={"head_ml": head})
    before = list(sim.received)
    with pytest.raises(SetpointRejected) as info:
        await pump.set_flow_rate(bad)
    assert sim.received == before
    assert "mL/min" in str(info.value) and f"{head}.0" in info.value.allowed


async def test_pressure_is_bar_not_tenth(running, manual_clock, raw_requests):
    sim, pump = await _pump(running, manual_clock)
    raw = raw_requests(sim)
    sim.pressure_source = lambda flow: 123.0
    assert await pump.get_pressure() == 123.0  # flowchem would say 12.3
    assert raw == [b"PRESSURE?\n\r"]


async def test_default_pressure_rises_with_flow(running, manual_clock):
    _sim, pump = await _pump(running, manual_clock)
    assert await pump.get_pressure() == 0.0
    await pump.set_flow_rate(1.0)
    await pump.start()
    p1 = await pump.get_pressure()
    await pump.set_flow_rate(5.0)
    assert await pump.get_pressure() > p1 > 0


async def test_p21s_has_no_pressure_and_sends_nothing(running, manual_clock):
    sim, pump = await _pump(running, manual_clock, sim_kw={"model": "P2.1S"}, model="P2.1S")
    before = list(sim.received)
    assert await pump.get_pressure() is None
    assert sim.received == before
    assert (await pump.status()).pressure_bar is None


async def test_error_1_from_a_p21s_queried_for_pressure(running, manual_clock):
    # Driver configured as P4.1S on a P2.1S: the pump answers ERROR:1.
    _sim, pump = await _pump(running, manual_clock, sim_kw={"model": "P2.1S"})
    with pytest.raises(KnauerError) as info:
        await pump.get_pressure()
    assert info.value.code == "1"
    assert await pump.get_flow_rate() == 0.0  # the link still works


async def test_error_2_refused_setpoint(running, manual_clock):
    sim, pump = await _pump(running, manual_clock)
    sim.faults.inject(FaultKind.DEVICE_ERROR)
    with pytest.raises(KnauerError) as info:
        await pump.set_flow_rate(1.0)
    assert info.value.code == "2" and isinstance(info.value, DeviceFault)
    assert await pump.set_flow_rate(1.0) == 1.0


async def test_pressure_limit_setters(running, manual_clock, raw_requests):
    sim, pump = await _pump(running, manual_clock)
    raw = raw_requests(sim)
    assert await pump.set_max_pressure(250) == 250
    assert await pump.set_min_pressure(10) == 10
    assert raw == [b"PMAX10:250\n\r", b"PMAX10?\n\r", b"PMIN10:10\n\r", b"PMIN10?\n\r"]
    assert sim.pmax[10] == 250 and sim.pmin[10] == 10
    before = list(sim.received)
    for bad in (401, -1):
        with pytest.raises(SetpointRejected, match="bar"):
            await pump.set_max_pressure(bad)
        with pytest.raises(SetpointRejected, match="bar"):
            await pump.set_min_pressure(bad)
    assert sim.received == before


async def test_pressure_limits_of_the_50_ml_head(running, manual_clock, raw_requests):
    sim, pump = await _pump(running, manual_clock, sim_kw={"head_ml": 50})
    raw = raw_requests(sim)
    with pytest.raises(SetpointRejected, match=r"0\.\.150"):
        await pump.set_max_pressure(151)
    assert await pump.set_max_pressure(150) == 150
    assert raw[0] == b"PMAX50:150\n\r"


async def test_pmax_trip_latches_and_is_a_fault(running, manual_clock):
    sim, pump = await _pump(running, manual_clock)
    await pump.set_max_pressure(100)
    await pump.set_flow_rate(1.0)
    await pump.start()
    assert (await pump.status()).state is PumpState.RUNNING
    sim.pressure_offset_bar = 200.0  # a blockage downstream
    with pytest.raises(DeviceFault, match="error"):
        await pump.status()
    assert not sim.running and sim.tripped == "PMAX"
    sim.pressure_offset_bar = 0.0
    with pytest.raises(DeviceFault):  # latched until acknowledged
        await pump.status()
    with pytest.raises(KnauerError):  # the pump refuses ON while latched
        await pump.start()
    await pump.clear_fault()
    assert (await pump.status()).state is PumpState.STOPPED
    await pump.start()
    assert sim.running


async def test_pmin_trip_after_30_simulated_seconds(running, manual_clock):
    sim, pump = await _pump(running, manual_clock)
    sim.pressure_source = lambda flow: 3.0  # e.g. a leak: pressure never builds
    await pump.set_min_pressure(20)
    await pump.set_flow_rate(1.0)
    await pump.start()
    manual_clock.advance(29)
    assert (await pump.status()).state is PumpState.RUNNING
    manual_clock.advance(2)
    with pytest.raises(DeviceFault):
        await pump.status()
    assert sim.tripped == "PMIN" and not sim.running


async def test_query_retried_once_after_no_reply(running, manual_clock):
    sim, pump = await _pump(running, manual_clock)
    sim.faults.inject(FaultKind.NO_REPLY)
    n = len(sim.received)
    assert await pump.get_flow_rate() == 0.0
    assert sim.received[n:] == [b"FLOW?", b"FLOW?"]


async def test_set_is_not_retried_no_reply_times_out(running, manual_clock):
    sim, pump = await _pump(running, manual_clock)
    sim.faults.inject(FaultKind.NO_REPLY)
    n = len(sim.received)
    t0 = time.monotonic()
    with pytest.raises(ReplyTimeout):
        await pump.start()
    # Only "it fired rather than hung": a one-sided bound, generous for a loaded machine.
    assert time.monotonic() - t0 < 5.0
    assert sim.received[n:] == [b"ON"]
    await pump.stop()
    assert not sim.running


async def test_late_reply_times_out_then_recovers(running, manual_clock):
    sim, pump = await _pump(running, manual_clock)
    sim.faults.inject(FaultKind.LATE_REPLY, delay_s=2.5 * T)
    with pytest.raises(ReplyTimeout):
        await pump.stop()
    assert await pump.set_flow_rate(0.5) == 0.5


async def test_garbled_reply(running, manual_clock):
    sim, pump = await _pump(running, manual_clock)
    sim.faults.inject(FaultKind.GARBLED, count=2)  # both tries of a query
    with pytest.raises((GarbledReply, ReplyTimeout)):
        await pump.get_flow_rate()
    sim.faults.inject(FaultKind.GARBLED, count=None)
    with pytest.raises((GarbledReply, ReplyTimeout)):
        await pump.stop()
    sim.faults.clear()
    assert await pump.get_flow_rate() == 0.0


async def test_reconnect_after_drop(running, manual_clock):
    sim, pump = await _pump(running, manual_clock)
    sim.faults.inject(FaultKind.DROP)
    with pytest.raises(ConnectionLost):
        await pump.start()
    await pump.start()  # reopens the link
    assert sim.running


async def test_unreachable_port(manual_clock):
    sim = await KnauerPumpSimulator(clock=manual_clock).start()
    url = sim.url("tcp")
    await sim.stop()
    pump = KnauerAzuraPump(url, timeout_s=T)
    assert await pump.is_reachable() is False
    with pytest.raises(ConnectionLost):
        await pump.connect()


# -- valve ---------------------------------------------------------------------------


async def _valve(running, manual_clock, valve_type="6", **kw):
    sim = await KnauerValveSimulator(clock=manual_clock, valve_type=valve_type).start()
    running.append(sim)
    valve = KnauerValve(sim.url("tcp"), timeout_s=T, **kw)
    await valve.connect()
    running.append(valve.transport)
    return sim, valve


async def test_valve_connect_reads_type_and_position(running, manual_clock, raw_requests):
    sim = await KnauerValveSimulator(clock=manual_clock, valve_type="12").start()
    running.append(sim)
    raw = raw_requests(sim)
    assert sim.url().startswith("tcp://")  # a LAN device by default
    async with open_device("knauer-valve", sim.url()) as valve:
        assert valve.valve_type == "12"
        assert valve.positions == tuple(str(i) for i in range(1, 13))
    assert raw == [b"T\r\n", b"P\r\n"]
    assert sim.moves == 0  # connecting never moves the valve


@pytest.mark.parametrize("valve_type", ["6", "12", "16"])
async def test_valve_port_numbers_are_physical_ports(
    running, manual_clock, raw_requests, valve_type
):
    sim, valve = await _valve(running, manual_clock, valve_type)
    raw = raw_requests(sim)
    for port in range(int(valve_type), 0, -1):  # highest first: no off-by-one hides
        assert await valve.set_position(port) == str(port)
        assert sim.position == str(port)  # the drive's physical port
        assert raw[-2:] == [f"{port}\r\n".encode(), b"P\r\n"]
        assert await valve.get_position() == str(port)
    assert await valve.set_position("3") == "3"


async def test_injection_valve_load_and_inject(running, manual_clock, raw_requests):
    sim, valve = await _valve(running, manual_clock, "LI")
    raw = raw_requests(sim)
    assert await valve.set_position("inject") == "I"
    assert sim.position == "I" and raw[0] == b"I\r\n"
    assert await valve.set_position("L") == "L"
    assert sim.position == "L"
    before = list(sim.received)
    for bad in (1, "2", "X"):
        with pytest.raises(SetpointRejected):
            await valve.set_position(bad)
    assert sim.received == before


@pytest.mark.parametrize("bad", [0, 7, "A", True, -1])
async def test_valve_position_out_of_range_rejected(running, manual_clock, bad):
    sim, valve = await _valve(running, manual_clock, "6")
    before = list(sim.received)
    with pytest.raises(SetpointRejected, match=r"1, 2, 3, 4, 5, 6"):
        await valve.set_position(bad)
    assert sim.received == before


@pytest.mark.parametrize("code", range(7))
async def test_valve_errors_are_raised(running, manual_clock, code):
    sim, valve = await _valve(running, manual_clock, "6")
    sim.next_move_error = code
    with pytest.raises(DeviceFault) as info:
        await valve.set_position(4)
    assert info.value.code == f"E{code}"
    assert sim.position == "1"
    assert await valve.set_position(4) == "4"  # works again


async def test_valve_question_mark_retried_once(running, manual_clock):
    sim, valve = await _valve(running, manual_clock, "6")
    sim.refuse_next_moves = 1
    assert await valve.set_position(2) == "2"
    sim.refuse_next_moves = 2
    with pytest.raises(DeviceFault, match="did not accept"):
        await valve.set_position(3)
    assert sim.position == "2"


async def test_valve_faults(running, manual_clock):
    sim, valve = await _valve(running, manual_clock, "6")
    sim.faults.inject(FaultKind.NO_REPLY)
    with pytest.raises(ReplyTimeout):
        await valve.set_position(5)
    sim.faults.inject(FaultKind.DROP)
    with pytest.raises(ConnectionLost):
        await valve.set_position(5)
    sim.faults.inject(FaultKind.DEVICE_ERROR)
    with pytest.raises(DeviceFault):
        await valve.set_position(5)
    assert await valve.set_position(5) == "5"


async def test_valve_type_mismatch(running, manual_clock):
    sim = await KnauerValveSimulator(clock=manual_clock, valve_type="LI").start()
    running.append(sim)
    valve = KnauerValve(sim.url("tcp"), valve_type="6")
    with pytest.raises(DeviceFault, match="VALVE LI"):
        await valve.connect()
