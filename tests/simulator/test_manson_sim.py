"""The Manson HCS-3xxx simulator answered with raw ASCII commands (devices.md §9)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from robochem.clock import Clock
from robochem.simulator.manson import MansonSimulator


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def __call__(self, data: bytes, wait_s: float = 0.2) -> bytes:
        self.writer.write(data)
        await self.writer.drain()
        received = b""
        try:
            while not received.endswith(b"OK\r"):
                chunk = await asyncio.wait_for(self.reader.read(256), wait_s)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        return received


@pytest.fixture
async def sim() -> AsyncIterator[MansonSimulator]:
    async with MansonSimulator(clock=Clock()) as server:
        yield server


@pytest.fixture
async def raw(sim: MansonSimulator) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    yield Raw(reader, writer)
    writer.close()


async def test_identity_and_limits(raw: Raw) -> None:
    assert await raw(b"GMOD\r") == b"HCS-3102\rOK\r"
    assert await raw(b"GMAX\r") == b"360500\rOK\r"  # 36.0 V, 5.00 A (x100 model)


async def test_model_reply_variant() -> None:
    async with MansonSimulator(clock=Clock(), model_reply="3102 ") as sim:
        reader, writer = await asyncio.open_connection(sim.host, sim.port)
        assert await Raw(reader, writer)(b"GMOD\r") == b"3102 \rOK\r"
        writer.close()


async def test_coarse_current_model() -> None:
    async with MansonSimulator(clock=Clock(), model="HCS-3302") as sim:
        reader, writer = await asyncio.open_connection(sim.host, sim.port)
        raw = Raw(reader, writer)
        assert await raw(b"GMAX\r") == b"320150\rOK\r"  # 32.0 V, 15.0 A (x10 model)
        assert await raw(b"CURR015\r") == b"OK\r"
        assert sim.set_current_a == 1.5
        writer.close()


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
    assert await raw(b"VOLT999\r") == b""  # above 36.0 V
    assert await raw(b"VOLT33.0\r") == b""  # flowchem's malformed form
    assert await raw(b"CURR600\r") == b""  # above 5.00 A
    assert await raw(b"HELLO\r") == b""
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
    assert await raw(b"GMOD\r") == b""
    sim.faults.inject("device_error")
    assert await raw(b"SOUT0\r") == b"\r"  # no OK
    sim.faults.inject("garbled")
    garbled = await raw(b"GMOD\r", wait_s=0.1)
    assert garbled != b"HCS-3102\rOK\r" and len(garbled) == 12
    await asyncio.sleep(0.05)
    sim.faults.inject("drop")
    assert await raw(b"GMOD\r") == b""
    assert sim.received[-1] == b"GMOD"
