"""Shared machinery of the device simulators: a TCP server and switchable faults.

Each simulator is a separate asyncio server on localhost speaking its vendor's bytes.
It never imports a driver: its parser is written from the protocol reference alone, so a
misunderstanding in a driver shows up as a failing test rather than being shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from robochem.clock import Clock, get_clock

log = logging.getLogger("robochem.simulator")


class FaultKind(enum.StrEnum):
    NO_REPLY = "no_reply"  # request swallowed, nothing sent back
    LATE_REPLY = "late_reply"  # reply sent after ``delay_s`` wall seconds
    GARBLED = "garbled"  # one byte of the reply corrupted
    DROP = "drop"  # connection closed instead of replying
    DEVICE_ERROR = "device_error"  # the device's own error reply / alarm


@dataclass
class Fault:
    kind: FaultKind
    remaining: int | None = 1  # None: until cleared
    delay_s: float = 5.0


@dataclass
class FaultInjector:
    """Faults armed on a simulator; they can be switched while it runs."""

    faults: list[Fault] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def inject(self, kind: FaultKind | str, *, count: int | None = 1, delay_s: float = 5.0) -> None:
        self.faults.append(Fault(FaultKind(kind), count, delay_s))

    def clear(self) -> None:
        self.faults.clear()

    def take(self) -> Fault | None:
        """The fault to apply to the next reply, consuming one use of it."""
        for fault in self.faults:
            if fault.remaining is None:
                return fault
            if fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def garble(self, data: bytes) -> bytes:
        if not data:
            return b"\xff"
        i = self.rng.randrange(len(data))
        return data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :]


class StreamSimulator:
    """A TCP server for a byte-stream device (serial over ``socket://`` or native TCP).

    Subclasses implement ``split(buffer) -> (request | None, rest)`` (framing of incoming
    bytes) and ``handle(request) -> bytes | None`` (the device's reply). Faults apply here,
    so every simulator supports every fault kind the same way.
    """

    family = "device"

    def __init__(self, *, clock: Clock | None = None, host: str = "127.0.0.1", port: int = 0):
        self.clock = clock or get_clock()
        self.host = host
        self.port = port
        self.faults = FaultInjector()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.received: list[bytes] = []  # every request, for transcript tests

    # -- to implement -------------------------------------------------------------
    def split(self, buffer: bytes) -> tuple[bytes | None, bytes]:
        raise NotImplementedError

    def handle(self, request: bytes) -> bytes | None:
        raise NotImplementedError

    def device_error_reply(self, request: bytes) -> bytes | None:
        """What the device sends for an injected DEVICE_ERROR (its own error form)."""
        return None

    # -- server ---------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def url(self, scheme: str = "socket") -> str:
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> StreamSimulator:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("%s simulator listening on %s:%d", self.family, self.host, self.port)
        return self

    async def stop(self) -> None:
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError, TimeoutError):  # clients gone already
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def __aenter__(self) -> StreamSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def broadcast(self, data: bytes) -> None:
        """Send unsolicited bytes (notifications) to every connected client."""
        for w in list(self._writers):
            if not w.is_closing():
                w.write(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        buffer = b""
        try:
            while True:
                chunk = await reader.read(4096)
                if not chunk:
                    return
                buffer += chunk
                while True:
                    request, buffer = self.split(buffer)
                    if request is None:
                        break
                    self.received.append(request)
                    if not await self._reply(request, writer):
                        return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _reply(self, request: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection was dropped on purpose."""
        fault = self.faults.take()
        if fault is not None and fault.kind is FaultKind.DEVICE_ERROR:
            reply = self.device_error_reply(request)
        else:
            reply = self.handle(request)
        if fault is not None:
            if fault.kind is FaultKind.NO_REPLY:
                return True
            if fault.kind is FaultKind.DROP:
                writer.close()
                return False
            if fault.kind is FaultKind.LATE_REPLY:
                await asyncio.sleep(fault.delay_s)
            if fault.kind is FaultKind.GARBLED and reply:
                reply = self.faults.garble(reply)
        if reply:
            writer.write(reply)
            await writer.drain()
        return True


def split_lines(terminators: tuple[bytes, ...]) -> Callable[[bytes], tuple[bytes | None, bytes]]:
    """A ``split`` for line protocols: the request is the text before the first terminator.

    Accepts any of ``terminators`` (longest first so CRLF is not read as CR + empty line).
    """
    ordered = sorted(terminators, key=len, reverse=True)

    def split(buffer: bytes) -> tuple[bytes | None, bytes]:
        best: tuple[int, int] | None = None
        for t in ordered:
            i = buffer.find(t)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, len(t))
        if best is None:
            return None, buffer
        i, n = best
        return buffer[:i], buffer[i + n :]

    return split
