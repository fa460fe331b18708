"""Harvard Pump 11 Elite driver against its simulator over socket://, daisy chain included."""

from __future__ import annotations

import asyncio
import math

import pytest

from robochem.drivers.base import PumpState
from robochem.drivers.errors import (
    ConnectionLost,
    DeviceFault,
    GarbledReply,
    ReplyTimeout,
    SetpointRejected,
)
from robochem.drivers.harvard import Elite11CommandError, Elite11Pump
from robochem.drivers.registry import open_device
from robochem.drivers.transport import open_byte_transport
from robochem.simulator.base import FaultKind
from robochem.simulator.harvard import Elite11Simulator

# Reply timeout 0.6 s, not 0.3 s: a healthy reply can miss 0.3 s on the loaded 2-core CI
# machine (Chemyx did once, 25 Nov 2026). The late-reply faults stay well past it.
T = 0.6


async def _setup(running, manual_clock, *, addresses=(0,), always_prefix=False, **kw):
    sim = await Elite11Simulator(
        clock=manual_clock, addresses=addresses, always_prefix=always_prefix
    ).start()
    running.append(sim)
    pump = Elite11Pump(sim.url(), timeout_s=T, address=addresses[0], **kw)
    await pump.connect()
    running.append(pump.transport)
    return sim, pump


async def test_connect_sequence(running, manual_clock, raw_requests):
    sim = await Elite11Simulator(clock=manual_clock).start()
    running.append(sim)
    raw = raw_requests(sim)
    sim.pumps[0].direction = "I"  # left infusing
    async with open_device(
        "harvard-elite11", sim.url(), diameter_mm=14.567, syringe_volume_ml=10
    ) as pump:
        assert pump.diameter_mm == 14.567 and pump.syringe_volume_ml == 10.0
        low, high = pump.rate_limits_ml_min
        assert low < 1e-4 and 20 < high < 30
    assert raw == [
        b"stop\r",
        b"ver\r",
        b"diameter 14.5670\r",
        b"diameter\r",
        b"svolume 10 m\r",
        b"svolume\r",
        b"irate lim\r",
    ]
    assert not sim.pumps[0].running


async def test_set_flow_rate_units_and_readback(running, manual_clock, raw_requests):
    sim, pump = await _setup(running, manual_clock)
    raw = raw_requests(sim)
    assert await pump.set_flow_rate(1.5) == 1.5
    assert raw == [b"irate 1.5 m/m\r", b"irate\r"]
    assert await pump.set_flow_rate(0.0125) == pytest.approx(0.0125)
    assert raw[-2] == b"irate 12.5 u/m\r"
    assert sim.pumps[0].irate_ml_min == pytest.approx(0.0125)
    assert await pump.set_withdraw_rate(2.0) == 2.0
    assert raw[-2:] == [b"wrate 2 m/m\r", b"wrate\r"]


async def test_rate_limits_follow_the_diameter_and_reject(running, manual_clock):
    sim, pump = await _setup(running, manual_clock, diameter_mm=14.567, syringe_volume_ml=10)
    assert await pump.set_flow_rate(20.0) == 20.0
    await pump.set_syringe(4.78, 1.0)  # a 1 ml syringe: max ~2.85 ml/min
    low, high = pump.rate_limits_ml_min
    assert 2.5 < high < 3.0
    before = list(sim.received)
    with pytest.raises(SetpointRejected) as info:
        await pump.set_flow_rate(5.0)
    assert info.value.unit == "mL/min" and str(high) in info.value.allowed
    with pytest.raises(SetpointRejected):
        await pump.set_flow_rate(low / 2)
    with pytest.raises(SetpointRejected):
        await pump.set_flow_rate(math.nan)
    assert sim.received == before
    assert sim.pumps[0].irate_ml_min == 20.0  # not clamped to anything
    assert await pump.set_flow_rate(high) == pytest.approx(high)


async def test_syringe_ranges_rejected_before_sending(running, manual_clock):
    sim, pump = await _setup(running, manual_clock)
    before = list(sim.received)
    for diameter, volume in ((0.5, 1.0), (33.5, 10.0), (10.0, 0.0), (10.0, 500.0)):
        with pytest.raises(SetpointRejected):
            await pump.set_syringe(diameter, volume)
    with pytest.raises(SetpointRejected):
        await pump.set_target_volume(-1)
    assert sim.received == before


async def test_stale_limits_get_argument_error_from_pump(running, manual_clock):
    sim, pump = await _setup(running, manual_clock)
    pump.rate_limits_ml_min = (0.0, 1000.0)  # as if the diameter changed on the keypad
    with pytest.raises(Elite11CommandError) as info:
        await pump.set_flow_rate(500.0)
    assert info.value.code == "argument-error" and "Out of range" in str(info.value)
    assert sim.pumps[0].irate_ml_min == 1.0


async def test_command_error_raised(running, manual_clock):
    _, pump = await _setup(running, manual_clock)
    with pytest.raises(Elite11CommandError) as info:
        await pump.command("frobnicate")
    assert info.value.code == "command-error" and "Unknown command" in str(info.value)
    assert await pump.get_flow_rate() == 1.0


async def test_infuse_to_target_on_the_shared_clock(running, manual_clock, raw_requests):
    sim, pump = await _setup(running, manual_clock, diameter_mm=14.567, syringe_volume_ml=10)
    raw = raw_requests(sim)
    await pump.clear_volumes()
    await pump.set_flow_rate(1.0)
    await pump.set_target_volume(0.5)
    assert raw[-1] == b"tvolume 500 u\r"
    assert await pump.get_target_volume() == pytest.approx(0.5)
    await pump.infuse()
    assert raw[-1] == b"irun\r"
    manual_clock.advance(12)
    assert await pump.get_dispensed_volume() == pytest.approx(0.2, abs=1e-4)
    status = await pump.status()
    assert status.state is PumpState.RUNNING and status.flow_rate_ml_min == pytest.approx(1.0)
    manual_clock.advance(60)
    status = await pump.status()
    assert status.state is PumpState.TARGET_REACHED
    assert await pump.get_dispensed_volume() == pytest.approx(0.5, abs=1e-4)
    await pump.set_target_volume(None)
    assert raw[-1] == b"ctvolume\r"
    assert await pump.get_target_volume() is None


async def test_withdraw_and_stop(running, manual_clock):
    sim, pump = await _setup(running, manual_clock)
    await pump.set_withdraw_rate(3.0)
    await pump.withdraw()
    assert sim.pumps[0].direction == "W"
    manual_clock.advance(20)
    assert await pump.get_withdrawn_volume() == pytest.approx(1.0, abs=1e-4)
    await pump.stop()
    assert not sim.pumps[0].running
    assert (await pump.status()).state is PumpState.STOPPED
    await pump.start()  # SyringePump.start infuses
    assert sim.pumps[0].direction == "I"
    await pump.emergency_stop()
    assert not sim.pumps[0].running


async def test_stall_is_a_fault(running, manual_clock):
    sim, pump = await _setup(running, manual_clock)
    await pump.infuse()
    sim.stall(0)
    with pytest.raises(DeviceFault) as info:
        await pump.status()
    assert info.value.code == "stall"
    with pytest.raises(DeviceFault):
        await pump.infuse()
    await pump.stop()  # stopping a stalled pump does not raise
    sim.clear_stall(0)
    assert (await pump.status()).state is PumpState.STOPPED
    sim.faults.inject(FaultKind.DEVICE_ERROR)  # the simulator's stall fault
    with pytest.raises(DeviceFault):
        await pump.infuse()


async def test_prefixed_reply_form_at_address_zero(running, manual_clock):
    sim, pump = await _setup(running, manual_clock, always_prefix=True)
    assert sim.handle(b"irate") == b"\n00:1.000 ml/min\r\n00:"  # the form flowchem expects
    assert await pump.set_flow_rate(2.5) == 2.5
    await pump.infuse()
    assert (await pump.status()).state is PumpState.RUNNING


async def test_nonzero_address_prefix(running, manual_clock, raw_requests):
    sim = await Elite11Simulator(clock=manual_clock, addresses=(12,)).start()
    running.append(sim)
    raw = raw_requests(sim)
    pump = Elite11Pump(sim.url(), timeout_s=T, address=12)
    await pump.connect()
    running.append(pump.transport)
    assert await pump.set_flow_rate(0.5) == 0.5
    assert raw[:3] == [b"12stop\r", b"12ver\r", b"12irate lim\r"]
    assert raw[-2:] == [b"12irate 500 u/m\r", b"12irate\r"]
    await pump.infuse()
    assert sim.pumps[12].running


async def test_daisy_chain_shares_one_transport(running, manual_clock, raw_requests):
    sim = await Elite11Simulator(clock=manual_clock, addresses=(0, 1)).start()
    running.append(sim)
    raw = raw_requests(sim)
    port = open_byte_transport(sim.url(), timeout_s=T)
    running.append(port)
    a = Elite11Pump(sim.url(), address=0, transport=port, name="A")
    b = Elite11Pump(sim.url(), address=1, transport=port, name="B")
    await asyncio.gather(a.connect(), b.connect())
    # Interleaved, concurrent use: the transport lock keeps every exchange whole.
    results = await asyncio.gather(
        *(pump.set_flow_rate(rate) for pump, rate in ((a, 1.0), (b, 2.0)) * 5)
    )
    assert results == [1.0, 2.0] * 5
    await asyncio.gather(a.infuse(), b.withdraw())
    assert sim.pumps[0].direction == "I" and sim.pumps[1].direction == "W"
    assert all(r.startswith(b"1") for r in raw if b"wrun" in r)
    assert len(sim._writers) == 1  # one connection for both pumps
    await a.disconnect()  # does not close the shared port
    assert port.is_open
    assert await b.get_flow_rate() == 2.0


async def test_absent_address_times_out(running, manual_clock):
    sim = await Elite11Simulator(clock=manual_clock, addresses=(0,)).start()
    running.append(sim)
    pump = Elite11Pump(sim.url(), timeout_s=T, address=7)
    with pytest.raises(ReplyTimeout):
        await pump.connect()
    assert await pump.is_reachable() is False


async def test_faults(running, manual_clock):
    sim, pump = await _setup(running, manual_clock)
    sim.faults.inject(FaultKind.NO_REPLY)
    with pytest.raises(ReplyTimeout):
        await pump.infuse()  # a run command is not retried
    sim.faults.inject(FaultKind.NO_REPLY)
    assert await pump.get_flow_rate() == 1.0  # a query is retried once
    sim.faults.inject(FaultKind.LATE_REPLY, delay_s=2.5 * T)
    with pytest.raises(ReplyTimeout):
        await pump.stop()
    sim.faults.inject(FaultKind.DROP)
    with pytest.raises(ConnectionLost):
        await pump.stop()
    sim.faults.inject(FaultKind.GARBLED, count=None)
    with pytest.raises((GarbledReply, ReplyTimeout, Elite11CommandError)):
        await pump.get_diameter()
    sim.faults.clear()
    await pump.stop()
    assert await pump.get_flow_rate() == 1.0


async def test_reply_from_another_address_is_garbled(running, manual_clock):
    sim, pump = await _setup(running, manual_clock)
    sim.handle = lambda request: b"\n05:"
    with pytest.raises(GarbledReply, match="address 05"):
        await pump.stop()


async def test_prefixed_reply_split_after_line_prefix_is_read_whole(running, manual_clock):
    # "\n01:" is both the idle prompt of pump 1 and the start of its prefixed text lines;
    # a reply cut right there by the OS must not be taken as a bare prompt.
    sim, pump = await _setup(running, manual_clock, addresses=(1,))
    real = sim.handle

    def in_two_chunks(request: bytes) -> bytes | None:
        reply = real(request)
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, sim.broadcast, reply[4:])
        return reply[:4]

    sim.handle = in_two_chunks
    with pytest.raises(Elite11CommandError, match="Unknown command"):
        await pump.command("frobnicate")
    assert await pump.get_flow_rate() == 1.0
