"""MansonLedSupply against the Manson simulator over socket:// (devices.md §9)."""

from __future__ import annotations

import asyncio
import math
import time
import types
from collections.abc import AsyncIterator

import pytest
from wire import connections_served, wait_until

from robochem.clock import Clock
from robochem.drivers import open_device
from robochem.drivers.errors import (
    CommunicationError,
    ConnectionLost,
    DeviceFault,
    ReplyTimeout,
    SetpointRejected,
)
from robochem.drivers.manson import MansonLedSupply
from robochem.simulator.manson import MansonSimulator

# Reply timeout 0.6 s, not 0.3 s: a healthy reply can miss 0.3 s on the loaded 2-core CI
# machine (Chemyx did once, 25 Nov 2026). The late-reply faults stay well past it.
TIMEOUT = 0.6
OPTIONS = {"led_voltage_v": 24.0, "min_current_a": 0.1, "max_current_a": 1.0}


@pytest.fixture(autouse=True)
def _fast_socket_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyserial's socket:// close() sleeps 0.3 s "for quick reconnects"; not needed here."""
    from serial.urlhandler import protocol_socket

    monkeypatch.setattr(protocol_socket, "time", types.SimpleNamespace(sleep=lambda s: None))


@pytest.fixture
async def sim() -> AsyncIterator[MansonSimulator]:
    async with MansonSimulator(clock=Clock()) as server:
        yield server


@pytest.fixture
async def supply(sim: MansonSimulator) -> AsyncIterator[MansonLedSupply]:
    async with MansonLedSupply(sim.url(), timeout_s=TIMEOUT, **OPTIONS) as device:
        yield device


async def test_connect_identifies_and_leaves_output_off(sim: MansonSimulator) -> None:
    sim.output_on = True
    async with MansonLedSupply(sim.url(), timeout_s=TIMEOUT, **OPTIONS) as supply:
        assert sim.received == [b"GMOD", b"GMAX", b"SOUT1", b"VOLT240", b"CURR010"]
        assert not sim.output_on
        assert supply.model == "HCS-3102"
        assert supply.max_voltage_v == 36.0 and supply.max_supply_current_a == 5.0
        assert (sim.set_voltage_v, sim.set_current_a) == (24.0, 0.1)


async def test_model_without_prefix(sim: MansonSimulator) -> None:
    sim.model_reply = "3102 "
    async with MansonLedSupply(sim.url(), timeout_s=TIMEOUT, **OPTIONS) as supply:
        assert supply.model == "HCS-3102"
        assert supply.current_scale == 100


async def test_voltage_is_three_integer_digits(supply: MansonLedSupply, sim) -> None:
    assert await supply.set_voltage(3.3) == 3.3
    assert sim.received[-1] == b"VOLT033"  # not flowchem's "VOLT33.0"
    assert await supply.set_voltage(36) == 36.0
    assert sim.received[-1] == b"VOLT360"
    assert await supply.get_settings() == (36.0, 0.1)


@pytest.mark.parametrize(
    ("method", "value", "allowed"),
    [
        ("set_voltage", 3.33, "steps of 0.1 V"),
        ("set_voltage", 36.1, "0.0..36.0"),
        ("set_voltage", -1, "0.0..36.0"),
        ("set_current", 0.255, "steps of 0.01 A"),
        ("set_current", 5.01, "0.0..5.0"),
        ("set_current", math.nan, "0.0..5.0"),
        ("set_intensity", 100.1, "0.0..100.0"),
        ("set_intensity", -5, "0.0..100.0"),
    ],
)
async def test_rejected_before_sending(
    supply: MansonLedSupply, sim: MansonSimulator, method: str, value: float, allowed: str
) -> None:
    before = list(sim.received)
    with pytest.raises(SetpointRejected) as info:
        await getattr(supply, method)(value)
    assert allowed in str(info.value)
    assert sim.received == before


async def test_coarse_current_model() -> None:
    sim = MansonSimulator(clock=Clock(), model="HCS-3302")
    async with sim, MansonLedSupply(sim.url(), timeout_s=TIMEOUT, **OPTIONS) as supply:
        assert supply.current_scale == 10
        assert sim.received[-1] == b"CURR001"  # 0.1 A in 0.1 A counts
        assert await supply.set_current(1.5) == 1.5
        assert sim.received[-1] == b"CURR015"
        with pytest.raises(SetpointRejected, match=r"steps of 0\.1 A"):
            await supply.set_current(0.25)


async def test_intensity_maps_onto_current(supply: MansonLedSupply, sim) -> None:
    assert await supply.set_intensity(50) == 50.0
    assert sim.received[-1] == b"CURR055"  # 0.1 + 0.5 x 0.9 A
    assert await supply.set_intensity(0) == 0.0
    assert sim.received[-1] == b"CURR010"
    assert await supply.set_intensity(33.3) == pytest.approx(33.333, abs=1e-3)
    assert sim.received[-1] == b"CURR040"  # rounded to the 0.01 A step
    assert await supply.set_intensity(100) == 100.0
    assert sim.received[-1] == b"CURR100"


async def test_light_on_off_inverted_logic_and_readback(supply: MansonLedSupply, sim) -> None:
    await supply.set_intensity(50)
    await supply.light_on()
    assert sim.received[-1] == b"SOUT0" and sim.output_on
    assert await supply.get_intensity() == 50.0
    assert sim.received[-1] == b"GETD"
    reading = await supply.read_output()
    assert reading.current_a == 0.55 and reading.constant_current
    assert reading.voltage_v == pytest.approx(12 + 0.55 * 2)
    status = await supply.lamp_status()
    assert status.enabled and status.intensity_percent == 50.0 and status.faults == ()
    await supply.light_off()
    assert sim.received[-1] == b"SOUT1" and not sim.output_on
    assert await supply.get_intensity() == 0.0
    await supply.light_on()
    await supply.emergency_stop()
    assert sim.received[-1] == b"SOUT1" and not sim.output_on


async def test_open_led_string_reported(supply: MansonLedSupply, sim) -> None:
    await supply.set_intensity(80)
    await supply.light_on()
    sim.set_lamp_failure()
    status = await supply.lamp_status()
    assert status.faults == ("led_open_circuit",)
    assert status.intensity_percent == 0.0


async def test_led_current_above_supply_rejected_at_connect(sim: MansonSimulator) -> None:
    supply = MansonLedSupply(sim.url(), timeout_s=TIMEOUT, led_voltage_v=24.0, max_current_a=6.0)
    with pytest.raises(SetpointRejected, match="max_current_a"):
        await supply.connect()
    assert not supply.transport.is_open
    assert b"SOUT0" not in sim.received


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="led_voltage_v"):
        MansonLedSupply("socket://127.0.0.1:1", led_voltage_v=3.33, max_current_a=1.0)
    with pytest.raises(ValueError, match="min_current_a"):
        MansonLedSupply(
            "socket://127.0.0.1:1", led_voltage_v=24, max_current_a=1.0, min_current_a=1.0
        )


# -- faults --------------------------------------------------------------------------


async def test_no_reply_to_a_set_command(supply: MansonLedSupply, sim) -> None:
    sim.faults.inject("no_reply")
    start = time.monotonic()
    with pytest.raises(ReplyTimeout):
        await supply.light_on()
    # Only "it fired rather than hung": a one-sided bound, generous for a loaded machine.
    assert time.monotonic() - start < 5.0
    assert sim.received.count(b"SOUT0") == 1  # a set command is not retried
    await supply.light_on()
    assert sim.output_on


async def test_query_retried_once(supply: MansonLedSupply, sim) -> None:
    sim.faults.inject("no_reply")
    assert await supply.get_intensity() == 0.0
    sim.faults.inject("no_reply", count=2)
    with pytest.raises(ReplyTimeout):
        await supply.get_intensity()
    assert await supply.get_intensity() == 0.0


async def test_late_reply_is_not_taken_for_the_next(supply: MansonLedSupply, sim) -> None:
    sim.faults.inject("late_reply", delay_s=2 * TIMEOUT)
    with pytest.raises(ReplyTimeout):
        await supply.set_intensity(50)
    await wait_until(lambda: connections_served(sim))  # the late reply landed on the old link
    await supply.light_on()
    assert await supply.get_intensity() == 50.0


async def test_garbled_reply(supply: MansonLedSupply, sim) -> None:
    await supply.light_on()
    sim.faults.inject("garbled", count=2)  # the retry is garbled too
    with pytest.raises(CommunicationError):
        await supply.read_output()
    assert (await supply.read_output()).current_a == 0.1


async def test_dropped_connection_reconnects(supply: MansonLedSupply, sim) -> None:
    sim.faults.inject("drop")
    with pytest.raises(ConnectionLost):
        await supply.light_on()
    await supply.light_on()
    assert sim.output_on


async def test_missing_ok_is_a_device_fault(supply: MansonLedSupply, sim) -> None:
    sim.faults.inject("device_error")
    with pytest.raises(DeviceFault, match="SOUT0 not acknowledged"):
        await supply.light_on()
    sim.faults.inject("device_error")  # a fault reply is not retried
    with pytest.raises(DeviceFault, match="GETD not acknowledged"):
        await supply.read_output()
    await supply.light_on()
    assert (await supply.lamp_status()).enabled


async def test_open_device(sim: MansonSimulator) -> None:
    async with open_device("manson-hcs", sim.url(), timeout_s=TIMEOUT, **OPTIONS) as supply:
        assert isinstance(supply, MansonLedSupply)
        assert await supply.is_reachable()
    sim.faults.inject("no_reply", count=2)
    assert not await supply.is_reachable()


async def test_exact_bytes_on_the_wire() -> None:
    """Capture the raw stream: every command is ASCII ending in a single CR."""
    wire = bytearray()
    replies = {b"GMOD": b"HCS-3102\rOK\r", b"GMAX": b"360500\rOK\r", b"GETD": b"130000551\rOK\r"}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while chunk := await reader.read(256):
            wire.extend(chunk)
            buffer += chunk
            while b"\r" in buffer:
                line, buffer = buffer.split(b"\r", 1)
                writer.write(replies.get(line, b"OK\r"))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        url = f"socket://127.0.0.1:{port}"
        async with MansonLedSupply(url, timeout_s=TIMEOUT, **OPTIONS) as supply:
            await supply.set_intensity(50)
            await supply.light_on()
            assert await supply.get_intensity() == 50.0
            await supply.light_off()
    finally:
        server.close()
    assert bytes(wire) == (b"GMOD\rGMAX\rSOUT1\rVOLT240\rCURR010\rCURR055\rSOUT0\rGETD\rSOUT1\r")
