"""Raw-byte tests of the Chemyx Fusion simulator."""

from __future__ import annotations

import pytest
from wire import RawClient

from robochem.clock import Clock
from robochem.simulator.base import FaultKind
from robochem.simulator.chemyx import ChemyxSimulator


class Link(RawClient):
    async def ask(self, data: bytes) -> list[bytes]:
        """Send; return the two reply lines (echo, result) without CR LF."""
        await self.send(data)
        return [(await self.read(b"\r\n"))[:-2] for _ in range(2)]


@pytest.fixture
def now() -> list[float]:
    return [100.0]


@pytest.fixture
async def chemyx(now):
    sim = await ChemyxSimulator(clock=Clock(epoch=0.0, _wall=lambda: now[0])).start()
    link = await Link.connect(sim.host, sim.port)
    yield sim, link
    await link.close()
    await sim.stop()


async def test_set_commands_echo_value(chemyx):
    sim, link = chemyx
    assert await link.ask(b"set units 0\r\n") == [b"set units 0", b"units = 0"]
    assert await link.ask(b"set diameter 14.567\r") == [
        b"set diameter 14.567",
        b"diameter = 14.567",
    ]
    assert await link.ask(b"set rate 1.5\r\n") == [b"set rate 1.5", b"rate = 1.5"]
    assert await link.ask(b"set volume -0.5\r\n") == [b"set volume -0.5", b"volume = -0.5"]
    assert sim.volume_ml == -0.5


async def test_out_of_limits_echo_differs(chemyx):
    sim, link = chemyx
    max_rate, min_rate, max_vol, _ = (
        float(x) for x in (await link.ask(b"read limit parameter\r\n"))[1].split()
    )
    _echo, result = await link.ask(b"set rate 1000\r\n")
    assert result == f"rate = {max_rate:.6g}".encode() and max_rate < 1000
    assert sim.rate_ml_min == max_rate  # the pump applied its limit
    assert (await link.ask(b"set volume 500\r\n"))[1] == f"volume = {max_vol:.6g}".encode()
    assert (await link.ask(b"set diameter 50\r\n"))[1] == b"diameter = 14.567"  # kept
    assert (await link.ask(b"set units 7\r\n"))[1] == b"units = 0"
    assert min_rate < 1e-3


async def test_units_modes_scale_replies(chemyx):
    _, link = chemyx
    await link.ask(b"set rate 1\r\n")
    assert (await link.ask(b"set units 2\r\n"))[1] == b"units = 2"  # µL/min
    assert (await link.ask(b"set rate 250\r\n"))[1] == b"rate = 250"
    assert (await link.ask(b"dispensed volume\r\n"))[1] == b"dispensed volume = 0 ul"


async def test_run_status_and_dispensed_volume_on_clock(chemyx, now):
    _sim, link = chemyx
    await link.ask(b"set rate 2\r\n")
    await link.ask(b"set volume 1\r\n")
    assert await link.ask(b"pump status\r\n") == [b"pump status", b"0"]
    assert (await link.ask(b"start\r\n"))[1] == b"Pump start running..."
    now[0] += 15
    assert (await link.ask(b"pump status\r\n"))[1] == b"1"
    assert (await link.ask(b"dispensed volume\r\n"))[1] == b"dispensed volume = 0.5 ml"
    assert (await link.ask(b"pause\r\n"))[1] == b"Pump pause!"
    now[0] += 100
    assert (await link.ask(b"pump status\r\n"))[1] == b"2"
    assert (await link.ask(b"restart\r\n"))[1].startswith(b"Pump restart")
    now[0] += 100
    assert (await link.ask(b"pump status\r\n"))[1] == b"0"
    assert (await link.ask(b"dispensed volume\r\n"))[1] == b"dispensed volume = 1 ml"
    assert (await link.ask(b"stop\r\n"))[1] == b"Pump stop!"


async def test_delay_then_run(chemyx, now):
    _sim, link = chemyx
    await link.ask(b"set delay 0.5\r\n")
    assert (await link.ask(b"start\r\n"))[1] == b"Pump delay..."
    assert (await link.ask(b"pump status\r\n"))[1] == b"3"
    now[0] += 31
    assert (await link.ask(b"pump status\r\n"))[1] == b"1"


async def test_stall_and_invalid(chemyx):
    sim, link = chemyx
    await link.ask(b"start\r\n")
    sim.stall()
    assert (await link.ask(b"pump status\r\n"))[1] == b"4"
    assert (await link.ask(b"start\r\n"))[1] == b"Pump stalled!"
    assert await link.ask(b"frobnicate\r\n") == [b"frobnicate", b"Invalid command"]
    sim.state = 0
    sim.faults.inject(FaultKind.DEVICE_ERROR)  # stalls, then answers normally
    assert (await link.ask(b"pump status\r\n"))[1] == b"4"


async def test_lone_lf_does_not_end_a_request(chemyx):
    _, link = chemyx
    await link.send(b"pump status\n")
    assert await link.silent(0.2)  # a silence is observed over a window
