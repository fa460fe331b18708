"""Raw-byte tests of the Pump 11 Elite simulator: the manual's framing and raw exchange."""

from __future__ import annotations

import re

import pytest
from wire import RawClient, matches

from robochem.clock import Clock
from robochem.simulator.harvard import Elite11Simulator

_END = re.compile(rb"(?:\A|\r)\n(\d\d)?(T\*|[:<>*])\Z")


class Link(RawClient):
    async def ask(self, data: bytes) -> bytes:
        """Send; read until what arrived ends with a prompt."""
        return await super().ask(data, matches(_END))

    async def unanswered(self, data: bytes) -> bool:
        await self.send(data)
        return await self.silent(0.2)  # a silence is observed over a window


@pytest.fixture
def now() -> list[float]:
    return [5000.0]


async def _open(now, **kw):
    sim = await Elite11Simulator(clock=Clock(epoch=0.0, _wall=lambda: now[0]), **kw).start()
    link = await Link.connect(sim.host, sim.port)
    return sim, link, link.writer


async def test_manual_raw_exchange_address_0(now):
    sim, link, writer = await _open(now)
    assert await link.ask(b"irate 1.5 m/m\r") == b"\n:"
    assert await link.ask(b"irate\r") == b"\n1.500 ml/min\r\n:"
    assert await link.ask(b"irun\r") == b"\n>"
    assert await link.ask(b"foo\r") == b"\nCommand error:\r\n   Unknown command\r\n>"
    assert await link.ask(b"\r") == b"\n>"  # bare CR: status poll
    assert await link.ask(b"stp\r") == b"\n:"
    assert await link.ask(b"wrun\r") == b"\n<"
    assert await link.ask(b"stop\r") == b"\n:"
    writer.close()
    await sim.stop()


async def test_addressed_forms_and_chain(now):
    sim, link, writer = await _open(now, addresses=(0, 12))
    assert await link.ask(b"12irat 3.2 u/m\r") == b"\n12:"  # Elite 11 form, abbreviated
    assert await link.ask(b"12:irate 4 ul/min\r") == b"\n12:"  # PHD ULTRA form
    assert await link.ask(b"12irate\r") == b"\n12:4.000 ul/min\r\n12:"
    assert await link.ask(b"0irate 2 m/m\r\n") == b"\n:"  # flowchem: 0 prefix, CR LF
    assert await link.ask(b"irate\r") == b"\n2.000 ml/min\r\n:"
    assert await link.ask(b"12irun\r") == b"\n12>"
    assert await link.ask(b"12@irate 5 u/m\r") == b"\n12>"  # @: skip the GUI update
    assert await link.unanswered(b"7irate\r")  # nobody at address 7
    assert await link.ask(b"12address\r") == b"\n12:Pump address is 12\r\n12>"
    writer.close()
    await sim.stop()


async def test_always_prefix_form(now):
    sim, link, writer = await _open(now, always_prefix=True)
    assert await link.ask(b"diameter 14.567\r") == b"\n00:"
    assert await link.ask(b"diam\r") == b"\n00:14.5670 mm\r\n00:"
    writer.close()
    await sim.stop()


async def test_limits_and_argument_errors(now):
    sim, link, writer = await _open(now)
    await link.ask(b"diameter 14.567\r")
    reply = await link.ask(b"irate lim\r")
    m = re.match(rb"\n([\d.]+) nl/min to ([\d.]+) ml/min\r\n:$", reply)
    assert m and 20 < float(m.group(2)) < 30
    assert await link.ask(b"irate 500 m/m\r") == b"\nArgument error: 500\r\n   Out of range\r\n:"
    assert await link.ask(b"irate 5 x/y\r") == b"\nArgument error: x/y\r\n   Invalid units\r\n:"
    assert await link.ask(b"diameter 80\r") == b"\nArgument error: 80\r\n   Out of range\r\n:"
    assert await link.ask(b"irate max\r") == b"\n:"
    assert await link.ask(b"irate\r") == f"\n{m.group(2).decode()} ml/min\r\n:".encode()
    writer.close()
    await sim.stop()


async def test_volume_integrates_to_target(now):
    sim, link, writer = await _open(now)
    assert await link.ask(b"tvolume\r") == b"\nTarget volume not set\r\n:"
    assert await link.ask(b"irate 2 m/m\r") == b"\n:"
    assert await link.ask(b"tvolume 1 m\r") == b"\n:"
    assert await link.ask(b"tvolume\r") == b"\n1.0000 ml\r\n:"
    assert await link.ask(b"irun\r") == b"\n>"
    now[0] += 15
    assert await link.ask(b"ivolume\r") == b"\n500.0000 ul\r\n>"
    assert await link.ask(b"status\r") == b"\n33333333333 840000000 500000000000 I...I\r\n>"
    now[0] += 60
    assert await link.ask(b"ivolume\r") == b"\n1.0000 ml\r\nT*"
    assert await link.ask(b"status\r") == b"\n0 0 1000000000000 i..TI\r\nT*"
    assert await link.ask(b"civolume\r") == b"\nT*"
    assert await link.ask(b"ctvolume\r") == b"\n:"
    assert await link.ask(b"ivolume\r") == b"\n0.0000 ul\r\n:"
    writer.close()
    await sim.stop()


async def test_status_record_while_running(now):
    sim, link, writer = await _open(now)
    await link.ask(b"irate 1 m/m\r")
    await link.ask(b"irun\r")
    now[0] += 6
    rate, ticks, volume, flags = (await link.ask(b"status\r"))[1:-3].split()
    assert int(rate) == round(1 / 60 * 1e12)
    assert int(ticks) == 6 * 56_000_000
    assert int(volume) == round(0.1 * 1e12)
    assert flags == b"I...I"
    writer.close()
    await sim.stop()


async def test_stall_prompt(now):
    sim, link, writer = await _open(now)
    await link.ask(b"irun\r")
    sim.stall(0)
    assert await link.ask(b"\r") == b"\n*"
    assert (await link.ask(b"status\r")).endswith(b" i.S.I\r\n*")  # motor idle: lower case
    assert await link.ask(b"irun\r") == b"\n*"  # cannot run until cleared
    sim.clear_stall(0)
    assert await link.ask(b"irun\r") == b"\n>"
    writer.close()
    await sim.stop()
