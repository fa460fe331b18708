"""Byte and register transports built from a URL.

URL forms (see docs/devices.md):

* serial, through pyserial's ``serial_for_url``: ``/dev/ttyUSB0?baudrate=9600``,
  ``COM3``, ``socket://127.0.0.1:5000``, ``rfc2217://host:port``, ``loop://``. Serial
  settings (``baudrate``, ``bytesize``, ``parity``, ``stopbits``) are query parameters.
* native TCP devices: ``tcp://host:port``.
* Modbus: ``modbus+tcp://host:port?unit=1``,
  ``modbus+rtu:///dev/ttyUSB1?baudrate=9600&parity=E&unit=1`` and
  ``modbus+rtu+socket://host:port?unit=1`` (RTU framing carried over TCP).

Every exchange holds the transport's asyncio lock (so devices sharing a daisy-chained
port never interleave), has a timeout, and logs its raw bytes at debug level. A link that
drops is reopened by the next exchange; only idempotent queries are retried.
Communication timeouts are wall-clock seconds: they bound waiting on I/O, which does not
speed up with the simulated clock.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from robochem.drivers.errors import (
    CommunicationError,
    ConnectionLost,
    DeviceFault,
    GarbledReply,
    ReplyTimeout,
)

wire_log = logging.getLogger("robochem.drivers.wire")

#: Given the bytes received so far, return the length of the first complete reply, or 0.
#: A negative length -n means "complete at n unless more bytes follow within the transport's
#: ``settle_s``": for protocols whose end marker can also begin a longer reply (Harvard's
#: ``NN:`` prompt vs an ``NN:``-prefixed text line), so a reply split across reads is not
#: cut short.
ReplyFramer = Callable[[bytes], int]

SERIAL_OPTIONS = {"baudrate": int, "bytesize": int, "parity": str, "stopbits": float}


def terminated_by(*terminators: bytes) -> ReplyFramer:
    """A framer for replies that end with any of ``terminators``."""

    def frame(buffer: bytes) -> int:
        ends = [buffer.find(t) + len(t) for t in terminators if t in buffer]
        return min(ends) if ends else 0

    return frame


@dataclass(frozen=True)
class ParsedURL:
    scheme: str  # "serial", "tcp", "modbus+tcp", "modbus+rtu", "modbus+rtu+socket"
    target: str  # what to open: a pyserial URL, or host:port
    host: str | None = None
    port: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


def parse_url(url: str) -> ParsedURL:
    """Split a device URL into scheme, target and typed options; reject unknown options."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if len(scheme) <= 1:  # a device path (/dev/ttyUSB0), or a Windows drive/COM port
        path, _, q = url.partition("?")
        return ParsedURL("serial", path, options=_serial_options(dict(parse_qsl(q)), url))
    if scheme in {"socket", "rfc2217", "loop", "spy", "hwgrep", "alt"}:
        base = url.split("?", 1)[0]
        return ParsedURL("serial", base, parts.hostname, parts.port, _serial_options(query, url))
    if scheme == "tcp":
        _require_host_port(parts, url)
        _no_options(query, url)
        return ParsedURL("tcp", f"{parts.hostname}:{parts.port}", parts.hostname, parts.port)
    if scheme in {"modbus+tcp", "modbus+rtu+socket"}:
        _require_host_port(parts, url)
        opts = _modbus_options(query, url, serial=scheme == "modbus+rtu+socket")
        return ParsedURL(scheme, f"{parts.hostname}:{parts.port}", parts.hostname, parts.port, opts)
    if scheme == "modbus+rtu":
        device = parts.path or parts.netloc
        if not device:
            raise ValueError(f"{url}: modbus+rtu needs a serial device path")
        return ParsedURL(scheme, device, options=_modbus_options(query, url, serial=True))
    raise ValueError(
        f"{url}: unknown URL scheme {scheme!r}; use a serial path, socket://, rfc2217://, "
        "tcp://, modbus+tcp://, modbus+rtu:// or modbus+rtu+socket://"
    )


def _require_host_port(parts: Any, url: str) -> None:
    if not parts.hostname or parts.port is None:
        raise ValueError(f"{url}: expected host:port")


def _no_options(query: dict[str, str], url: str) -> None:
    if query:
        raise ValueError(f"{url}: tcp:// takes no options, got {sorted(query)}")


def _serial_options(query: dict[str, str], url: str) -> dict[str, Any]:
    unknown = set(query) - set(SERIAL_OPTIONS)
    if unknown:
        raise ValueError(
            f"{url}: unknown serial option(s) {sorted(unknown)}; allowed {sorted(SERIAL_OPTIONS)}"
        )
    opts: dict[str, Any] = {}
    for key, value in query.items():
        try:
            opts[key] = SERIAL_OPTIONS[key](value)
        except ValueError as exc:
            raise ValueError(f"{url}: {key}={value!r} is not a valid {key}") from exc
    if "parity" in opts:
        opts["parity"] = opts["parity"].upper()[:1]
        if opts["parity"] not in "NEOMS":
            raise ValueError(f"{url}: parity must be N, E, O, M or S")
    if "stopbits" in opts and opts["stopbits"] == int(opts["stopbits"]):
        opts["stopbits"] = int(opts["stopbits"])
    return opts


def _modbus_options(query: dict[str, str], url: str, *, serial: bool) -> dict[str, Any]:
    query = dict(query)
    unit = query.pop("unit", "1")
    try:
        unit_id = int(unit)
    except ValueError as exc:
        raise ValueError(f"{url}: unit={unit!r} is not an integer") from exc
    if not 1 <= unit_id <= 247:
        # Unit 0 is broadcast: a write would reach every device and none would answer.
        raise ValueError(f"{url}: unit must be 1..247, got {unit_id}")
    opts: dict[str, Any] = {"unit": unit_id}
    if serial:
        opts.update(_serial_options(query, url))
    elif query:
        raise ValueError(f"{url}: unknown option(s) {sorted(query)}; allowed ['unit']")
    return opts


#: Quiet time (wall s) awaited before reusing a link whose last exchange was cancelled.
QUIET_AFTER_CANCEL_S = 0.2


class ByteTransport(abc.ABC):
    """A lock-guarded request/reply byte stream with reconnect."""

    #: Quiet time (wall s) that confirms a tentatively complete reply (negative framer result).
    settle_s: float = 0.05

    def __init__(self, url: str, *, name: str = "", timeout_s: float = 2.0) -> None:
        self.url = url
        self.name = name or url
        self.timeout_s = timeout_s
        self.lock = asyncio.Lock()
        # Not ``lock``: open() also runs inside an exchange, which holds ``lock``.
        self._open_lock = asyncio.Lock()
        self._buffer = b""
        # Set when an exchange was cancelled between its write and the end of its reply: the
        # rest of that reply may still be on its way, so the link is reopened before reuse.
        self._interrupted = False

    @property
    @abc.abstractmethod
    def is_open(self) -> bool: ...

    @abc.abstractmethod
    async def _open(self) -> None: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...

    @abc.abstractmethod
    async def _write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def _read_some(self) -> bytes:
        """Bytes available now or soon; b"" means the peer closed."""

    async def open(self) -> None:
        """Open the link unless it is open. Safe to call concurrently (daisy-chained
        drivers sharing this transport connect at the same time): one opens it."""
        if self.is_open:
            return
        async with self._open_lock:
            if self.is_open:
                return
            try:
                await asyncio.wait_for(self._open(), self.timeout_s)
            except (OSError, TimeoutError) as exc:
                raise ConnectionLost(f"cannot open {self.url}: {exc}", device=self.name) from exc
            self._buffer = b""

    async def close(self) -> None:
        # Closing a link that already broke can fail the same way; it is closed either way.
        with contextlib.suppress(OSError, TimeoutError):
            await self._close()
        self._buffer = b""

    async def exchange(
        self,
        request: bytes,
        framer: ReplyFramer | None,
        *,
        timeout_s: float | None = None,
        retries: int = 0,
    ) -> bytes:
        """Send ``request`` and return one complete reply (``framer`` decides where it ends).

        With ``framer=None`` nothing is read. ``retries`` > 0 only for idempotent queries:
        a lost reply to a set command must not be resent blindly.
        """
        attempt = 0
        while True:
            try:
                async with self.lock:
                    return await self._exchange_once(request, framer, timeout_s or self.timeout_s)
            except CommunicationError:
                if attempt >= retries:
                    raise
                attempt += 1
                wire_log.debug("%s: retry %d of %r", self.name, attempt, request)

    async def _exchange_once(
        self, request: bytes, framer: ReplyFramer | None, timeout_s: float
    ) -> bytes:
        await self.open()
        if self._interrupted:
            # A plain drain is not enough: the cancelled reply's tail may arrive just after
            # it and would be read as this reply (seen at x1000: echo 'top' for 'stop').
            # Wait for the line to fall quiet first (rare: only after a cancellation).
            wire_log.debug("%s: waiting for quiet after a cancelled exchange", self.name)
            deadline = time.monotonic() + self.timeout_s
            while await self._read_within(QUIET_AFTER_CANCEL_S) and time.monotonic() < deadline:
                pass
            self._interrupted = False
        # Bytes left from an earlier, timed-out exchange would be read as this reply.
        self._buffer = b""
        await self._drain_stale()
        wire_log.debug("%s >> %r", self.name, request)
        try:
            self._interrupted = True
            await asyncio.wait_for(self._write(request), timeout_s)
        except (OSError, TimeoutError) as exc:
            await self.close()
            self._interrupted = False
            raise ConnectionLost(f"write failed: {exc}", device=self.name) from exc
        if framer is None:
            self._interrupted = False
            return b""
        try:
            reply = await asyncio.wait_for(self._read_reply(framer), timeout_s)
            self._interrupted = False
        except TimeoutError as exc:
            self._interrupted = False
            partial = self._buffer
            await self.close()  # the device state is unknown; start the next exchange afresh
            raise ReplyTimeout(
                f"no complete reply to {request!r} within {timeout_s:g} s"
                + (f" (got {partial!r})" if partial else ""),
                device=self.name,
            ) from exc
        except OSError as exc:
            self._interrupted = False
            await self.close()
            raise ConnectionLost(f"read failed: {exc}", device=self.name) from exc
        wire_log.debug("%s << %r", self.name, reply)
        return reply

    async def _read_reply(self, framer: ReplyFramer) -> bytes:
        while True:
            n = framer(self._buffer)
            if n < 0:
                more = await self._read_within(self.settle_s)
                if more:
                    self._buffer += more
                    continue
                n = -n
            if n:
                reply, self._buffer = self._buffer[:n], self._buffer[n:]
                return reply
            chunk = await self._read_some()
            if not chunk:
                await self.close()
                raise ConnectionLost("connection closed by the device", device=self.name)
            self._buffer += chunk

    @abc.abstractmethod
    async def _drain_stale(self) -> None:
        """Discard bytes that arrived unasked (late replies of an earlier exchange)."""

    async def _read_within(self, wait_s: float) -> bytes:
        """Bytes arriving within ``wait_s`` (b"" if none); never loses data on timeout."""
        try:
            chunk = await asyncio.wait_for(self._read_some(), wait_s)
        except TimeoutError:
            return b""
        if not chunk:
            await self.close()
            raise ConnectionLost("connection closed by the device", device=self.name)
        return chunk

    async def read_unsolicited(self, framer: ReplyFramer, timeout_s: float) -> bytes:
        """Read one more framed message without sending (for notification streams)."""
        async with self.lock:
            await self.open()
            try:
                reply = await asyncio.wait_for(self._read_reply(framer), timeout_s)
            except TimeoutError as exc:
                raise ReplyTimeout(f"no message within {timeout_s:g} s", device=self.name) from exc
            wire_log.debug("%s << %r", self.name, reply)
            return reply


class TcpTransport(ByteTransport):
    """A native TCP device (``tcp://host:port``) on asyncio streams."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        parsed = parse_url(url)
        if parsed.scheme != "tcp":
            raise ValueError(f"{url}: not a tcp:// URL")
        self.host, self.port = parsed.host, parsed.port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def _close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):  # the peer already went away
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    async def _read_some(self) -> bytes:
        assert self._reader is not None
        return await self._reader.read(65536)

    async def _drain_stale(self) -> None:
        assert self._reader is not None
        while True:
            try:
                stale = await asyncio.wait_for(self._reader.read(65536), 0.0005)
            except TimeoutError:
                return
            if not stale:
                return  # peer closed: the write that follows reports it
            wire_log.debug("%s: discarded stale %r", self.name, stale)


class SerialTransport(ByteTransport):
    """A serial device through pyserial (device path, socket://, rfc2217://, loop://).

    pyserial is blocking, so each I/O call runs in a worker thread with a short read
    timeout; the asyncio lock keeps calls on one port strictly sequential.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        parsed = parse_url(url)
        if parsed.scheme != "serial":
            raise ValueError(f"{url}: not a serial URL")
        self._target = parsed.target
        self._options = parsed.options
        self._port: Any = None

    @property
    def is_open(self) -> bool:
        return self._port is not None and self._port.is_open

    async def _open(self) -> None:
        import serial

        def opener() -> Any:
            try:
                return serial.serial_for_url(self._target, timeout=0.02, **self._options)
            except serial.SerialException as exc:
                raise OSError(str(exc)) from exc

        self._port = await asyncio.to_thread(opener)

    async def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            await asyncio.to_thread(port.close)

    async def _write(self, data: bytes) -> None:
        import serial

        try:
            await asyncio.to_thread(self._port.write, data)
        except serial.SerialException as exc:
            raise OSError(str(exc)) from exc

    async def _read_some(self) -> bytes:
        import serial

        port = self._port
        while True:
            try:
                chunk = await asyncio.to_thread(port.read, max(1, port.in_waiting))
            except serial.SerialException as exc:
                # pyserial's socket:// reports a closed peer this way.
                raise OSError(str(exc)) from exc
            except (TypeError, AttributeError) as exc:  # port closed under us
                raise OSError("port closed") from exc
            if chunk:
                return chunk

    async def _drain_stale(self) -> None:
        # A port that fails here fails the write that follows too, which reports it.
        with contextlib.suppress(OSError):  # serial.SerialException is an OSError
            await asyncio.to_thread(self._port.reset_input_buffer)

    async def _read_within(self, wait_s: float) -> bytes:
        # Cancelling a read running in a worker thread would drop what it reads: wait, then
        # take only what is already waiting.
        import serial

        await asyncio.sleep(wait_s)
        port = self._port

        def take_waiting() -> bytes:
            # pyserial's socket:// reports in_waiting as 1 whenever anything is readable,
            # not the count: read until nothing waits, or a burst comes one byte per call.
            out = b""
            while waiting := port.in_waiting:
                out += port.read(waiting)
            return out

        try:
            return await asyncio.to_thread(take_waiting)
        except serial.SerialException as exc:
            raise OSError(str(exc)) from exc


def open_byte_transport(url: str, *, name: str = "", timeout_s: float = 2.0) -> ByteTransport:
    """The byte transport for ``url`` (serial forms or tcp://); not yet opened."""
    scheme = parse_url(url).scheme
    if scheme == "tcp":
        return TcpTransport(url, name=name, timeout_s=timeout_s)
    if scheme == "serial":
        return SerialTransport(url, name=name, timeout_s=timeout_s)
    raise ValueError(f"{url}: a {scheme} URL is not a byte stream; use ModbusTransport")


class ModbusError(DeviceFault):
    """The device answered with a Modbus exception response."""

    def __init__(self, message: str, *, device: str | None, exception_code: int) -> None:
        self.exception_code = exception_code
        super().__init__(message, device=device, code=f"modbus-{exception_code:02d}")


MODBUS_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
}


class ModbusTransport:
    """Holding-register access over pymodbus async clients, with the same guarantees."""

    def __init__(self, url: str, *, name: str = "", timeout_s: float = 2.0) -> None:
        parsed = parse_url(url)
        if not parsed.scheme.startswith("modbus"):
            raise ValueError(f"{url}: not a modbus URL")
        self.url = url
        self.name = name or url
        self.timeout_s = timeout_s
        self.unit = parsed.options["unit"]
        self._parsed = parsed
        self.lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()  # not ``lock``: open() runs inside _call's
        self._client: Any = None

    def _make_client(self) -> Any:
        from pymodbus import FramerType
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

        p = self._parsed
        # pymodbus retries internally too; we own the retry policy, so keep its at 0.
        if p.scheme == "modbus+tcp":
            return AsyncModbusTcpClient(p.host, port=p.port, timeout=self.timeout_s, retries=0)
        if p.scheme == "modbus+rtu+socket":
            # RTU frames over a plain TCP socket (a serial gateway). The TCP client with the
            # RTU framer sends the same bytes as a serial client on socket://, without
            # pyserial's 0.3 s sleep on close, which would freeze the event loop.
            return AsyncModbusTcpClient(
                p.host, port=p.port, framer=FramerType.RTU, timeout=self.timeout_s, retries=0
            )
        serial_opts = {k: v for k, v in p.options.items() if k != "unit"}
        return AsyncModbusSerialClient(
            p.target, framer=FramerType.RTU, timeout=self.timeout_s, retries=0, **serial_opts
        )

    @property
    def is_open(self) -> bool:
        return self._client is not None and self._client.connected

    async def open(self) -> None:
        """Open the link unless it is open; safe to call concurrently (drivers sharing
        this transport connect at the same time): one opens it."""
        if self.is_open:
            return
        async with self._open_lock:
            if self.is_open:
                return
            await self.close()
            self._client = self._make_client()
            try:
                ok = await asyncio.wait_for(self._client.connect(), self.timeout_s + 1)
            except (OSError, TimeoutError) as exc:
                await self.close()
                raise ConnectionLost(f"cannot open {self.url}: {exc}", device=self.name) from exc
            if not ok:
                await self.close()
                raise ConnectionLost(f"cannot open {self.url}", device=self.name)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # pymodbus closing a broken socket (OSError), or after the event loop it ran
            # on has closed (RuntimeError): the client is gone either way.
            with contextlib.suppress(OSError, RuntimeError):
                client.close()

    async def _call(self, what: str, fn_name: str, *args: Any, retries: int = 0, **kw: Any) -> Any:
        from pymodbus.exceptions import ModbusException

        attempt = 0
        while True:
            async with self.lock:
                try:
                    await self.open()
                    fn = getattr(self._client, fn_name)
                    wire_log.debug("%s >> %s %r %r", self.name, fn_name, args, kw)
                    reply = await asyncio.wait_for(
                        fn(*args, device_id=self.unit, **kw), self.timeout_s + 1
                    )
                except (ModbusException, OSError, TimeoutError) as exc:
                    await self.close()
                    error: CommunicationError = ReplyTimeout(
                        f"{what}: no valid reply ({exc.__class__.__name__}: {exc})",
                        device=self.name,
                    )
                else:
                    if reply.isError():
                        code = int(getattr(reply, "exception_code", 0) or 0)
                        raise ModbusError(
                            f"{what}: Modbus exception {code:02d} "
                            f"({MODBUS_EXCEPTIONS.get(code, 'unknown')})",
                            device=self.name,
                            exception_code=code,
                        )
                    wire_log.debug("%s << %r", self.name, getattr(reply, "registers", reply))
                    return reply
            if attempt >= retries:
                raise error
            attempt += 1

    async def read_registers(self, address: int, count: int = 1, *, retries: int = 1) -> list[int]:
        reply = await self._call(
            f"read {count} register(s) at 0x{address:04X}",
            "read_holding_registers",
            address,
            count=count,
            retries=retries,
        )
        registers = list(getattr(reply, "registers", []))
        if len(registers) != count:
            raise GarbledReply(
                f"asked for {count} registers at 0x{address:04X}, got {len(registers)}",
                device=self.name,
            )
        return registers

    async def write_register(self, address: int, value: int) -> None:
        await self._call(
            f"write 0x{value & 0xFFFF:04X} to 0x{address:04X}",
            "write_register",
            address,
            value & 0xFFFF,
        )
