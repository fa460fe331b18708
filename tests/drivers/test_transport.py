"""drivers/transport.py: URL parsing, timeouts, reconnect, lock, retries, stale bytes, settle."""

from __future__ import annotations

import asyncio
import time

import pytest
from wire import WAIT_S, unread, wait_until

from robochem.clock import Clock
from robochem.drivers.errors import ConnectionLost, ReplyTimeout
from robochem.drivers.transport import (
    ModbusTransport,
    SerialTransport,
    TcpTransport,
    open_byte_transport,
    parse_url,
    terminated_by,
)
from robochem.simulator.base import FaultKind, StreamSimulator, split_lines

CR = terminated_by(b"\r")


class EchoSim(StreamSimulator):
    """Answers ``R:<request>\\r`` to every CR-terminated request."""

    split = staticmethod(split_lines((b"\r",)))

    def handle(self, request: bytes) -> bytes | None:
        return b"R:" + request + b"\r"


@pytest.fixture
async def echo():
    sim = await EchoSim(clock=Clock()).start()
    yield sim
    await sim.stop()


@pytest.fixture(params=["tcp", "socket"])
async def transport(request, echo):
    t = open_byte_transport(echo.url(request.param), timeout_s=0.3)
    yield t
    await t.close()


# -- URL parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "target", "options"),
    [
        ("/dev/ttyUSB0", "serial", "/dev/ttyUSB0", {}),
        ("/dev/ttyUSB0?baudrate=9600&parity=even", "serial", "/dev/ttyUSB0",
         {"baudrate": 9600, "parity": "E"}),
        ("COM3", "serial", "COM3", {}),
        ("COM3?baudrate=38400&stopbits=1.5", "serial", "COM3",
         {"baudrate": 38400, "stopbits": 1.5}),
        ("socket://127.0.0.1:5000?stopbits=1", "serial", "socket://127.0.0.1:5000",
         {"stopbits": 1}),
        ("loop://", "serial", "loop://", {}),
        ("tcp://10.0.0.5:10001", "tcp", "10.0.0.5:10001", {}),
        ("modbus+tcp://127.0.0.1:502?unit=3", "modbus+tcp", "127.0.0.1:502", {"unit": 3}),
        ("modbus+rtu+socket://127.0.0.1:7000", "modbus+rtu+socket", "127.0.0.1:7000",
         {"unit": 1}),
        ("modbus+rtu:///dev/ttyUSB1?baudrate=9600&parity=E&unit=247", "modbus+rtu",
         "/dev/ttyUSB1", {"unit": 247, "baudrate": 9600, "parity": "E"}),
    ],
)  # fmt: skip
def test_parse_url(url, scheme, target, options):
    parsed = parse_url(url)
    assert (parsed.scheme, parsed.target, parsed.options) == (scheme, target, options)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/dev/ttyUSB0?baud=9600", "unknown serial option"),
        ("socket://127.0.0.1:5000?timeout=3", "unknown serial option"),
        ("/dev/ttyUSB0?baudrate=fast", "not a valid baudrate"),
        ("/dev/ttyUSB0?parity=X", "parity must be"),
        ("tcp://127.0.0.1:10001?unit=1", "takes no options"),
        ("tcp://127.0.0.1", "host:port"),
        ("modbus+tcp://127.0.0.1:502?unit=0", "unit must be 1..247"),
        ("modbus+rtu:///dev/ttyUSB1?unit=0", "unit must be 1..247"),
        ("modbus+tcp://127.0.0.1:502?unit=248", "unit must be 1..247"),
        ("modbus+tcp://127.0.0.1:502?unit=one", "not an integer"),
        ("modbus+tcp://127.0.0.1:502?baudrate=9600", "unknown option"),
        ("modbus+rtu+socket://127.0.0.1:7000?speed=1", "unknown serial option"),
        ("http://example.invalid/", "unknown URL scheme"),
    ],
)
def test_parse_url_rejects(url, message):
    with pytest.raises(ValueError, match=message):
        parse_url(url)


def test_transport_classes_by_scheme():
    assert isinstance(open_byte_transport("tcp://127.0.0.1:1"), TcpTransport)
    assert isinstance(open_byte_transport("socket://127.0.0.1:1"), SerialTransport)
    with pytest.raises(ValueError, match="not a byte stream"):
        open_byte_transport("modbus+tcp://127.0.0.1:502")
    with pytest.raises(ValueError, match="not a modbus URL"):
        ModbusTransport("tcp://127.0.0.1:502")


# -- exchanges -------------------------------------------------------------------------


async def test_exchange_roundtrip(transport, echo):
    assert await transport.exchange(b"A\r", CR) == b"R:A\r"
    assert await transport.exchange(b"B\r", None) == b""  # nothing read
    assert await transport.exchange(b"C\r", CR) == b"R:C\r"  # B's reply was drained
    assert echo.received == [b"A", b"B", b"C"]


async def test_timeout_is_bounded_and_link_recovers(transport, echo):
    echo.faults.inject(FaultKind.NO_REPLY)
    t0 = time.monotonic()
    with pytest.raises(ReplyTimeout, match=r"within 0\.3 s"):
        await transport.exchange(b"A\r", CR)
    waited = time.monotonic() - t0
    # The transport's timeouts are wall seconds (no clock to inject). A timer never fires
    # early, whatever the load: the lower bound is exact. The upper one is only "it fired
    # rather than hung", generous for a loaded machine.
    assert waited >= 0.3 - 0.01
    assert waited < 5.0
    assert await transport.exchange(b"B\r", CR) == b"R:B\r"


async def test_partial_reply_reported_in_timeout(transport, echo):
    echo.handle = lambda request: b"half"  # never terminated
    with pytest.raises(ReplyTimeout, match="half"):
        await transport.exchange(b"A\r", CR, timeout_s=0.2)


async def test_reconnect_after_drop(transport, echo):
    assert await transport.exchange(b"A\r", CR) == b"R:A\r"
    echo.faults.inject(FaultKind.DROP)
    with pytest.raises(ConnectionLost):
        await transport.exchange(b"B\r", CR)
    assert await transport.exchange(b"C\r", CR) == b"R:C\r"
    assert transport.is_open


async def test_reconnect_after_server_restart(echo):
    t = open_byte_transport(echo.url("tcp"), timeout_s=0.3)
    assert await t.exchange(b"A\r", CR) == b"R:A\r"
    port = echo.port
    await echo.stop()
    with pytest.raises(ConnectionLost):
        await t.exchange(b"B\r", CR)
    restarted = await EchoSim(clock=Clock(), port=port).start()
    try:
        assert await t.exchange(b"C\r", CR) == b"R:C\r"
    finally:
        await t.close()
        await restarted.stop()


async def test_retries_only_when_asked(transport, echo):
    echo.faults.inject(FaultKind.NO_REPLY)
    with pytest.raises(ReplyTimeout):
        await transport.exchange(b"SET\r", CR)  # default: no retry
    assert echo.received == [b"SET"]
    echo.faults.inject(FaultKind.NO_REPLY)
    assert await transport.exchange(b"Q?\r", CR, retries=1) == b"R:Q?\r"
    assert echo.received == [b"SET", b"Q?", b"Q?"]
    echo.faults.inject(FaultKind.NO_REPLY, count=3)
    with pytest.raises(ReplyTimeout):
        await transport.exchange(b"Q?\r", CR, retries=2, timeout_s=0.1)
    assert echo.received.count(b"Q?") == 5


async def test_lock_serialises_concurrent_exchanges(transport, echo):
    echo.faults.inject(FaultKind.LATE_REPLY, count=None, delay_s=0.01)
    requests = [f"N{i}".encode() for i in range(12)]
    replies = await asyncio.gather(*(transport.exchange(r + b"\r", CR) for r in requests))
    assert replies == [b"R:" + r + b"\r" for r in requests]
    assert echo.received == requests  # each request sent only after the previous reply


async def test_stale_bytes_are_drained(transport, echo):
    assert await transport.exchange(b"A\r", CR) == b"R:A\r"
    echo.broadcast(b"UNASKED\r")
    await wait_until(lambda: unread(transport))  # arrived before the next exchange
    assert await transport.exchange(b"B\r", CR) == b"R:B\r"


async def test_cancelled_exchange_does_not_leak_its_reply_into_the_next(transport, echo):
    """A command cancelled while its reply is on the way (an abort mid-step): the reply's
    tail, arriving late, must not be taken as the next command's reply."""
    tail_sent = asyncio.Event()

    def send_tail() -> None:
        echo.broadcast(b"TOP\r")
        tail_sent.set()

    def slow_device(request: bytes) -> bytes | None:
        if request == b"STOP":
            return b"S"  # the first byte now, the rest when the test says
        # A slow device: it answers only after the old tail went out, so a transport that
        # wrote B without waiting for the line to fall quiet reads the tail as B's reply.
        reply = b"R:" + request + b"\r"
        if tail_sent.is_set():
            return reply
        asyncio.get_running_loop().create_task(_after(tail_sent, echo.broadcast, reply))
        return None

    echo.handle = slow_device
    task = asyncio.create_task(transport.exchange(b"STOP\r", CR, timeout_s=1.0))
    await wait_until(lambda: echo.received == [b"STOP"])  # written
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the old reply's tail arrives while this exchange waits for its own reply
    asyncio.get_running_loop().call_later(0.1, send_tail)
    assert await transport.exchange(b"B\r", CR, timeout_s=WAIT_S) == b"R:B\r"


async def _after(event: asyncio.Event, fn, *args) -> None:  # type: ignore[no-untyped-def]
    await event.wait()
    fn(*args)


async def test_negative_framer_waits_for_settle(transport, echo):
    def in_two_chunks(request: bytes) -> bytes:
        asyncio.get_running_loop().call_later(0.01, echo.broadcast, b"-TAIL:")
        return b"HEAD:"

    echo.handle = in_two_chunks

    def framer(buffer: bytes) -> int:  # "…:" might be the end, or not
        return -len(buffer) if buffer.endswith(b":") else 0

    # A settle window far longer than the tail's 10 ms delay: a loaded machine cannot
    # make the tail miss it.
    transport.settle_s, transport.timeout_s = 0.5, WAIT_S
    assert await transport.exchange(b"A\r", framer) == b"HEAD:-TAIL:"
    echo.handle = lambda request: b"ONLY:"
    t0 = time.monotonic()
    assert await transport.exchange(b"B\r", framer) == b"ONLY:"
    # a lower bound only: the wait can be longer on a loaded machine, never shorter
    assert time.monotonic() - t0 >= transport.settle_s - 0.01


async def test_read_unsolicited(transport, echo):
    assert await transport.exchange(b"A\r", CR) == b"R:A\r"
    echo.broadcast(b"NOTE\r")
    assert await transport.read_unsolicited(CR, 1.0) == b"NOTE\r"
    with pytest.raises(ReplyTimeout):
        await transport.read_unsolicited(CR, 0.05)


async def test_cannot_open_closed_port(echo):
    url = echo.url("tcp")
    await echo.stop()
    t = open_byte_transport(url, timeout_s=0.3)
    with pytest.raises(ConnectionLost, match="cannot open"):
        await t.exchange(b"A\r", CR)


@pytest.mark.parametrize("kind", ["tcp", "socket"])
async def test_a_cancelled_exchange_costs_the_next_one_little_time(kind, echo):
    """After a cancellation the line is waited quiet once; a long late tail is read in one
    go (pyserial's socket:// says one byte waits whatever waits), not a byte per wait."""
    transport = open_byte_transport(echo.url(kind), timeout_s=20.0)

    def replies(request: bytes) -> bytes | None:
        if request == b"STOP":
            return b"S"
        return b"R:" + request + b"\r"

    echo.handle = replies
    try:
        task = asyncio.create_task(transport.exchange(b"STOP\r", CR))
        await wait_until(lambda: echo.received == [b"STOP"])  # written
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # On loopback the whole tail is in the client's receive buffer once written.
        echo.broadcast(b"T" * 100 + b"\r")
        t0 = time.monotonic()
        assert await transport.exchange(b"B\r", CR) == b"R:B\r"
        # A one-sided bound, generous for a loaded machine: reading the tail at once and
        # one quiet window take well under a second; a byte per 0.2 s quiet window would
        # take 20 s (the link's whole timeout).
        assert time.monotonic() - t0 < 8.0
    finally:
        await transport.close()

