"""Raw-byte tests of the Knauer pump and valve simulators (documented commands and replies)."""

from __future__ import annotations

import pytest
from wire import RawClient

from robochem.clock import Clock
from robochem.simulator.base import FaultKind
from robochem.simulator.knauer import KnauerPumpSimulator, KnauerValveSimulator


class Link(RawClient):
    async def ask(self, data: bytes) -> bytes:
        return await super().ask(data, b"\r")


@pytest.fixture
def now() -> list[float]:
    return [1000.0]


@pytest.fixture
async def pump(now):
    sim = await KnauerPumpSimulator(clock=Clock(epoch=0.0, _wall=lambda: now[0])).start()
    link = await Link.connect(sim.host, sim.port)
    yield sim, link
    await link.close()
    await sim.stop()


@pytest.mark.parametrize("eol", [b"\r", b"\n", b"\r\n", b"\n\r"])
@pytest.mark.parametrize("probe", [b"HEADTYPE?", b"HEADTYPE:?"])
async def test_headtype_probe_any_terminator(pump, eol, probe):
    _, link = pump
    assert await link.ask(probe + eol) == b"HEADTYPE:10\r"
    assert await link.ask(probe + eol) == b"HEADTYPE:10\r"  # nothing left over


async def test_flow_set_query_and_errors(pump):
    sim, link = pump
    assert await link.ask(b"FLOW:1000\r") == b"FLOW:OK\r"
    assert await link.ask(b"FLOW?\r") == b"FLOW:1000\r"
    assert await link.ask(b"FLOW 500\n\r") == b"FLOW:OK\r"  # space separator
    assert sim.flow_ul_min == 500
    assert await link.ask(b"FLOW:10001\r") == b"ERROR:2\r"  # above the 10 ml head
    assert await link.ask(b"FLOW:-1\r") == b"ERROR:2\r"
    assert await link.ask(b"FLOW:1.5\r") == b"ERROR:1\r"  # integers only
    assert await link.ask(b"FLOW:1000.00\r") == b"FLOW:OK\r"  # RoboChem-Flex's form
    assert await link.ask(b"FOO?\r") == b"ERROR:1\r"
    assert await link.ask(b"WHATEVER\r") == b"ERROR:1\r"
    assert await link.ask(b"HEADTYPE:50\r") == b"HEADTYPE:OK\r"
    assert await link.ask(b"FLOW:50000\r") == b"FLOW:OK\r"


async def test_on_off_remote(pump):
    sim, link = pump
    assert not sim.running  # STARTMODE 0: comes up paused
    assert await link.ask(b"ON\r") == b"ON:OK\r"
    assert sim.running
    assert await link.ask(b"OFF\r") == b"OFF:OK\r"
    assert not sim.running
    assert await link.ask(b"REMOTE\r") == b"REMOTE:OK\r" and sim.remote
    assert await link.ask(b"LOCAL:1\r") == b"LOCAL:OK\r" and not sim.remote
    assert await link.ask(b"REMOTE:1\r") == b"REMOTE:OK\r" and sim.remote


async def test_pressure_follows_source(pump):
    sim, link = pump
    assert await link.ask(b"PRESSURE?\r") == b"PRESSURE:0\r"
    await link.ask(b"FLOW:2000\r")
    await link.ask(b"ON\r")
    assert await link.ask(b"PRESSURE?\r") == b"PRESSURE:17\r"  # 1 + 8 bar per mL/min
    sim.pressure_source = lambda flow_ml_min: 42.4
    assert await link.ask(b"PRESSURE?\r") == b"PRESSURE:42\r"
    assert sim.flow_ml_min == 2.0


async def test_p21s_has_no_pressure_sensor():
    sim = await KnauerPumpSimulator(model="P2.1S", clock=Clock()).start()
    async with await Link.connect(sim.host, sim.port) as link:
        assert await link.ask(b"PRESSURE?\r") == b"ERROR:1\r"
    await sim.stop()


async def test_pmax_trip_latches(pump):
    sim, link = pump
    assert await link.ask(b"PMAX10:50\r") == b"PMAX10:OK\r"
    assert await link.ask(b"PMAX10?\r") == b"PMAX10:50\r"
    assert await link.ask(b"PMAX10:401\r") == b"ERROR:2\r"
    assert await link.ask(b"PMAX50:151\r") == b"ERROR:2\r"
    assert await link.ask(b"ERRORS?\r") == b"ERRORS:0,0,0,0,0\r"
    await link.ask(b"FLOW:1000\r")
    await link.ask(b"ON\r")
    sim.pressure_source = lambda flow: 60.0
    assert await link.ask(b"ERRORS?\r") == b"ERRORS:21,0,0,0,0\r"
    assert not sim.running and sim.tripped == "PMAX"
    assert await link.ask(b"ON\r") == b"ERROR:2\r"  # latched
    sim.pressure_source = lambda flow: 10.0
    assert await link.ask(b"OFF\r") == b"OFF:OK\r"  # acknowledges
    assert await link.ask(b"ON\r") == b"ON:OK\r"
    assert sim.running


async def test_pmin_trip_after_30_s(pump, now):
    sim, link = pump
    sim.pressure_source = lambda flow: 2.0
    assert await link.ask(b"PMIN10:5\r") == b"PMIN10:OK\r"
    await link.ask(b"FLOW:1000\r")
    await link.ask(b"ON\r")
    now[0] += 29.0
    await link.ask(b"FLOW?\r")
    assert sim.running
    now[0] += 1.5
    await link.ask(b"FLOW?\r")
    assert not sim.running and sim.tripped == "PMIN"
    assert (await link.ask(b"ERRORS?\r")).startswith(b"ERRORS:22,")


async def test_device_error_fault(pump):
    sim, link = pump
    sim.faults.inject(FaultKind.DEVICE_ERROR)
    assert await link.ask(b"FLOW:100\r") == b"ERROR:2\r"
    assert await link.ask(b"FLOW:100\r") == b"FLOW:OK\r"


async def test_settings_and_unknowns(pump):
    _, link = pump
    assert await link.ask(b"STARTMODE?\r") == b"STARTMODE:0\r"
    assert await link.ask(b"STARTLEVEL:0\r") == b"STARTLEVEL:OK\r"
    assert await link.ask(b"STARTLEVEL:2\r") == b"ERROR:2\r"
    assert await link.ask(b"ADJ10:99\r") == b"ERROR:2\r"
    assert await link.ask(b"IMAX10:100\r") == b"IMAX10:OK\r"


@pytest.mark.parametrize(
    ("valve_type", "positions"), [("LI", ["L", "I"]), ("6", ["6", "1"]), ("16", ["16", "9"])]
)
async def test_valve_raw(valve_type, positions):
    sim = await KnauerValveSimulator(valve_type=valve_type, clock=Clock()).start()
    link = await Link.connect(sim.host, sim.port)
    assert await link.ask(b"T\r\n") == f"VALVE {valve_type}\r".encode()
    for p in positions:
        assert await link.ask(p.encode() + b"\r\n") == p.encode() + b"\r"
        assert await link.ask(b"P\r\n") == p.encode() + b"\r"
    assert await link.ask(b"17\r\n") == b"?\r"
    sim.next_move_error = 1
    assert await link.ask(positions[0].encode() + b"\r\n") == b"E1\r"
    assert await link.ask(b"P\r\n") == positions[-1].encode() + b"\r"
    await link.close()
    await sim.stop()
