"""The Manson HCS-3xxx simulator answered with raw ASCII commands (devices.md §9)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from wire import RawClient

from robochem.clock import Clock
from robochem.simulator.manson import MansonSimulator

QUIET_S = 0.2  # a silence is observed over a window


class Raw(RawClient):
    """Sends a command and reads its reply, up to the final ``OK\\r``."""

    async def __call__(self, data: bytes) -> bytes:
        return await self.ask(data, b"OK\r")

    async def unanswered(self, data: bytes) -> bool:
        await self.send(data)
        return await self.silent(QUIET_S)


@pytest.fixture
async def sim() -> AsyncIterator[MansonSimulator]:
    async with MansonSimulator(clock=Clock()) as server:
        yield server


@pytest.fixture
async def raw(sim: MansonSimulator) -> AsyncIterator[Raw]:
    client = await Raw.connect(sim.host, sim.port)
    yield client
    await client.close()


async def test_identity_and_limits(raw: Raw) -> None:
    assert await raw(b"GMOD\r") == b"HCS-3102\rOK\r"
    assert await raw(b"GMAX\r") == b"360500\rOK\r"  # 36.0 V, 5.00 A (x100 model)


async def test_model_reply_variant() -> None:
    async with (
        MansonSimulator(clock=Clock(), model_reply="3102 ") as sim,
        await Raw.connect(sim.host, sim.port) as raw,
    ):
        assert await raw(b"GMOD\r") == b"3102 \rOK\r"


async def test_coarse_current_model() -> None:
    async with (
        MansonSimulator(clock=Clock(), model="HCS-3302") as sim,
        await Raw.connect(sim.host, sim.port) as raw,
    ):
        assert await raw(b"GMAX\r") == b"320150\rOK\r"  # 32.0 V, 15.0 A (x10 model)
        assert await raw(b"CURR015\r") == b"OK\r"
        assert sim.set_current_a == 1.5


async def test_set_and_read_back(raw: Raw, sim: MansonSimulator) -> None:
    assert await raw(b"VOLT240\r") == b"OK\r"
    assert await raw(b"CURR050\r") == b"OK\r"
    assert await raw(b"GETS\r") == b"240050\rOK\r"
    assert (sim.set_voltage_v, sim.set_current_a) == (24.0, 0.5)
    assert await raw(b"GETD\r") == b"000000000\rOK\r"  # output off


async def test_inverted_output_logic_and_led_load(raw: Raw, sim: MansonSimulator) -> None:
    await raw(b"VOLT240\r")
    await raw(b"CURR050\r")
    assert await raw(b"SOUT0\r") == b"OK\r"
    assert sim.output_on
    # LED: 12 V forward + 0.5 A x 2 ohm = 13.00 V, 0.50 A, constant current.
    assert await raw(b"GETD\r") == b"130000501\rOK\r"
    assert sim.light_output_fraction == 0.5
    assert await raw(b"SOUT1\r") == b"OK\r"
    assert not sim.output_on


async def test_voltage_limited_led_runs_constant_voltage(raw: Raw) -> None:
    await raw(b"VOLT130\r")  # 13 V: 0.5 A possible
    await raw(b"CURR100\r")  # 1 A asked
    await raw(b"SOUT0\r")
    assert await raw(b"GETD\r") == b"130000500\rOK\r"  # CV mode


async def test_open_led_string(raw: Raw, sim: MansonSimulator) -> None:
    await raw(b"VOLT240\r")
    await raw(b"CURR050\r")
    await raw(b"SOUT0\r")
    sim.set_lamp_failure()
    assert await raw(b"GETD\r") == b"240000000\rOK\r"


async def test_crlf_and_lf_terminators_accepted(raw: Raw) -> None:
    assert await raw(b"GMOD\r\n") == b"HCS-3102\rOK\r"
    assert await raw(b"GMOD\n") == b"HCS-3102\rOK\r"


async def test_invalid_and_unknown_commands_get_no_reply(raw: Raw, sim: MansonSimulator) -> None:
    assert await raw.unanswered(b"VOLT999\r")  # above 36.0 V
    assert await raw.unanswered(b"VOLT33.0\r")  # flowchem's malformed form
    assert await raw.unanswered(b"CURR600\r")  # above 5.00 A
    assert await raw.unanswered(b"HELLO\r")
    assert sim.set_voltage_v == 0.0
    assert await raw(b"GMOD\r") == b"HCS-3102\rOK\r"


async def test_presets(raw: Raw, sim: MansonSimulator) -> None:
    assert await raw(b"PROM050100120200240050\r") == b"OK\r"
    assert await raw(b"GETM\r") == b"050100\r120200\r240050\rOK\r"
    assert await raw(b"RUNM2\r") == b"OK\r"
    assert (sim.set_voltage_v, sim.set_current_a) == (24.0, 0.5)
    assert await raw(b"SPRO1\r") == b"OK\r"
    assert sim.protection


async def test_faults(raw: Raw, sim: MansonSimulator) -> None:
    sim.faults.inject("no_reply")
    assert await raw.unanswered(b"GMOD\r")
    sim.faults.inject("device_error")
    await raw.send(b"SOUT0\r")
    assert await raw.read(b"\r") == b"\r"
    assert await raw.silent(QUIET_S)  # no OK
    sim.faults.inject("garbled")
    await raw.send(b"GMOD\r")
    assert await raw.read_exactly(12) != b"HCS-3102\rOK\r"
    sim.faults.inject("drop")
    await raw.send(b"GMOD\r")
    assert await raw.closed_by_peer()
    assert raw.buffer == b""
    assert sim.received[-1] == b"GMOD"
