"""A small TCP proxy in front of a Modbus server that frames requests and injects faults.

The pymodbus server answers every well-formed request; link faults (a lost reply, a
corrupted byte, a dropped connection) cannot be produced inside it. This proxy sits
between the driver and the server, cuts the byte stream into Modbus frames (RTU or MBAP),
records every request in ``received`` for transcript tests, and applies the
``FaultInjector`` to each reply, like ``StreamSimulator`` does for byte devices.

It also behaves like a real RTU slave where pymodbus does not: frames with a bad CRC and
frames for another unit id get no reply at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from robochem.simulator.base import FaultInjector, FaultKind

log = logging.getLogger("robochem.simulator.proxy")

#: How long the proxy waits for the backend server's reply (wall seconds).
BACKEND_TIMEOUT_S = 2.0


def crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(frame: bytes) -> bytes:
    """``frame`` followed by its CRC, low byte first (as RTU sends it)."""
    return frame + crc16(frame).to_bytes(2, "little")


def rtu_request_length(buffer: bytes) -> int | None:
    """Length of the RTU request at the start of ``buffer``; None if unknown or incomplete."""
    if len(buffer) < 2:
        return None
    fc = buffer[1]
    if fc in (1, 2, 3, 4, 5, 6, 8):
        return 8
    if fc in (15, 16):
        return 9 + buffer[6] if len(buffer) > 6 else None
    if fc == 23:
        return 13 + buffer[10] if len(buffer) > 10 else None
    return -1  # unknown function: the frame length cannot be known


def rtu_reply_length(buffer: bytes) -> int | None:
    if len(buffer) < 3:
        return None
    fc = buffer[1]
    if fc & 0x80:
        return 5
    if fc in (1, 2, 3, 4, 23):
        return 5 + buffer[2]
    return 8


def mbap_length(buffer: bytes) -> int | None:
    if len(buffer) < 6:
        return None
    return 6 + int.from_bytes(buffer[4:6], "big")


class ModbusFaultProxy:
    """Listens on ``host:port`` and forwards each framed request to ``backend``.

    ``rtu``: RTU frames with CRC (True) or Modbus TCP frames with an MBAP header (False).
    ``reply_allowed``: asked after each backend reply; False swallows it (a device that
    does not answer some commands, e.g. the Omron software reset).
    """

    def __init__(
        self,
        backend: tuple[str, int],
        *,
        unit: int,
        rtu: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultInjector | None = None,
        reply_allowed: Callable[[], bool] | None = None,
    ) -> None:
        self.backend = backend
        self.unit = unit
        self.rtu = rtu
        self.host = host
        self.port = port
        self.faults = faults or FaultInjector()
        self.reply_allowed = reply_allowed or (lambda: True)
        self.received: list[bytes] = []
        self.connections = 0  # client connections accepted so far
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError, TimeoutError):  # clients gone already
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    def disconnect_clients(self) -> None:
        """Close every client connection (a cable pulled out)."""
        for w in list(self._writers):
            w.close()

    # -- framing -------------------------------------------------------------------
    def _split_request(self, buffer: bytes) -> tuple[bytes | None, bytes]:
        n = rtu_request_length(buffer) if self.rtu else mbap_length(buffer)
        if n is None or len(buffer) < n:
            return None, buffer
        if n < 0:  # unknown function code: a real slave would see garbage; discard it
            return b"", b""
        return buffer[:n], buffer[n:]

    def _unit_of(self, frame: bytes) -> int:
        return frame[0] if self.rtu else frame[6]

    def exception_reply(self, request: bytes, code: int) -> bytes:
        """A Modbus exception response to ``request`` with exception ``code``."""
        if self.rtu:
            return with_crc(bytes([request[0], request[1] | 0x80, code]))
        pdu = bytes([request[6], request[7] | 0x80, code])
        return request[:4] + len(pdu).to_bytes(2, "big") + pdu

    # -- serving -------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        backend: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        buffer = b""
        try:
            backend = await asyncio.open_connection(*self.backend)
            while True:
                chunk = await reader.read(4096)
                if not chunk:
                    return
                buffer += chunk
                while True:
                    request, buffer = self._split_request(buffer)
                    if request is None:
                        break
                    if not request:
                        continue
                    if not await self._handle(request, writer, backend):
                        return
        except (ConnectionError, OSError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
            if backend is not None:
                backend[1].close()

    async def _handle(
        self,
        request: bytes,
        writer: asyncio.StreamWriter,
        backend: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> bool:
        self.received.append(request)
        if self.rtu and crc16(request[:-2]).to_bytes(2, "little") != request[-2:]:
            log.debug("proxy: bad CRC, ignored: %s", request.hex(" "))
            return True  # a real slave ignores a corrupted frame
        if self._unit_of(request) != self.unit:
            return True  # another slave's frame (or broadcast): stay silent
        fault = self.faults.take()
        kind = fault.kind if fault else None
        if kind is FaultKind.NO_REPLY:
            return True
        if kind is FaultKind.DROP:
            writer.close()
            return False
        if kind is FaultKind.DEVICE_ERROR:
            reply: bytes | None = self.exception_reply(request, 0x04)
        else:
            reply = await self._forward(request, backend)
            if reply is not None and not self.reply_allowed():
                reply = None
        if reply is None:
            return True
        if kind is FaultKind.LATE_REPLY and fault is not None:
            await asyncio.sleep(fault.delay_s)
        if kind is FaultKind.GARBLED:
            reply = self.faults.garble(reply)
        writer.write(reply)
        await writer.drain()
        return True

    async def _forward(
        self, request: bytes, backend: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    ) -> bytes | None:
        b_reader, b_writer = backend
        b_writer.write(request)
        await b_writer.drain()
        buffer = b""
        try:
            async with asyncio.timeout(BACKEND_TIMEOUT_S):
                while True:
                    n = rtu_reply_length(buffer) if self.rtu else mbap_length(buffer)
                    if n is not None and len(buffer) >= n:
                        return buffer[:n]
                    chunk = await b_reader.read(4096)
                    if not chunk:
                        raise ConnectionError("backend closed")
                    buffer += chunk
        except TimeoutError:
            return None
