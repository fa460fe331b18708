"""Chemyx Fusion driver against its simulator over socket://."""

from __future__ import annotations

import pytest

from robochem.drivers.base import PumpState
from robochem.drivers.chemyx import ChemyxFusionPump, EchoMismatch
from robochem.drivers.errors import (
    ConnectionLost,
    DeviceError,
    DeviceFault,
    GarbledReply,
    ReplyTimeout,
    SetpointRejected,
)
from robochem.drivers.registry import open_device
from robochem.simulator.base import FaultKind
from robochem.simulator.chemyx import PAUSED, ChemyxSimulator

# Reply timeout: 0.3 s was missed once by a healthy reply on the loaded 2-core CI machine
# (25 Nov 2026); the late-reply fault below stays well past it.
T = 1.0


def sent(raw: list[bytes]) -> list[bytes]:
    """Requests as the driver wrote them. The simulator ends a request at CR, so each LF is
    recorded at the start of the next request (and the last one is still unread)."""
    stream = b"".join(raw).removeprefix(b"\n") + b"\n"
    return [part + b"\r\n" for part in stream.split(b"\r\n") if part]


async def _setup(running, manual_clock, **kw):
    sim = await ChemyxSimulator(clock=manual_clock).start()
    running.append(sim)
    pump = ChemyxFusionPump(sim.url(), timeout_s=T, **kw)
    await pump.connect()
    running.append(pump.transport)
    return sim, pump


async def test_connect_sequence(running, manual_clock, raw_requests):
    sim = await ChemyxSimulator(clock=manual_clock).start()
    running.append(sim)
    raw = raw_requests(sim)
    sim.units = 2
    sim.state = 1  # left running
    async with open_device(
        "chemyx-fusion", sim.url(), diameter_mm=12.06, syringe_volume_ml=5.0
    ) as pump:
        assert pump.limits is not None and pump.limits["max_rate"] > 1
    assert sent(raw) == [
        b"stop\r\n",
        b"set units 0\r\n",
        b"set diameter 12.060\r\n",
        b"read limit parameter\r\n",
    ]
    assert sim.units == 0 and sim.state == 0 and sim.diameter_mm == 12.06


async def test_rate_echo_and_limits(running, manual_clock, raw_requests):
    sim, pump = await _setup(running, manual_clock, diameter_mm=14.567)
    raw = raw_requests(sim)
    assert await pump.set_flow_rate(1.5) == 1.5
    assert sent(raw) == [b"set rate 1.5\r\n"]
    assert sim.rate_ml_min == 1.5
    assert await pump.get_flow_rate() == 1.5
    before = list(sim.received)
    for bad in (pump.limits["max_rate"] * 1.01, pump.limits["min_rate"] / 2, -1.0):
        with pytest.raises(SetpointRejected, match="mL/min"):
            await pump.set_flow_rate(bad)
    assert sim.received == before


async def test_echo_mismatch_raises(running, manual_clock):
    sim, pump = await _setup(running, manual_clock, diameter_mm=14.567)
    pump.limits["max_rate"] = 1e6  # stale limits: the pump disagrees
    with pytest.raises(EchoMismatch) as info:
        await pump.set_flow_rate(500.0)
    assert "echoed" in str(info.value) and isinstance(info.value, DeviceFault)
    assert sim.rate_ml_min < 500.0


async def test_diameter_out_of_range_rejected_before_sending(running, manual_clock):
    sim, pump = await _setup(running, manual_clock)
    before = list(sim.received)
    for bad in (0.1, 40.001, float("nan")):
        with pytest.raises(SetpointRejected, match="mm"):
            await pump.set_syringe(bad, 5.0)
    assert sim.received == before


async def test_closed_loop_dispense_polls_status(running, manual_clock, raw_requests):
    sim, pump = await _setup(
        running, manual_clock, diameter_mm=14.567, syringe_volume_ml=10.0, poll_interval_s=2.0
    )
    raw = raw_requests(sim)
    t0 = manual_clock.now()
    done = await pump.dispense(0.5, 1.0)
    assert done == pytest.approx(0.5, abs=1e-6)
    assert sent(raw)[:3] == [b"set rate 1\r\n", b"set volume 0.5\r\n", b"start\r\n"]
    polls = sent(raw).count(b"pump status\r\n")
    assert 14 <= polls <= 17  # 30 s run polled every 2 s, not a blind sleep
    assert sent(raw)[-1] == b"dispensed volume\r\n"
    assert 30 <= manual_clock.now() - t0 <= 34
    assert sim.total_infused_ml == pytest.approx(0.5)


async def test_withdraw_sends_negative_volume(running, manual_clock, raw_requests):
    sim, pump = await _setup(running, manual_clock, diameter_mm=14.567, syringe_volume_ml=10.0)
    raw = raw_requests(sim)
    await pump.set_target_volume(0.25)
    await pump.withdraw()
    assert sent(raw)[-2:] == [b"set volume -0.25\r\n", b"start\r\n"]
    assert sim.flow_ml_min < 0
    manual_clock.advance(60)
    assert (await pump.status()).state is PumpState.STOPPED
    assert await pump.get_dispensed_volume() == pytest.approx(0.25)
    assert sim.total_infused_ml == pytest.approx(-0.25)


async def test_volume_beyond_syringe_rejected(running, manual_clock):
    sim, pump = await _setup(running, manual_clock, diameter_mm=14.567, syringe_volume_ml=10.0)
    before = list(sim.received)
    with pytest.raises(SetpointRejected):
        await pump.set_target_volume(10.5)
    pump.target_ml = None
    pump.syringe_volume_ml = None
    with pytest.raises(SetpointRejected):
        await pump.infuse()  # nothing tells it how much to deliver
    assert sim.received == before


async def test_status_codes(running, manual_clock):
    sim, pump = await _setup(running, manual_clock, diameter_mm=14.567, syringe_volume_ml=10.0)
    await pump.set_flow_rate(1.0)
    await pump.infuse()
    assert (await pump.status()).state is PumpState.RUNNING
    await pump.pause()
    assert (await pump.status()).state is PumpState.PAUSED
    await pump.stop()
    assert (await pump.status()).state is PumpState.STOPPED
    sim.delay_min = 1.0
    await pump.infuse()
    status = await pump.status()
    assert status.state is PumpState.RUNNING and status.detail == "delayed"
    sim.stall()
    with pytest.raises(DeviceFault) as info:
        await pump.status()
    assert info.value.code == "stall"


async def test_stall_during_dispense(running, manual_clock):
    sim, pump = await _setup(running, manual_clock, diameter_mm=14.567, syringe_volume_ml=10.0)
    real = sim.handle
    polls = 0

    def stall_on_third_poll(request: bytes) -> bytes | None:
        nonlocal polls
        if request == b"pump status":
            polls += 1
            if polls == 3:
                sim.stall()
        return real(request)

    sim.handle = stall_on_third_poll
    with pytest.raises(DeviceFault, match="stalled"):
        await pump.dispense(1.0, 1.0)


async def test_short_delivery_and_run_timeout(running, manual_clock, raw_requests):
    sim, pump = await _setup(running, manual_clock, diameter_mm=14.567, syringe_volume_ml=10.0)
    real = sim.handle

    def shortened(request: bytes) -> bytes | None:
        reply = real(request)
        if request == b"start":
            sim.volume_ml = 0.4  # the pump ends early
        return reply

    sim.handle = shortened
    with pytest.raises(DeviceFault) as info:
        await pump.dispense(0.5, 1.0)
    assert info.value.code == "short-delivery"

    def stuck(request: bytes) -> bytes | None:
        reply = real(request)
        if request == b"start":
            sim.state = PAUSED  # never finishes
        return reply

    sim.handle = stuck
    raw = raw_requests(sim)
    with pytest.raises(DeviceFault) as info:
        await pump.dispense(0.5, 1.0, timeout_s=20)
    assert info.value.code == "run-timeout"
    assert sent(raw)[-1] == b"stop\r\n"


async def test_invalid_command_reply(running, manual_clock):
    _, pump = await _setup(running, manual_clock)
    with pytest.raises(DeviceFault, match="Invalid command"):
        await pump.command("frobnicate")
    with pytest.raises(DeviceError):
        await pump.get_flow_rate()  # never set: no rate query exists


async def test_faults(running, manual_clock):
    sim, pump = await _setup(running, manual_clock, diameter_mm=14.567, syringe_volume_ml=10.0)
    sim.faults.inject(FaultKind.NO_REPLY)
    with pytest.raises(ReplyTimeout):
        await pump.stop()
    sim.faults.inject(FaultKind.NO_REPLY)
    assert await pump.pump_status() == 0  # queries are retried once
    sim.faults.inject(FaultKind.LATE_REPLY, delay_s=2.5 * T)
    with pytest.raises(ReplyTimeout):
        await pump.stop()
    sim.faults.inject(FaultKind.DROP)
    with pytest.raises(ConnectionLost):
        await pump.stop()
    sim.faults.inject(FaultKind.GARBLED, count=None)
    with pytest.raises((GarbledReply, ReplyTimeout, EchoMismatch)):
        await pump.set_flow_rate(1.0)
    sim.faults.clear()
    assert await pump.set_flow_rate(1.0) == 1.0


async def test_echo_of_another_command_is_garbled(running, manual_clock):
    sim, pump = await _setup(running, manual_clock)
    sim.handle = lambda request: b"pump status\r\n0\r\n"
    with pytest.raises(GarbledReply, match="echo"):
        await pump.stop()
