"""Magritek Spinsolve remote-control simulator (devices.md §12).

A TCP server speaking the Spinsolve remote-control XML: a stream of UTF-8 documents with
root ``<Message>``, each sent with an XML declaration and a trailing newline. Requests
(``HardwareRequest``, ``GetRequest``, ``EstimateDurationRequest``, ``*ShimRequest``, ...)
get a ``…Response``; ``Set`` and ``Abort`` get none; ``Start`` is followed by
``StatusNotification``s (``State Running``, ``Progress`` about every simulated second,
``State Ready`` with the data folder, ``Completed``) while the experiment runs on the
shared clock for scans × repetition time.

Written from the protocol reference alone; it never imports the driver.

Hooks for the virtual lab:

* ``spectrum_source(context) -> FID array or Signal list``: what the sample looks like.
  ``context`` holds protocol, options, sample, solvent, user_data, nucleus, b1_freq_mhz,
  center_ppm, bandwidth_hz, n_points, scans, line_width_hz and time (simulated seconds).
* ``line_width_hz`` (shim state, drifting since the last shim) goes to the synthesiser.
* ``connected_to_hardware``, ``stable_temperatures``, ``stable_lock`` are plain attributes.

Faults: the common kinds (``sim.faults``) apply to the messages named in
``fault_targets`` (requests that answer, and ``Start``, whose first notification they
hit); acquisition faults (``sim.inject_acquisition_fault``) change the next run:
``out_of_order``, ``late_file``, ``unsuccessful``, ``acquisition_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from robochem.clock import Clock
from robochem.simulator.base import FaultKind, StreamSimulator
from robochem.simulator.nmr_files import write_acqu_par, write_spinsolve_folder
from robochem.simulator.nmr_synth import Signal, b1_for_nucleus, synthesize_fid

log = logging.getLogger("robochem.simulator.spinsolve")

__all__ = ["AcquisitionFaultKind", "SpinsolveSimulator", "default_spectrum"]

SpectrumSource = Callable[[dict[str, Any]], "np.ndarray | Sequence[Signal]"]

_END = b"</Message>"
_POWERS_OF_TWO = [str(2**i) for i in range(15)]  # 1 .. 16384

#: What AvailableProtocolOptionsRequest reports (devices.md §12.3; value lists follow
#: the vendor's sample ProtocolOptions.xml form). An empty list means "free value".
PROTOCOL_OPTIONS: dict[str, dict[str, list[str]]] = {
    "1D PROTON": {"Scan": ["QuickScan", "StandardScan", "PowerScan"]},
    "1D EXTENDED+": {
        "Number": ["0", *_POWERS_OF_TWO],
        "AcquisitionTime": ["0.4", "0.8", "1.6", "3.2", "6.4"],
        "RepetitionTime": [
            "1", "2", "4", "7", "10", "15", "30", "60", "120", "180", "240", "300", "600",
        ],
        "PulseAngle": ["30", "45", "60", "90"],
    },
    "1D FLUORINE HDEC": {
        "Number": [str(2**i) for i in range(18)],  # up to 131072
        "AcquisitionTime": ["0.102", "0.205", "0.41", "0.819", "1.64"],
        "RepetitionTime": ["0.3", "0.5", "1", "2", "4", "7", "10", "15", "30", "60", "120",
                           "300", "600"],
        "PulseAngle": ["5", "10", "15", "30", "45", "60", "90"],
        "centerFrequency": [],
        "PulselengthScale": ["1", "2", "4"],
        "decouplePower": [str(-i) for i in range(16)] + ["-85"],
    },
    "1D FLUORINE": {},
    "1D FLUORINE+": {},
    "1D CARBON": {},
    "1D CARBON+": {},
    "RM": {
        "Number": ["0", "5", "10", "25", "50", "100", "250", "500", "1000"],
        "IntervalTime": ["0", "15", "30", "45", "60", "120", "300", "600", "900", "1800"],
    },
    "SHIM": {"Shim": ["CheckShim", "QuickShim", "PowerShim"]},
    "SHIM 1H SAMPLE": {"SampleReference": [], "Shim": ["CheckShim", "QuickShim", "PowerShim"]},
}

#: Scans and repetition time (s) behind the fixed 1D PROTON scan modes.
PROTON_SCANS = {"QuickScan": (1, 15.0), "StandardScan": (16, 10.0), "PowerScan": (64, 15.0)}
#: Simulated duration of each shim method, in seconds.
SHIM_DURATION_S = {"CheckShim": 30.0, "QuickShim": 180.0, "PowerShim": 1800.0}
#: Line width (Hz at 50 %) right after each shim method; CheckShim only measures.
SHIM_RESULT_HZ = {"QuickShim": 0.9, "PowerShim": 0.6}

#: Per nucleus: (receiver bandwidth Hz, centre ppm).
NUCLEUS_WINDOW = {"1H": (5000.0, 5.0), "19F": (20000.0, -100.0), "13C": (12000.0, 100.0)}
PROTOCOL_NUCLEUS = {
    "1D FLUORINE HDEC": "19F", "1D FLUORINE": "19F", "1D FLUORINE+": "19F",
    "1D CARBON": "13C", "1D CARBON+": "13C",
}


class AcquisitionFaultKind(enum.StrEnum):
    OUT_OF_ORDER = "out_of_order"  # stale Completed first, Progress before Running, ...
    LATE_FILE = "late_file"  # files written ``delay_s`` simulated s after Completed
    UNSUCCESSFUL = "unsuccessful"  # Completed completed="true" successful="false"
    ACQUISITION_ERROR = "acquisition_error"  # an Error notification mid-run


@dataclass
class _AcqFault:
    kind: AcquisitionFaultKind
    remaining: int | None
    delay_s: float


def default_spectrum(context: dict[str, Any]) -> list[Signal]:
    """A test sample: TMB internal standard (6.1 ppm 3H, 3.8 ppm 9H) and a product."""
    if context.get("nucleus") == "19F":
        return [Signal(-63.0, 3, 0.05), Signal(-110.0, 1, 0.08)]
    return [Signal(6.08, 3, 0.05), Signal(3.78, 9, 0.05), Signal(7.25, 2, 0.08)]


def _msg(child: ET.Element) -> bytes:
    root = ET.Element("Message")
    root.append(child)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _el(tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    e = ET.Element(tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        e.text = text
    return e


class SpinsolveSimulator(StreamSimulator):
    """A Spinsolve PC with remote control enabled (``tcp://127.0.0.1:PORT``)."""

    family = "spinsolve"

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        data_root: Path | str | None = None,
        spectrum_source: SpectrumSource | None = None,
        software: str = "1.18.1.3062",
        proton_mhz: float = 43.49,
        noise_sd: float = 0.002,
        seed: int = 0,
    ) -> None:
        super().__init__(clock=clock, host=host, port=port)
        self.data_root = Path(data_root or tempfile.mkdtemp(prefix="spinsolve-sim-"))
        self.spectrum_source = spectrum_source or default_spectrum
        self.software = software
        self.proton_mhz = proton_mhz
        self.noise_sd = noise_sd
        self.rng = np.random.default_rng(seed)
        # device state the virtual lab may read or set
        self.connected_to_hardware = True
        self.operating_temperature = True
        self.stable_temperatures = True
        self.stable_lock = True
        self.shim_drift_hz_per_hour = 0.1
        self._shim_line_width_hz = 1.5
        self._shimmed_at = self.clock.now()
        self.sample = ""
        self.solvent = "Acetonitrile"
        self.user_data: dict[str, str] = {}
        self.folder_mode = "TimeStamp"  # UserFolder | TimeStamp | TimeStampTree
        self.folder_value = str(self.data_root)
        self.protocol_options = {p: {k: list(v) for k, v in o.items()}
                                 for p, o in PROTOCOL_OPTIONS.items()}
        self.fault_targets: set[str] = {
            "HardwareRequest", "AvailableProtocolOptionsRequest", "GetRequest",
            "EstimateDurationRequest", "CheckShimRequest", "QuickShimRequest",
            "PowerShimRequest", "Start",
        }
        self.acquisition_faults: list[_AcqFault] = []
        self.busy_with: str | None = None  # protocol (or shim method) running
        self.state = "Ready"
        self.progress_percent = 0.0
        self.completed_folders: list[Path] = []
        #: False mimics clients' reports of runs that end with State Ready alone
        self.send_completed = True
        self._abort = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- public hooks ------------------------------------------------------------------
    def url(self, scheme: str = "tcp") -> str:
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def line_width_hz(self) -> float:
        """Current line width at 50 % height: the last shim result plus drift."""
        hours = max(0.0, self.clock.now() - self._shimmed_at) / 3600.0
        return self._shim_line_width_hz + self.shim_drift_hz_per_hour * hours

    @line_width_hz.setter
    def line_width_hz(self, value: float) -> None:
        self._shim_line_width_hz = float(value)
        self._shimmed_at = self.clock.now()

    @property
    def base_width_hz(self) -> float:
        return 25.0 * self.line_width_hz  # base width at 0.55 % height

    def inject_acquisition_fault(
        self, kind: AcquisitionFaultKind | str, *, count: int | None = 1, delay_s: float = 3.0
    ) -> None:
        """Arm a fault for the next ``count`` acquisitions (None: until cleared)."""
        self.acquisition_faults.append(_AcqFault(AcquisitionFaultKind(kind), count, delay_s))

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # asyncio.wait raises nothing for the tasks' own ends (only if stop() itself
            # is cancelled): a cancelled task is what we asked for, a failed one is logged.
            await asyncio.wait(tasks)
            for task in tasks:
                if not task.cancelled() and task.exception() is not None:
                    log.error("spinsolve simulator: run task failed: %r", task.exception())
        await super().stop()

    # -- framing -----------------------------------------------------------------------
    def split(self, buffer: bytes) -> tuple[bytes | None, bytes]:
        i = buffer.find(_END)
        if i < 0:
            if len(buffer) > 1_000_000:  # no closing tag in a megabyte: discard junk
                return None, b""
            return None, buffer
        return buffer[: i + len(_END)], buffer[i + len(_END) :]

    @staticmethod
    def _parse(request: bytes) -> ET.Element | None:
        try:
            root = ET.fromstring(request.strip())
        except ET.ParseError:
            return None
        if root.tag != "Message" or len(root) == 0:
            return None
        return root[0]

    # -- dispatch ------------------------------------------------------------------------
    async def _reply(self, request: bytes, writer: asyncio.StreamWriter) -> bool:
        body = self._parse(request)
        if body is None:
            log.warning("spinsolve sim: ignoring malformed message %r", request[:200])
            return True
        fault = self.faults.take() if body.tag in self.fault_targets else None
        kind = fault.kind if fault else None
        if kind is FaultKind.NO_REPLY:
            return True  # swallowed: a Start never starts
        if kind is FaultKind.DROP:
            writer.close()
            return False
        if kind is FaultKind.LATE_REPLY and fault is not None:
            await asyncio.sleep(fault.delay_s)
        if kind is FaultKind.DEVICE_ERROR:
            reply = self.device_error_reply(request)
        else:
            reply = self._dispatch(body, writer, garble_first=kind is FaultKind.GARBLED)
        if reply:
            if kind is FaultKind.GARBLED:
                reply = self._garble(reply)
            writer.write(reply)
            await writer.drain()
        return True

    def handle(self, request: bytes) -> bytes | None:
        """The direct reply to ``request`` (requests only; Start/Abort need a connection)."""
        body = self._parse(request)
        return None if body is None else self._response(body)

    def device_error_reply(self, request: bytes) -> bytes | None:
        body = self._parse(request)
        if body is None:
            return None
        if body.tag == "HardwareRequest":
            return self._hardware_response(connected=False)
        if body.tag == "Start":
            return self._note(_el("Error", protocol=body.get("protocol", ""),
                                  error="Simulated hardware error"))
        if body.tag.endswith("Request"):
            tag = body.tag[: -len("Request")] + "Response"
            return _msg(_el(tag, error="Simulated device error", protocol=body.get("protocol")))
        return None

    def _garble(self, data: bytes) -> bytes:
        """Corrupt a byte of the root tag's name so the document cannot parse (framing
        stays intact: the closing tag is untouched)."""
        i = data.find(b"<Message") + 1 + int(self.faults.rng.randrange(len("Message")))
        return data[:i] + b"\x01" + data[i + 1 :]

    def _dispatch(
        self, body: ET.Element, writer: asyncio.StreamWriter, *, garble_first: bool
    ) -> bytes | None:
        tag = body.tag
        if tag == "Set":
            self._set(body)
            return None
        if tag == "Start":
            return self._start(body, garble_first=garble_first)
        if tag == "Abort":
            if self.busy_with is not None:
                self._abort.set()
            return None
        if tag in ("CheckShimRequest", "QuickShimRequest", "PowerShimRequest"):
            method = tag[: -len("Request")]
            if self.busy_with is not None:
                return _msg(self._shim_element(method, error=f"busy with {self.busy_with}"))
            self._spawn(self._run_shim_request(method, writer, garble=garble_first))
            return None
        return self._response(body)

    def _response(self, body: ET.Element) -> bytes | None:
        tag = body.tag
        if tag == "HardwareRequest":
            return self._hardware_response(connected=self.connected_to_hardware)
        if tag == "AvailableProtocolOptionsRequest":
            resp = _el("AvailableProtocolOptionsResponse")
            for protocol, options in self.protocol_options.items():
                p = ET.SubElement(resp, "Protocol", protocol=protocol)
                for name, values in options.items():
                    o = ET.SubElement(p, "Option", name=name)
                    for v in values:
                        ET.SubElement(o, "Value").text = v
            return _msg(resp)
        if tag == "AvailableProtocolsRequest":
            resp = _el("AvailableProtocolsResponse")
            for protocol in self.protocol_options:
                ET.SubElement(resp, "Protocol").text = protocol
            return _msg(resp)
        if tag == "GetRequest":
            return self._get(body)
        if tag == "EstimateDurationRequest":
            protocol = body.get("protocol", "")
            options = {o.get("name", ""): o.get("value", "") for o in body.findall("Option")}
            problem = self._check_options(protocol, options)
            if problem:
                return _msg(_el("EstimateDurationResponse", protocol=protocol,
                                durationInSeconds="0", error=problem))
            seconds = self._duration(protocol, options)
            return _msg(_el("EstimateDurationResponse", protocol=protocol,
                            durationInSeconds=f"{seconds:g}"))
        log.info("spinsolve sim: no reply to unknown request <%s>", tag)
        return None

    def _hardware_response(self, *, connected: bool) -> bytes:
        resp = _el("HardwareResponse")
        resp.append(_el("SpinsolveSoftware", self.software))
        resp.append(_el("RemoteControlVersion", "1.0"))
        resp.append(_el("ConnectedToHardware", _bool(connected)))
        resp.append(_el("SpinsolveHardware", "Spinsolve 43 Carbon (simulated)"))
        resp.append(_el("SpinsolveType", "43MHz"))
        return _msg(resp)

    # -- settings ------------------------------------------------------------------------
    def _set(self, body: ET.Element) -> None:
        for item in body:
            if item.tag == "Sample":
                self.sample = item.text or ""
            elif item.tag == "Solvent":
                self.solvent = item.text or ""
            elif item.tag == "UserData":
                # keys/values only in the XSD form <Data key=".." value=".."/>
                self.user_data = {
                    d.get("key", ""): d.get("value", "")
                    for d in item.findall("Data")
                    if d.get("key") is not None and d.get("value") is not None
                }
            elif item.tag == "DataFolder":
                if len(item) != 1 or item[0].tag not in ("UserFolder", "TimeStamp",
                                                          "TimeStampTree"):
                    log.warning("spinsolve sim: ignoring DataFolder without a folder element")
                    continue
                self.folder_mode, self.folder_value = item[0].tag, (item[0].text or "")

    def _get(self, body: ET.Element) -> bytes:
        resp = _el("GetResponse")
        for item in body:
            if item.tag == "Sample":
                resp.append(_el("Sample", self.sample))
            elif item.tag == "Solvent":
                resp.append(_el("Solvent", self.solvent))
            elif item.tag == "UserData":
                ud = ET.SubElement(resp, "UserData")
                for k, v in self.user_data.items():
                    ET.SubElement(ud, "Data", key=k, value=v)
            elif item.tag == "DataFolder":
                df = ET.SubElement(resp, "DataFolder")
                df.append(_el(self.folder_mode, self.folder_value))
        return _msg(resp)

    # -- protocols -----------------------------------------------------------------------
    def _check_options(self, protocol: str, options: dict[str, str]) -> str | None:
        if protocol not in self.protocol_options:
            return f"Unknown protocol '{protocol}'"
        allowed = self.protocol_options[protocol]
        for name, value in options.items():
            if name not in allowed:
                return f"Unknown option '{name}' for protocol '{protocol}'"
            values = allowed[name]
            if values and not any(_same(value, v) for v in values):
                return f"Invalid value '{value}' for option '{name}'"
        return None

    def _duration(self, protocol: str, options: dict[str, str]) -> float:
        scans, rep = self._scans_and_rep(protocol, options)
        if protocol.startswith("SHIM"):
            return SHIM_DURATION_S.get(options.get("Shim", "CheckShim"), 30.0)
        if protocol == "RM":
            number = max(1, int(options.get("Number", "1")))
            return number * float(options.get("IntervalTime", "60"))
        return scans * rep

    @staticmethod
    def _scans_and_rep(protocol: str, options: dict[str, str]) -> tuple[int, float]:
        if protocol == "1D PROTON":
            return PROTON_SCANS[options.get("Scan", "StandardScan")]
        scans = max(1, int(float(options.get("Number", "1"))))
        return scans, float(options.get("RepetitionTime", "10"))

    def _start(self, body: ET.Element, *, garble_first: bool) -> bytes | None:
        protocol = body.get("protocol", "")
        options = {o.get("name", ""): o.get("value", "") for o in body.findall("Option")}
        if self.busy_with is not None:
            return self._note(_el("Error", protocol=protocol,
                                  error=f"Cannot start: busy with {self.busy_with}"))
        if not self.connected_to_hardware:
            return self._note(_el("Error", protocol=protocol, error="Not connected to hardware"))
        problem = self._check_options(protocol, options)
        if problem:
            return self._note(_el("Error", protocol=protocol, error=problem))
        self.busy_with = protocol
        self.state = "Running"
        self._abort.clear()
        fault = self._take_acquisition_fault()
        self._spawn(self._run_acquisition(protocol, options, fault, garble_first))
        return None

    def _take_acquisition_fault(self) -> _AcqFault | None:
        for f in self.acquisition_faults:
            if f.remaining is None:
                return f
            if f.remaining > 0:
                f.remaining -= 1
                if f.remaining == 0:
                    self.acquisition_faults.remove(f)
                return f
        return None

    def _resolve_folder(self) -> Path:
        stamp = datetime.fromtimestamp(self.clock.now(), UTC)
        root = Path(self.folder_value) if self.folder_value else self.data_root
        if not root.is_absolute():
            root = self.data_root / root
        if self.folder_mode == "UserFolder":
            return root
        if self.folder_mode == "TimeStampTree":
            folder = root.joinpath(*stamp.strftime("%Y/%m/%d/%H/%M/%S").split("/"))
        else:
            folder = root / stamp.strftime("%Y%m%d%H%M%S")
        candidate, n = folder, 1
        while candidate.exists():  # two runs within one simulated second
            n += 1
            candidate = folder.with_name(f"{folder.name}_{n}")
        return candidate

    def _note(self, child: ET.Element) -> bytes:
        stamp = datetime.fromtimestamp(self.clock.now(), UTC).strftime("%H:%M:%S")
        note = _el("StatusNotification", timestamp=stamp)
        note.append(child)
        return _msg(note)

    def _send(self, data: bytes, *, garble: bool = False) -> None:
        self.broadcast(self._garble(data) if garble else data)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_acquisition(
        self, protocol: str, options: dict[str, str], fault: _AcqFault | None, garble: bool
    ) -> None:
        kind = fault.kind if fault else None
        folder = self._resolve_folder()
        duration = self._duration(protocol, options)
        ordered = kind is AcquisitionFaultKind.OUT_OF_ORDER
        running = self._note(_el("State", protocol=protocol, status="Running",
                                 dataFolder=str(folder)))
        try:
            if ordered:
                # a leftover of an earlier run, then progress before the state change
                self._send(self._note(_el("Completed", protocol=protocol, completed="true",
                                          successful="false")), garble=garble)
                garble = False
                self._send(self._progress(protocol, 0.0, duration))
            self._send(running, garble=garble)
            self.progress_percent = 0.0
            t0 = self.clock.now()
            aborted = failed = False
            while True:
                elapsed = self.clock.now() - t0
                if kind is AcquisitionFaultKind.ACQUISITION_ERROR and elapsed >= duration / 2:
                    failed = True
                    break
                if elapsed >= duration:
                    break
                # wake on whole simulated seconds so that lateness does not accumulate
                step = min(math.floor(elapsed) + 1.0, duration) - elapsed
                with contextlib.suppress(TimeoutError):
                    await self.clock.wait_for(self._abort.wait(), step)
                if self._abort.is_set():
                    aborted = True
                    break
                elapsed = min(duration, self.clock.now() - t0)
                self.progress_percent = 100.0 * elapsed / duration if duration else 100.0
                self._send(self._progress(protocol, elapsed, duration))
            if not aborted and not failed and self.progress_percent < 100.0:
                # the last tick can land a hair early: always report the end
                self.progress_percent = 100.0
                self._send(self._progress(protocol, duration, duration))
            if aborted:
                self._send(self._note(_el("State", protocol=protocol, status="Stopping",
                                          dataFolder=str(folder))))
                await self.clock.sleep(0.5)
                self._finish(protocol, folder, successful=False)
                return
            if failed:
                self._send(self._note(_el("Error", protocol=protocol,
                                          error="Simulated acquisition error: receiver overflow")))
                self._finish(protocol, folder, successful=False)
                return
            if kind is AcquisitionFaultKind.UNSUCCESSFUL:
                self._finish(protocol, folder, successful=False)
                return
            if kind is AcquisitionFaultKind.LATE_FILE and fault is not None:
                self._finish(protocol, folder, successful=True)
                await self.clock.sleep(fault.delay_s)
                self._write_files(protocol, options, folder)
                return
            self._write_files(protocol, options, folder)
            self._finish(protocol, folder, successful=True, completed_first=ordered)
        finally:
            if self.busy_with == protocol:
                self.busy_with = None
                self.state = "Ready"

    def _progress(self, protocol: str, elapsed: float, duration: float) -> bytes:
        pct = 100.0 * elapsed / duration if duration else 100.0
        return self._note(_el("Progress", protocol=protocol, percentage=str(int(pct)),
                              secondsRemaining=str(max(0, math.ceil(duration - elapsed)))))

    def _finish(self, protocol: str, folder: Path, *, successful: bool,
                completed_first: bool = False) -> None:
        self.busy_with = None
        self.state = "Ready"
        ready = self._note(_el("State", protocol=protocol, status="Ready",
                               dataFolder=str(folder)))
        completed = self._note(_el("Completed", protocol=protocol, completed="true",
                                   successful=_bool(successful)))
        for data in (completed, ready) if completed_first else (ready, completed):
            if data is completed and not self.send_completed:
                continue
            self._send(data)

    def _write_files(self, protocol: str, options: dict[str, str], folder: Path) -> None:
        if protocol.startswith("SHIM"):
            method = options.get("Shim", "CheckShim")
            self._apply_shim(method)
            folder.mkdir(parents=True, exist_ok=True)
            write_acqu_par(folder / "shim.par", {
                "Shim": method, "LineWidth": round(self.line_width_hz, 3),
                "BaseWidth": round(self.base_width_hz, 2)})
            self.completed_folders.append(folder)
            return
        nucleus = PROTOCOL_NUCLEUS.get(protocol, "1H")
        bandwidth, center = NUCLEUS_WINDOW[nucleus]
        b1 = b1_for_nucleus(nucleus, self.proton_mhz)
        scans, rep = self._scans_and_rep(protocol, options)
        acq = float(options.get("AcquisitionTime", "3.2" if nucleus != "19F" else "0.819"))
        n_points = 2 ** max(8, round(math.log2(acq * bandwidth)))
        context: dict[str, Any] = {
            "protocol": protocol, "options": dict(options), "sample": self.sample,
            "solvent": self.solvent, "user_data": dict(self.user_data), "nucleus": nucleus,
            "b1_freq_mhz": b1, "center_ppm": center, "bandwidth_hz": bandwidth,
            "n_points": n_points, "scans": scans, "line_width_hz": self.line_width_hz,
            "time": self.clock.now(), "data_folder": str(folder),
        }
        source = self.spectrum_source(context)
        if isinstance(source, np.ndarray):
            fid = source
        else:
            fid = synthesize_fid(
                list(source), nucleus=nucleus, b1_freq_mhz=b1, n_points=n_points,
                bandwidth_hz=bandwidth, center_ppm=center, linewidth_hz=self.line_width_hz,
                noise_sd=self.noise_sd / math.sqrt(scans), rng=self.rng,
            )
        write_spinsolve_folder(
            folder, fid, nucleus=nucleus, b1_freq_mhz=b1, bandwidth_hz=bandwidth,
            center_ppm=center, sample=self.sample or "sample", solvent=self.solvent,
            protocol=protocol, scans=scans, rep_time_s=rep, user_data=self.user_data,
            when=datetime.fromtimestamp(self.clock.now(), UTC),
        )
        self.completed_folders.append(folder)

    # -- shimming --------------------------------------------------------------------------
    def _apply_shim(self, method: str) -> None:
        if method in SHIM_RESULT_HZ:
            self.line_width_hz = SHIM_RESULT_HZ[method]

    def _shim_element(self, method: str, *, error: str | None = None) -> ET.Element:
        resp = _el(f"{method}Response", error=error)
        lw = self.line_width_hz
        resp.append(_el("OperatingTemperature", _bool(self.operating_temperature)))
        resp.append(_el("StableTemperatures", _bool(self.stable_temperatures)))
        resp.append(_el("StableLock", _bool(self.stable_lock)))
        resp.append(_el("LineWidth", f"{lw:.2f}"))
        resp.append(_el("BaseWidth", f"{self.base_width_hz:.1f}"))
        ready = (error is None and self.operating_temperature and self.stable_temperatures
                 and self.stable_lock and lw < 2.0)
        resp.append(_el("SystemIsReady", _bool(ready)))
        return resp

    async def _run_shim_request(
        self, method: str, writer: asyncio.StreamWriter, *, garble: bool
    ) -> None:
        self.busy_with = method
        self.state = "Running"
        self._abort.clear()
        try:
            aborted = False
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(self._abort.wait(), SHIM_DURATION_S[method])
                aborted = True
            if aborted:
                resp = self._shim_element(method, error="Shim aborted")
            else:
                self._apply_shim(method)
                resp = self._shim_element(method)
        finally:
            self.busy_with = None
            self.state = "Ready"
        data = _msg(resp)
        if not writer.is_closing():
            writer.write(self._garble(data) if garble else data)


def _same(a: str, b: str) -> bool:
    """Option values compare as numbers when both are numbers ("16" == "16.0")."""
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False
