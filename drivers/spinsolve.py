"""Magritek Spinsolve benchtop NMR over its remote-control TCP interface (devices.md §12).

URL: ``tcp://host:13000`` (the port defaults to 13000 when omitted). Remote control must
be enabled in the Spinsolve software.

The link carries UTF-8 XML documents with root ``<Message>`` and nothing else to delimit
them, so one reader task buffers the socket, cuts it after each ``</Message>`` and sorts
the documents: ``StatusNotification``s (State / Progress / Completed / Error) go to the
notification queue, everything else is a reply to the one request in flight. Messages
can arrive late, out of order or unsolicited, so:

* a reply goes to the oldest request waiting for a reply with its tag (so a status query
  can run while a shim request waits minutes for its answer); a reply nobody waits for
  is stale and dropped;
* stale notifications are flushed before ``Start``, notifications for another protocol
  are ignored, and a terminal notification (``Completed``) counts only after this run was
  seen to start (``State Running`` or ``Progress``).

Guarantees as in ``robochem.drivers.transport``: every wait has a timeout (communication
waits in wall seconds; acquisition and shim durations in simulated seconds through the
shared clock), a dropped link is reopened by the next call, and raw bytes are logged at
debug level on the ``robochem.drivers.wire`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from robochem.analysis.par import ParFileError, read_par
from robochem.clock import Clock, get_clock
from robochem.drivers.base import Acquisition, HardwareInfo, NMRSpectrometer, ShimResult
from robochem.drivers.errors import (
    LINK_ERRORS,
    CommunicationError,
    ConnectionLost,
    DeviceError,
    DeviceFault,
    GarbledReply,
    ReplyTimeout,
    SetpointRejected,
)
from robochem.drivers.transport import parse_url, wire_log

log = logging.getLogger("robochem.drivers.spinsolve")
T = TypeVar("T")

__all__ = ["AcquisitionProgress", "SpinsolveNMR"]

DEFAULT_PORT = 13000
_END = b"</Message>"
_NOTIFICATIONS = {"StatusNotification", "CompletedNotificationType"}
SHIM_METHODS = ("CheckShim", "QuickShim", "PowerShim")
#: The shim that runs on the sample in the cell (a protocol started like an acquisition).
SAMPLE_SHIM_PROTOCOL = "SHIM 1H SAMPLE"
#: Upper bounds (simulated seconds) for a shim request to answer.
SHIM_TIMEOUT_S = {"CheckShim": 300.0, "QuickShim": 900.0, "PowerShim": 5400.0}
#: Software older than this was not tested by public clients (flowchem warns too).
MIN_SOFTWARE = (1, 18, 1, 3062)
#: Units of well-known options, for error messages.
_OPTION_UNITS = {
    "AcquisitionTime": "s", "RepetitionTime": "s", "IntervalTime": "s", "PulseAngle": "deg",
    "Number": "scans", "decouplePower": "dB", "centerFrequency": "ppm", "SampleReference": "ppm",
}


@dataclass(frozen=True)
class AcquisitionProgress:
    """What a dashboard shows while an acquisition runs."""

    protocol: str
    status: str  # Running, Stopping, Ready, Completed
    percentage: float | None = None
    seconds_remaining: float | None = None
    data_folder: str | None = None


ProgressCallback = Callable[[AcquisitionProgress], object]


@dataclass
class _Item:
    """One demultiplexed message, or the error that stands in for it."""

    element: ET.Element | None = None  # first child of <Message> (for notifications: the event)
    error: DeviceError | None = None


class _Link:
    """One TCP connection, its reader task, the requests waiting for replies (by reply
    tag, oldest first) and the queue of notifications."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.waiters: dict[str, deque[asyncio.Future[ET.Element]]] = {}
        self.notes: asyncio.Queue[_Item] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def alive(self) -> bool:
        return not self.closed and not self.writer.is_closing()

    def deliver(self, reply: ET.Element) -> bool:
        queue = self.waiters.get(reply.tag)
        while queue:
            future = queue.popleft()
            if not future.done():
                future.set_result(reply)
                return True
        return False

    def fail_waiters(self, make_error: Callable[[], DeviceError]) -> None:
        for queue in self.waiters.values():
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_exception(make_error())


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    """``asyncio.wait_for`` without its Python 3.11 habit of losing a cancellation that
    races with the awaited result (an acquisition must stop when its task is cancelled)."""
    async with asyncio.timeout(max(0.0, seconds)):
        return await awaitable


def _flush(queue: asyncio.Queue[_Item]) -> int:
    n = 0
    while not queue.empty():
        queue.get_nowait()
        n += 1
    return n


def _message(child: ET.Element) -> bytes:
    root = ET.Element("Message")
    root.append(child)
    # ElementTree escapes text and attributes; the declaration is what Spinsolve expects.
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() == "true"


def _shim_details(path: Path, device: str) -> dict[str, str]:
    """What ``shim.par`` says (values as text), read by the one strict parameter reader.

    A missing file gives {} (the data folder may be on another PC). A corrupt one is
    logged with its file and line and gives {"error": ...}: the shim itself succeeded
    (acquire() raised otherwise); only its report is unreadable.
    """
    if not path.is_file():
        return {}
    try:
        params = read_par(path)
    except ParFileError as exc:
        log.warning("%s: shim report unreadable: %s", device, exc)
        return {"error": str(exc)}
    return {key: str(value) for key, value in params.items()}


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None and text.strip() else None
    except ValueError:
        return None


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.strip().split("."):
        if not p.isdigit():
            break
        parts.append(int(p))
    return tuple(parts)


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _same_value(given: str, allowed: str) -> bool:
    if given == allowed:
        return True
    try:
        return math.isclose(float(given), float(allowed), rel_tol=1e-9, abs_tol=1e-12)
    except ValueError:
        return False


class SpinsolveNMR(NMRSpectrometer):
    """Spinsolve remote control: hardware check, shims, option-checked acquisitions."""

    driver_name = "spinsolve"
    verified = False

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 5.0,
        start_timeout_s: float | None = None,
        file_wait_s: float = 10.0,
        duration_margin: float = 0.2,
        duration_margin_s: float = 60.0,
        max_duration_s: float = 4 * 3600.0,
        data_file: str | None = "data.1d",
        data_root: str | None = None,
        solvent: str | None = None,
        validate_options: bool = True,
        on_progress: ProgressCallback | None = None,
        clock: Clock | None = None,
    ) -> None:
        """
        ``timeout_s``: wall seconds to wait for a reply (and for a run to start
        unless ``start_timeout_s`` is given). ``file_wait_s``: simulated seconds (and
        at least ``timeout_s`` wall seconds) to wait for ``data_file`` after
        ``Completed``; ``data_file=None`` disables the check, e.g. when the data
        folder is on another PC. The acquisition deadline is the estimated duration
        times ``1 + duration_margin`` plus ``duration_margin_s`` (simulated s); without an
        estimate it is ``max_duration_s``. ``data_root``: when an acquisition names no
        folder, ask Spinsolve for a new time-stamped folder under this root instead of
        reusing whatever folder was set last. ``solvent`` is set on connect.
        """
        super().__init__(name)
        self.url = url
        self.host, self.port = self._address(url)
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s if start_timeout_s is not None else timeout_s
        self.file_wait_s = file_wait_s
        self.duration_margin = duration_margin
        self.duration_margin_s = duration_margin_s
        self.max_duration_s = max_duration_s
        self.data_file = data_file
        self.data_root = data_root
        self.solvent = solvent
        self.validate_options = validate_options
        self.on_progress = on_progress
        self._clock = clock
        self._link: _Link | None = None
        self._connect_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()  # whole messages, in call order
        self._op_lock = asyncio.Lock()  # one acquisition or shim at a time
        self._options: dict[str, dict[str, list[str]]] | None = None
        self._abort_requested = False
        self._heard_since_start = False
        self._run_done: asyncio.Event | None = None
        #: latest progress of the running acquisition (for polling dashboards)
        self.progress: AcquisitionProgress | None = None
        self.hardware: HardwareInfo | None = None

    # -- connection ----------------------------------------------------------------
    @staticmethod
    def _address(url: str) -> tuple[str, int]:
        parts = urlsplit(url)
        if parts.scheme.lower() == "tcp" and parts.hostname and parts.port is None:
            url = f"tcp://{parts.hostname}:{DEFAULT_PORT}"
        parsed = parse_url(url)
        if parsed.scheme != "tcp" or parsed.host is None or parsed.port is None:
            raise ValueError(f"{url}: the Spinsolve speaks TCP; use tcp://host:{DEFAULT_PORT}")
        return parsed.host, parsed.port

    @property
    def clock(self) -> Clock:
        return self._clock or get_clock()

    @property
    def is_open(self) -> bool:
        return self._link is not None and self._link.alive

    async def _ensure_link(self) -> _Link:
        async with self._connect_lock:
            if self._link is not None and self._link.alive:
                return self._link
            await self._close_link()
            try:
                reader, writer = await _within(
                    asyncio.open_connection(self.host, self.port), self.timeout_s
                )
            except (OSError, TimeoutError) as exc:
                raise ConnectionLost(
                    f"cannot open tcp://{self.host}:{self.port}: {exc!r} "
                    "(is remote control enabled in the Spinsolve software?)",
                    device=self.name,
                ) from exc
            link = _Link(reader, writer)
            link.task = asyncio.get_running_loop().create_task(self._read_loop(link))
            self._link = link
            return link

    async def _close_link(self) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        link.closed = True
        link.fail_waiters(lambda: ConnectionLost("link closed (an earlier request timed out "
                                                 "or the driver disconnected)", device=self.name))
        if link.task is not None:
            link.task.cancel()
            # asyncio.wait, not ``await task``: our own cancellation must not be swallowed
            await asyncio.wait([link.task], timeout=1.0)
        link.writer.close()
        with contextlib.suppress(OSError, TimeoutError):  # the peer already went away
            await _within(link.writer.wait_closed(), 1.0)

    async def _drop(self, link: _Link) -> None:
        """Close ``link`` unless another call has already replaced it."""
        if self._link is link:
            await self._close_link()

    async def _open_link(self) -> None:
        await self._ensure_link()

    async def _initialise(self) -> None:
        """Check the spectrometer is attached; set the solvent if given.

        No ``Abort`` here: an NMR holds no energy, and a run the operator started from
        the Spinsolve screen must not be killed by a client connecting.
        """
        info = await self.hardware_check()
        if _version(info.software) < MIN_SOFTWARE:
            log.warning("%s: Spinsolve software %s is older than %s, which public clients "
                        "were tested with", self.name, info.software,
                        ".".join(map(str, MIN_SOFTWARE)))
        if self.solvent is not None:
            await self.set_solvent(self.solvent)

    async def disconnect(self) -> None:
        await self._close_link()

    async def _probe(self) -> None:
        await self.hardware_check()

    # -- reading ---------------------------------------------------------------------
    async def _read_loop(self, link: _Link) -> None:
        buffer = b""
        reason = "connection closed by the Spinsolve"
        try:
            while True:
                chunk = await link.reader.read(65536)
                if not chunk:
                    break
                buffer += chunk
                while (i := buffer.find(_END)) >= 0:
                    raw, buffer = buffer[: i + len(_END)], buffer[i + len(_END) :]
                    self._dispatch(link, raw)
                if len(buffer) > 4_000_000:
                    self._dispatch(link, buffer)  # no end tag in 4 MB: report, start afresh
                    buffer = b""
        except OSError as exc:
            reason = f"read failed: {exc!r}"
        finally:
            if not link.closed:  # not our own close: tell every waiter
                link.closed = True
                link.fail_waiters(lambda: ConnectionLost(reason, device=self.name))
                link.notes.put_nowait(_Item(error=ConnectionLost(reason, device=self.name)))

    def _dispatch(self, link: _Link, raw: bytes) -> None:
        wire_log.debug("%s << %r", self.name, raw)
        try:
            root = ET.fromstring(raw.lstrip())  # a declaration must start the document
        except ET.ParseError as exc:
            root, problem = None, f"unparseable XML ({exc})"
        else:
            problem = None
            if root.tag != "Message" or len(root) == 0:
                problem = f"expected <Message> with one child, got <{root.tag}>"
        if root is None or problem is not None:
            # It may have been any reply or notification: everyone waiting hears of it
            # (the notification queue is flushed before the next Start).
            def garbled() -> GarbledReply:
                return GarbledReply(f"{problem}: {raw[:200]!r}", device=self.name)

            link.fail_waiters(garbled)
            link.notes.put_nowait(_Item(error=garbled()))
            return
        body = root[0]
        if body.tag == "StatusNotification":
            if len(body) == 0:
                log.warning("%s: empty StatusNotification ignored", self.name)
                return
            link.notes.put_nowait(_Item(element=body[0]))
        elif body.tag == "CompletedNotificationType":  # a form AnalyticalLabware accepts
            event = ET.Element("Completed", body.attrib)
            link.notes.put_nowait(_Item(element=event))
        elif not link.deliver(body):
            wire_log.debug("%s: dropped <%s> that no request waits for", self.name, body.tag)

    # -- writing and requests --------------------------------------------------------
    async def _send(self, link: _Link, child: ET.Element) -> None:
        data = _message(child)
        async with self._write_lock:
            wire_log.debug("%s >> %r", self.name, data)
            try:
                link.writer.write(data)
                await _within(link.writer.drain(), self.timeout_s)
            except (OSError, TimeoutError) as exc:
                await self._drop(link)
                raise ConnectionLost(f"write failed: {exc!r}", device=self.name) from exc

    async def _command(self, child: ET.Element) -> None:
        """Send a message that has no reply (Set, Abort)."""
        link = await self._ensure_link()
        await self._send(link, child)

    async def _request(
        self, child: ET.Element, expect: str, *, timeout_s: float | None = None
    ) -> ET.Element:
        """Send ``child`` and return the reply element tagged ``expect``."""
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        link = await self._ensure_link()
        future: asyncio.Future[ET.Element] = asyncio.get_running_loop().create_future()
        link.waiters.setdefault(expect, deque()).append(future)
        try:
            await self._send(link, child)
            return await _within(future, timeout)
        except TimeoutError as exc:
            # The device state is unknown, and a late reply would be taken for the next
            # one: the next call starts on a fresh connection.
            await self._drop(link)
            raise ReplyTimeout(
                f"no <{expect}> to <{child.tag}> within {timeout:g} s", device=self.name
            ) from exc
        finally:
            queue = link.waiters.get(expect)
            if queue is not None and future in queue:
                queue.remove(future)

    def _check_error(self, reply: ET.Element, what: str) -> None:
        error = reply.get("error")
        if error:
            raise DeviceFault(f"{what}: {error}", device=self.name, code=reply.tag)

    # -- simple queries and settings ---------------------------------------------------
    async def hardware_check(self) -> HardwareInfo:
        """HardwareRequest; raises DeviceFault unless the spectrometer is connected."""
        reply = await self._request(ET.Element("HardwareRequest"), "HardwareResponse")
        self._check_error(reply, "hardware request")
        connected_el = reply.find("ConnectedToHardware")
        if connected_el is None:
            raise GarbledReply("HardwareResponse without ConnectedToHardware", device=self.name)
        details = {c.tag: (c.text or "").strip() for c in reply if len(c) == 0}
        info = HardwareInfo(
            connected=_truthy(connected_el.text),
            software=details.get("SpinsolveSoftware", ""),
            details=details,
        )
        self.hardware = info
        if not info.connected:
            raise DeviceFault(
                "the Spinsolve software is not connected to the spectrometer hardware",
                device=self.name, code="not-connected",
            )
        return info

    async def available_options(self, *, refresh: bool = False) -> dict[str, dict[str, list[str]]]:
        """``{protocol: {option: [allowed values]}}``; an empty list means any value."""
        if self._options is not None and not refresh:
            return self._options
        reply = await self._request(
            ET.Element("AvailableProtocolOptionsRequest"), "AvailableProtocolOptionsResponse"
        )
        self._check_error(reply, "available protocol options")
        table: dict[str, dict[str, list[str]]] = {}
        for p in reply.findall("Protocol"):
            protocol = p.get("protocol")
            if protocol is None:
                raise GarbledReply("<Protocol> without a protocol attribute", device=self.name)
            table[protocol] = {
                o.get("name", ""): [(v.text or "").strip() for v in o.findall("Value")]
                for o in p.findall("Option")
            }
        self._options = table
        return table

    async def check_options(
        self, protocol: str, options: Mapping[str, object] | None = None
    ) -> dict[str, str]:
        """Validate against what the Spinsolve reports; return the values as it spells them.

        Raises SetpointRejected for an unknown protocol, option or value (nothing sent).
        """
        given = {name: _format_value(v) for name, v in (options or {}).items()}
        if not self.validate_options:
            return given
        table = await self.available_options()
        if protocol not in table:
            raise SetpointRejected(device=self.name, quantity="protocol", value=protocol,
                                   unit="", allowed=", ".join(sorted(table)))
        allowed_options = table[protocol]
        checked: dict[str, str] = {}
        for name, value in given.items():
            if name not in allowed_options:
                raise SetpointRejected(
                    device=self.name, quantity=f"{protocol} option name", value=name, unit="",
                    allowed=", ".join(allowed_options) or "(this protocol takes no options)",
                )
            allowed = allowed_options[name]
            if not allowed:
                checked[name] = value
                continue
            match = next((a for a in allowed if _same_value(value, a)), None)
            if match is None:
                raise SetpointRejected(
                    device=self.name, quantity=f"{protocol} option {name}", value=value,
                    unit=_OPTION_UNITS.get(name, ""), allowed="{" + ", ".join(allowed) + "}",
                )
            checked[name] = match
        return checked

    async def estimate_duration(
        self, protocol: str, options: Mapping[str, object] | None = None
    ) -> float:
        """EstimateDurationRequest: expected run time in seconds."""
        checked = await self.check_options(protocol, options)
        return await self._estimate(protocol, checked)

    async def _estimate(self, protocol: str, options: Mapping[str, str]) -> float:
        request = ET.Element("EstimateDurationRequest", protocol=protocol)
        for name, value in options.items():
            ET.SubElement(request, "Option", name=name, value=value)
        reply = await self._request(request, "EstimateDurationResponse")
        self._check_error(reply, f"duration estimate for {protocol}")
        seconds = _float(reply.get("durationInSeconds"))
        if seconds is None or seconds < 0:
            raise GarbledReply(f"EstimateDurationResponse without a valid durationInSeconds: "
                               f"{ET.tostring(reply)!r}", device=self.name)
        return seconds

    async def get_setting(self, what: str) -> Any:
        """GetRequest for Sample, Solvent or DataFolder (str) or UserData (dict)."""
        if what not in ("Sample", "Solvent", "DataFolder", "UserData"):
            raise ValueError(f"cannot get {what!r}; use Sample, Solvent, DataFolder or UserData")
        request = ET.Element("GetRequest")
        ET.SubElement(request, what)
        reply = await self._request(request, "GetResponse")
        self._check_error(reply, f"get {what}")
        item = reply.find(what)
        if item is None:
            raise GarbledReply(f"GetResponse without <{what}>", device=self.name)
        if what == "UserData":
            return {d.get("key", ""): d.get("value", "") for d in item.findall("Data")}
        if what == "DataFolder" and len(item):
            return (item[0].text or "").strip()
        return (item.text or "").strip()

    async def _set(self, child: ET.Element) -> None:
        setter = ET.Element("Set")
        setter.append(child)
        await self._command(setter)

    @staticmethod
    def _text(what: str, value: object) -> str:
        if not isinstance(value, str | Path):
            raise TypeError(f"{what} must be a string, got {value!r}")
        return str(value)

    async def set_sample(self, sample: str) -> None:
        el = ET.Element("Sample")
        el.text = self._text("sample", sample)
        await self._set(el)

    async def set_solvent(self, solvent: str) -> None:
        el = ET.Element("Solvent")
        el.text = self._text("solvent", solvent)
        await self._set(el)

    async def set_user_data(self, data: Mapping[str, object]) -> None:
        """UserData in the XSD form ``<Data key=".." value=".."/>`` (one per entry)."""
        el = self._user_data_element(data)
        await self._set(el)

    def _user_data_element(self, data: Mapping[str, object]) -> ET.Element:
        el = ET.Element("UserData")
        for key, value in data.items():
            ET.SubElement(el, "Data", key=self._text("user data key", key),
                          value=_format_value(value))
        return el

    async def set_data_folder(self, folder: str | Path, *, mode: str = "UserFolder") -> None:
        """``<DataFolder><UserFolder>folder</UserFolder></DataFolder>``; ``mode`` may be
        ``TimeStamp`` (root/yyyymmddhhmmss) or ``TimeStampTree`` (root/yyyy/mm/dd/hh/mm/ss).
        """
        await self._set(self._data_folder_element(folder, mode))

    def _data_folder_element(self, folder: str | Path, mode: str) -> ET.Element:
        if mode not in ("UserFolder", "TimeStamp", "TimeStampTree"):
            raise ValueError(f"data folder mode {mode!r}; use UserFolder, TimeStamp or "
                             "TimeStampTree")
        text = self._text("data folder", folder)
        if not text:
            raise ValueError("data folder must not be empty")
        el = ET.Element("DataFolder")
        ET.SubElement(el, mode).text = text
        return el

    # -- shimming --------------------------------------------------------------------
    async def shim(
        self, method: str = "CheckShim", *, sample_reference_ppm: float | None = None
    ) -> ShimResult:
        """CheckShim (measure only), QuickShim or PowerShim.

        Without ``sample_reference_ppm`` through the *ShimRequest forms (on the shim
        standard); with it as the ``SHIM 1H SAMPLE`` protocol on the liquid in the cell,
        locking onto the line at that shift (a flow cell cannot take the standard without
        being emptied). That protocol answers through notifications and a ``shim.par``
        file, whose ``LineWidth`` is read when present.
        """
        if method not in SHIM_METHODS:
            raise SetpointRejected(device=self.name, quantity="shim method", value=method,
                                   unit="", allowed=", ".join(SHIM_METHODS))
        if sample_reference_ppm is not None:
            run = await self.acquire(SAMPLE_SHIM_PROTOCOL, {
                "SampleReference": f"{sample_reference_ppm:g}", "Shim": method})
            details = _shim_details(run.data_folder / "shim.par", self.name)
            return ShimResult(
                ok=True,  # an unsuccessful run raised DeviceFault in acquire()
                line_width_hz=_float(details.get("LineWidth")),
                base_width_hz=_float(details.get("BaseWidth")),
                details=details,
            )
        async with self._op_lock:
            wall = self.clock.wall_seconds(SHIM_TIMEOUT_S[method]) + self.timeout_s
            reply = await self._request(
                ET.Element(f"{method}Request"), f"{method}Response", timeout_s=wall
            )
        self._check_error(reply, method)
        details = {c.tag: (c.text or "").strip() for c in reply}
        return ShimResult(
            ok=_truthy(details.get("SystemIsReady")),
            line_width_hz=_float(details.get("LineWidth")),
            base_width_hz=_float(details.get("BaseWidth")),
            details=details,
        )

    # -- acquisition -----------------------------------------------------------------
    async def acquire(
        self,
        protocol: str,
        options: dict[str, Any] | None = None,
        *,
        sample: str | None = None,
        data_folder: str | Path | None = None,
        user_data: dict[str, str] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Acquisition:
        """Run ``protocol`` and return where its data are.

        Options are checked against AvailableProtocolOptionsResponse before anything is
        sent. Sample, user data and data folder are set when given (Spinsolve keeps them
        for later runs). Raises DeviceFault on an ``Error`` notification, an unsuccessful
        run or a missing data file; ReplyTimeout when the run does not start or finish in
        time (the driver then sends Abort so the next run is not refused as busy).
        """
        checked = await self.check_options(protocol, options)
        if sample is not None:
            self._text("sample", sample)
        folder_el = None
        if data_folder is not None:
            folder_el = self._data_folder_element(data_folder, "UserFolder")
        elif self.data_root is not None:
            folder_el = self._data_folder_element(self.data_root, "TimeStamp")
        user_el = self._user_data_element(user_data) if user_data is not None else None
        callback = on_progress or self.on_progress

        async with self._op_lock:
            if sample is not None:
                await self.set_sample(sample)
            if user_el is not None:
                await self._set(user_el)
            if folder_el is not None:
                await self._set(folder_el)
            estimate = await self._duration_for(protocol, checked)
            budget = (estimate * (1 + self.duration_margin) + self.duration_margin_s
                      if estimate is not None else self.max_duration_s)
            self._abort_requested = False
            self._heard_since_start = False
            self._run_done = asyncio.Event()
            started_at = self.clock.now()
            try:
                folder = await self._run(protocol, checked, budget, callback,
                                         requested=str(data_folder) if data_folder else None)
            except (CommunicationError, asyncio.CancelledError):
                await self._abort_quietly(protocol)
                raise
            finally:
                self._run_done.set()
            data_path = await self._wait_for_data(protocol, folder)
            finished_at = self.clock.now()
        metadata: dict[str, Any] = {
            "sample": sample,
            "user_data": dict(user_data or {}),
            "estimated_duration_s": estimate,
            "started_at": started_at,
            "finished_at": finished_at,
            "elapsed_s": finished_at - started_at,
        }
        if data_path is not None:
            metadata["data_file"] = str(data_path)
        if self.hardware is not None:
            metadata["software"] = self.hardware.software
        return Acquisition(protocol=protocol, data_folder=folder, options=dict(checked),
                           metadata=metadata)

    async def _duration_for(self, protocol: str, options: Mapping[str, str]) -> float | None:
        try:
            return await self._estimate(protocol, options)
        except DeviceFault as exc:
            log.warning("%s: no duration estimate (%s); using scans x repetition time",
                        self.name, exc)
        scans = _float(options.get("Number") or options.get("Scans"))
        rep = _float(options.get("RepetitionTime"))
        if scans is not None and rep is not None:
            return max(1.0, scans) * rep
        return None

    async def _run(
        self,
        protocol: str,
        options: Mapping[str, str],
        budget_s: float,
        callback: ProgressCallback | None,
        *,
        requested: str | None,
    ) -> Path:
        """Send Start and follow notifications until this run completes; return its folder."""
        start = ET.Element("Start", protocol=protocol)
        for name, value in options.items():
            ET.SubElement(start, "Option", name=name, value=value)
        link = await self._ensure_link()
        stale = _flush(link.notes)
        if stale:
            wire_log.debug("%s: flushed %d stale notifications before Start", self.name, stale)
        await self._send(link, start)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        run_deadline = sent + self.clock.wall_seconds(budget_s) + self.start_timeout_s
        started = False
        folder: str | None = requested
        ready_at: float | None = None
        grace = self.timeout_s

        def report(status: str, event: ET.Element) -> None:
            progress = AcquisitionProgress(
                protocol=protocol, status=status,
                percentage=_float(event.get("percentage")),
                seconds_remaining=_float(event.get("secondsRemaining")),
                data_folder=folder,
            )
            self.progress = progress
            if callback is not None:
                try:
                    callback(progress)
                except Exception:  # a display problem must not end the acquisition
                    log.exception("%s: progress callback failed", self.name)

        while True:
            now = loop.time()
            if not started:
                deadline, what = sent + self.start_timeout_s, "State Running"
            elif ready_at is not None:
                deadline, what = min(ready_at + grace, run_deadline), "Completed"
            else:
                deadline, what = run_deadline, "Completed"
            try:
                item = await _within(link.notes.get(), max(0.0, deadline - now))
            except TimeoutError as exc:
                if ready_at is not None and not self._abort_requested and folder:
                    # flowchem's reading: State Ready ends the run even without Completed
                    return Path(folder)
                raise ReplyTimeout(
                    f"{protocol}: no {what} within "
                    + (f"{self.start_timeout_s:g} s of Start" if not started
                       else f"the {budget_s:g} s (simulated) budget"),
                    device=self.name,
                ) from exc
            self._heard_since_start = True
            if item.error is not None:
                raise item.error
            event = item.element
            assert event is not None
            other = event.get("protocol")
            if other is not None and other != protocol:
                wire_log.debug("%s: ignored notification for %s", self.name, other)
                continue
            kind = event.tag
            if kind == "Error":
                raise DeviceFault(f"{protocol}: {event.get('error', 'error')}",
                                  device=self.name, code="acquisition-error")
            if kind == "State":
                status = event.get("status", "")
                if status == "Running":
                    started = True
                if started and event.get("dataFolder"):
                    folder = event.get("dataFolder")
                if status == "Ready" and started:
                    ready_at = loop.time()
                report(status, event)
            elif kind == "Progress":
                started = True
                report("Running", event)
            elif kind == "Completed":
                if not started:
                    wire_log.debug("%s: ignored Completed from before this run", self.name)
                    continue
                if not _truthy(event.get("successful")) or not _truthy(event.get("completed")):
                    why = "aborted" if self._abort_requested else "not successful"
                    raise DeviceFault(f"{protocol}: acquisition {why}", device=self.name,
                                      code="aborted" if self._abort_requested else "unsuccessful")
                report("Completed", event)
                if folder is None:
                    folder = await self._folder_after_completed(link, protocol)
                return Path(folder)

    async def _folder_after_completed(self, link: _Link, protocol: str) -> str:
        """Completed came before any State with dataFolder: wait briefly for State Ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            try:
                item = await _within(link.notes.get(), max(0.0, deadline - loop.time()))
            except TimeoutError as exc:
                raise DeviceFault(f"{protocol}: completed but no data folder was reported",
                                  device=self.name, code="no-data-folder") from exc
            if item.error is not None:
                raise item.error
            event = item.element
            if (event is not None and event.tag == "State" and event.get("dataFolder")
                    and event.get("protocol", protocol) == protocol):
                return event.get("dataFolder", "")

    async def _wait_for_data(self, protocol: str, folder: Path) -> Path | None:
        """Files can lag Completed (RoboChem v1 polls for them): wait, bounded."""
        if self.data_file is None or protocol.upper().startswith("SHIM"):
            return None
        path = folder / self.data_file
        deadline = self.clock.now() + self.file_wait_s
        # writing files takes wall time even when the clock runs fast: wait at least the
        # communication timeout in wall seconds as well
        wall_deadline = asyncio.get_running_loop().time() + self.timeout_s
        while True:
            if path.is_file() and path.stat().st_size > 32:  # more than the 32-byte header
                return path
            if (self.clock.now() >= deadline
                    and asyncio.get_running_loop().time() >= wall_deadline):
                raise DeviceFault(
                    f"{protocol}: {path} did not appear within {self.file_wait_s:g} s "
                    "(simulated) of Completed", device=self.name, code="no-data-file",
                )
            await self.clock.sleep(min(0.25, self.clock.simulated_seconds(0.02)))

    async def _abort_quietly(self, protocol: str) -> None:
        """After a lost, late or garbled run, stop the device so the next Start is not
        refused as busy. When the device was heard after Start (so it probably runs),
        wait up to ``timeout_s`` for it to report the end."""
        self._abort_requested = True
        try:
            await _within(self._command(ET.Element("Abort")), self.timeout_s)
            link = self._link
            if not self._heard_since_start or link is None:
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout_s
            while True:
                item = await _within(link.notes.get(), max(0.0, deadline - loop.time()))
                event = item.element
                if item.error is not None and isinstance(item.error, ConnectionLost):
                    return
                if (event is not None and event.get("protocol", protocol) == protocol
                        and (event.tag == "Completed"
                             or (event.tag == "State" and event.get("status") == "Ready"))):
                    return
        except LINK_ERRORS as exc:
            # The run already failed and that error is what the caller sees; the abort is
            # a courtesy to the next run.
            log.warning("%s: abort after a failed run failed: %r", self.name, exc)

    async def abort(self) -> None:
        """Send Abort; if this driver is running an acquisition, wait (bounded) for it to end."""
        self._abort_requested = True
        await self._command(ET.Element("Abort"))
        done = self._run_done
        if done is not None and not done.is_set():
            with contextlib.suppress(TimeoutError):
                await _within(done.wait(), self.timeout_s)
