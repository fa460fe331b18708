"""What the tests use to talk to things from the outside: bare TCP clients, Modbus RTU/TCP
framing, bounded reads of a subprocess's output, and waiting on a condition.

Written independently of ``drivers/`` and ``simulator/`` (the tests are an outsider: a CRC
or a framing rule shared with the code under test would hide the misreading it repeats).

Waiting is on a condition with a bounded deadline that only fails on timeout: a loaded
machine makes a test slower, never wrong. The deadlines are generous on purpose.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Any

#: Default bound of a wait: long enough for a loaded 2-core machine, short enough to fail.
WAIT_S = 10.0


# -- waiting on a condition ---------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], Any],
    timeout_s: float = WAIT_S,
    *,
    interval: float = 0.005,
    what: str = "",
) -> Any:
    """Poll ``predicate`` (while the event loop runs) until it is truthy; return its value.
    ``predicate`` may return an awaitable (a device query).

    Fails (AssertionError) only when ``timeout_s`` wall seconds pass without it holding."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):  # a condition read from a device
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what or predicate}")
        await asyncio.sleep(interval)


def wait_until_sync(
    predicate: Callable[[], Any],
    timeout_s: float = WAIT_S,
    *,
    interval: float = 0.02,
    what: str = "",
) -> Any:
    """``wait_until`` for synchronous tests (subprocesses, HTTP polling)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what or predicate}")
        time.sleep(interval)


# -- a bare TCP client --------------------------------------------------------------------

#: Given the bytes received so far: the length of the first complete message, or 0.
Framer = Callable[[bytes], int]


def ends_with(separator: bytes) -> Framer:
    def frame(buffer: bytes) -> int:
        i = buffer.find(separator)
        return i + len(separator) if i >= 0 else 0

    return frame


def matches(pattern: re.Pattern[bytes]) -> Framer:
    """A message that ends where ``pattern`` matches (``search``; its match end)."""

    def frame(buffer: bytes) -> int:
        m = pattern.search(buffer)
        return m.end() if m else 0

    return frame


class RawClient:
    """A bare TCP client: send bytes, read framed messages, each read bounded in time.

    Bytes read past a message stay in ``buffer`` for the next read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, *chunks: bytes) -> None:
        self.writer.write(b"".join(chunks))
        await self.writer.drain()

    async def _fill(self) -> None:
        chunk = await self.reader.read(65536)
        if not chunk:
            raise ConnectionError("closed by the peer")
        self.buffer += chunk

    async def read(self, framer: Framer | bytes, timeout_s: float = WAIT_S) -> bytes:
        """The next complete message; TimeoutError if none within ``timeout_s``,
        ConnectionError if the peer closed first."""
        frame = ends_with(framer) if isinstance(framer, bytes) else framer

        async def one() -> bytes:
            while not (n := frame(self.buffer)):
                await self._fill()
            message, self.buffer = self.buffer[:n], self.buffer[n:]
            return message

        return await asyncio.wait_for(one(), timeout_s)

    async def read_exactly(self, n: int, timeout_s: float = WAIT_S) -> bytes:
        return await self.read(lambda buffer: n if len(buffer) >= n else 0, timeout_s)

    async def ask(self, data: bytes, framer: Framer | bytes, timeout_s: float = WAIT_S) -> bytes:
        await self.send(data)
        return await self.read(framer, timeout_s)

    async def silent(self, quiet_s: float) -> bool:
        """True if nothing arrives (and the peer does not close) within ``quiet_s``.

        A silence can only be observed over a window; a loaded machine can make it
        pass when the reply is merely slow, never fail when it is right."""
        if self.buffer:
            return False
        try:
            chunk = await asyncio.wait_for(self.reader.read(65536), quiet_s)
        except TimeoutError:
            return True
        self.buffer += chunk
        return False

    async def closed_by_peer(self, timeout_s: float = WAIT_S) -> bool:
        """True when the peer closes the connection (after any bytes still buffered)."""
        try:
            while True:
                chunk = await asyncio.wait_for(self.reader.read(65536), timeout_s)
                if not chunk:
                    return True
                self.buffer += chunk
        except TimeoutError:
            return False

    async def close(self) -> None:
        self.writer.close()


# -- Modbus ------------------------------------------------------------------------------


def crc16(frame: bytes) -> bytes:
    """Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF), low byte first."""
    value = 0xFFFF
    for byte in frame:
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
    return bytes([value & 0xFF, value >> 8])


def h(text: str) -> bytes:
    """Bytes from hex written with spaces, as the manuals print frames."""
    return bytes.fromhex(text)


def rtu(hex_pdu: str) -> bytes:
    """An RTU frame: unit, function, data (hex) and its CRC."""
    frame = h(hex_pdu)
    return frame + crc16(frame)


def rtu_reply_length(buffer: bytes) -> int:
    """The length of the RTU reply at the start of ``buffer`` (0: not all there yet).

    Replies to FC03/FC04 carry a byte count; FC06/FC16 echo 8 bytes; an exception
    (function | 0x80) is 5 bytes."""
    if len(buffer) < 3:
        return 0
    function = buffer[1]
    if function & 0x80:
        n = 5
    elif function in (3, 4):
        n = 5 + buffer[2]
    else:
        n = 8
    return n if len(buffer) >= n else 0


def mbap_length(buffer: bytes) -> int:
    """The length of the Modbus TCP (MBAP) message at the start of ``buffer``, or 0."""
    if len(buffer) < 6:
        return 0
    n = 6 + int.from_bytes(buffer[4:6], "big")
    return n if len(buffer) >= n else 0


def registers(reply: bytes) -> list[int]:
    """The register values of an FC03/FC04 RTU reply, checking its count and CRC."""
    assert reply[1] in (3, 4) and reply[2] == len(reply) - 5, reply.hex(" ")
    assert crc16(reply[:-2]) == reply[-2:], reply.hex(" ")
    body = reply[3:-2]
    return [int.from_bytes(body[i : i + 2], "big") for i in range(0, len(body), 2)]


# -- bounded reads of a subprocess's output -----------------------------------------------


class Lines:
    """A subprocess's text stream read by a thread: each ``readline`` bounded in time.

    ``proc.stdout.readline()`` blocks forever on a child that hangs silently; this fails
    the test instead, with what the child did print."""

    _EOF = object()

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None, "the process was started without stdout=PIPE"
        self._queue: queue.Queue[object] = queue.Queue()
        self.seen: list[str] = []
        self.eof = False
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._queue.put(line)
        except (OSError, ValueError):  # the stream was closed under the thread
            pass
        finally:
            self._queue.put(self._EOF)

    def readline(self, timeout: float = 60.0) -> str:
        """The next line ("" at end of stream); AssertionError if none within ``timeout``
        seconds."""
        if self.eof:
            return ""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no line within {timeout:g} s; printed so far: {self.seen[-20:]!r}"
            ) from None
        if item is self._EOF:
            self.eof = True
            return ""
        assert isinstance(item, str)
        self.seen.append(item)
        return item

    def until(self, predicate: Callable[[str], Any], timeout: float = 60.0) -> Any:
        """Read lines until ``predicate(line)`` is truthy; return that value.

        AssertionError at end of stream or when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.0, deadline - time.monotonic()))
            if not line:
                raise AssertionError(f"the stream ended; printed: {self.seen[-20:]!r}")
            if value := predicate(line):
                return value


def first_line(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    """The first line ``proc`` prints on stdout, bounded in time (its ``Lines`` kept on
    ``proc`` for later reads)."""
    lines = proc_lines(proc)
    return lines.readline(timeout)


def proc_lines(proc: subprocess.Popen[str]) -> Lines:
    """The ``Lines`` reader of ``proc``'s stdout (one per process)."""
    existing = getattr(proc, "_test_lines", None)
    if existing is None:
        existing = Lines(proc.stdout)
        proc._test_lines = existing  # type: ignore[attr-defined]
    return existing


# -- peeks the product offers no public way for -------------------------------------------


def connections_served(sim: Any) -> bool:
    """No client connection is open on ``sim`` any more: each connection's serve loop has
    ended, so a late reply it was holding has been written (to a closed peer).

    Reads the simulators' private connection set: they count connections accepted, not
    open ones (a public ``open_connections`` would do)."""
    server = getattr(sim, "proxy", None) or sim
    return not server._writers


def unread(transport: Any) -> bool:
    """Bytes have arrived at a drivers' byte transport and are not read yet (peeks at its
    private link; the transport has no public way to say so)."""
    reader = getattr(transport, "_reader", None)
    if reader is not None:
        return bool(reader._buffer)
    port = getattr(transport, "_port", None)
    return bool(port is not None and port.in_waiting)
