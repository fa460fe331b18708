"""Raw XML exchanges with the Spinsolve simulator (no driver involved)."""

from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import nmrglue as ng
import numpy as np
import pytest
from wire import WAIT_S, RawClient, wait_until

from robochem.clock import Clock
from robochem.simulator.base import FaultKind
from robochem.simulator.nmr_synth import Signal
from robochem.simulator.spinsolve import SpinsolveSimulator

DECL = b"<?xml version='1.0' encoding='utf-8'?>"


def msg(body: str) -> bytes:
    return DECL + b"\n<Message>" + body.encode() + b"</Message>"


class Raw(RawClient):
    """A bare TCP client that sends documents and reads whole <Message>s."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.raw: list[bytes] = []

    async def read_message(self, timeout_s: float = WAIT_S) -> ET.Element:
        """The next message's first child."""
        raw = await self.read(b"</Message>", timeout_s)
        self.raw.append(raw)
        root = ET.fromstring(raw.lstrip())
        assert root.tag == "Message" and len(root) == 1
        return root[0]

    async def until(self, predicate, timeout_s: float = WAIT_S) -> list[ET.Element]:  # type: ignore[no-untyped-def]
        """Read messages until one satisfies ``predicate``; return all read."""
        seen = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            el = await self.read_message(max(0.01, deadline - loop.time()))
            seen.append(el)
            if predicate(el):
                return seen


def event(el: ET.Element) -> ET.Element:
    assert el.tag == "StatusNotification" and el.get("timestamp")
    assert len(el) == 1
    return el[0]


def is_completed(el: ET.Element) -> bool:
    return el.tag == "StatusNotification" and el[0].tag == "Completed"


@pytest.fixture
def clock() -> Clock:
    return Clock(speed=1000)


@pytest.fixture
async def sim(clock: Clock, tmp_path: Path) -> AsyncIterator[SpinsolveSimulator]:
    s = SpinsolveSimulator(clock=clock, data_root=tmp_path / "root")
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def raw(sim: SpinsolveSimulator) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    client = Raw(reader, writer)
    yield client
    await client.close()


async def test_url_and_hardware_response(sim: SpinsolveSimulator, raw: Raw) -> None:
    assert sim.url() == f"tcp://127.0.0.1:{sim.port}"
    await raw.send(msg("<HardwareRequest/>"))
    resp = await raw.read_message()
    assert raw.raw[0].startswith(DECL) and raw.buffer == b"\n"  # declaration + newline
    assert resp.tag == "HardwareResponse"
    assert resp.findtext("ConnectedToHardware") == "true"
    assert resp.findtext("SpinsolveSoftware") == "1.18.1.3062"
    assert resp.findtext("RemoteControlVersion")
    # XSD order: software, remote-control version, connected, then the optional ones
    assert [c.tag for c in resp][:3] == [
        "SpinsolveSoftware",
        "RemoteControlVersion",
        "ConnectedToHardware",
    ]


async def test_two_requests_in_one_segment_and_split_requests(raw: Raw) -> None:
    await raw.send(msg("<HardwareRequest/>") + b"\n  " + msg("<GetRequest><Solvent/></GetRequest>"))
    assert (await raw.read_message()).tag == "HardwareResponse"
    assert (await raw.read_message()).findtext("Solvent") == "Acetonitrile"
    data = msg("<GetRequest><Sample/></GetRequest>")
    for k in range(0, len(data), 5):
        await raw.send(data[k : k + 5])
    assert (await raw.read_message()).tag == "GetResponse"


async def test_available_protocol_options(raw: Raw) -> None:
    await raw.send(msg("<AvailableProtocolOptionsRequest/>"))
    resp = await raw.read_message()
    assert resp.tag == "AvailableProtocolOptionsResponse"
    table = {
        p.get("protocol"): {o.get("name"): [v.text for v in o.findall("Value")] for o in p}
        for p in resp.findall("Protocol")
    }
    assert table["1D PROTON"]["Scan"] == ["QuickScan", "StandardScan", "PowerScan"]
    ext = table["1D EXTENDED+"]
    assert ext["AcquisitionTime"] == ["0.4", "0.8", "1.6", "3.2", "6.4"]
    assert ext["PulseAngle"] == ["30", "45", "60", "90"]
    assert ext["Number"][0] == "0" and ext["Number"][-1] == "16384"
    assert ext["RepetitionTime"][0] == "1" and ext["RepetitionTime"][-1] == "600"
    hdec = table["1D FLUORINE HDEC"]
    assert hdec["Number"][-1] == "131072"
    assert hdec["AcquisitionTime"] == ["0.102", "0.205", "0.41", "0.819", "1.64"]
    assert hdec["PulselengthScale"] == ["1", "2", "4"]
    assert "-85" in hdec["decouplePower"] and "-15" in hdec["decouplePower"]
    assert table["SHIM"]["Shim"] == ["CheckShim", "QuickShim", "PowerShim"]
    assert set(table["RM"]) == {"Number", "IntervalTime"}


async def test_get_and_set(sim: SpinsolveSimulator, raw: Raw) -> None:
    await raw.send(
        msg("<Set><Sample>rxn_0042</Sample></Set>"),
        msg("<Set><Solvent>CDCl3</Solvent></Set>"),
        msg(
            '<Set><UserData><Data key="Comment" value="BO iter 5"/>'
            '<Data key="campaign" value="c1"/></UserData></Set>'
        ),
        msg("<Set><DataFolder><UserFolder>D:/nmr/c1/exp0042</UserFolder></DataFolder></Set>"),
        msg("<GetRequest><Sample/></GetRequest>"),
        msg("<GetRequest><Solvent/></GetRequest>"),
        msg("<GetRequest><UserData/></GetRequest>"),
        msg("<GetRequest><DataFolder/></GetRequest>"),
    )
    assert (await raw.read_message()).findtext("Sample") == "rxn_0042"
    assert (await raw.read_message()).findtext("Solvent") == "CDCl3"
    data = (await raw.read_message()).find("UserData")
    assert data is not None
    assert [d.attrib for d in data] == [
        {"key": "Comment", "value": "BO iter 5"},
        {"key": "campaign", "value": "c1"},
    ]
    assert (await raw.read_message()).findtext("DataFolder/UserFolder") == "D:/nmr/c1/exp0042"
    assert sim.user_data == {"Comment": "BO iter 5", "campaign": "c1"}


async def test_flowchem_forms_are_not_accepted(sim: SpinsolveSimulator, raw: Raw) -> None:
    """flowchem's <Data Comment=".."/> and empty <DataFolder/> do not set anything."""
    before = (sim.folder_mode, sim.folder_value)
    await raw.send(
        msg('<Set><UserData><Data Comment="x"/></UserData></Set>'),
        msg("<Set><DataFolder/></Set>"),
        msg("<GetRequest><UserData/></GetRequest>"),
    )
    data = (await raw.read_message()).find("UserData")
    assert data is not None and len(data) == 0
    assert (sim.folder_mode, sim.folder_value) == before


async def test_estimate_duration(raw: Raw) -> None:
    await raw.send(
        msg(
            '<EstimateDurationRequest protocol="1D EXTENDED+">'
            '<Option name="Number" value="16"/><Option name="RepetitionTime" '
            'value="10"/></EstimateDurationRequest>'
        )
    )
    resp = await raw.read_message()
    assert resp.tag == "EstimateDurationResponse"
    assert float(resp.get("durationInSeconds", "")) == 160 and not resp.get("error")
    await raw.send(
        msg(
            '<EstimateDurationRequest protocol="1D PROTON">'
            '<Option name="Scan" value="QuickScan"/></EstimateDurationRequest>'
        )
    )
    assert float((await raw.read_message()).get("durationInSeconds", "")) == 15
    await raw.send(
        msg(
            '<EstimateDurationRequest protocol="1D EXTENDED+">'
            '<Option name="Number" value="3"/></EstimateDurationRequest>'
        )
    )
    assert "Invalid value" in (await raw.read_message()).get("error", "")


async def test_start_sequence_and_files(tmp_path: Path) -> None:
    # a slower clock than elsewhere so that "about once a simulated second" is resolvable
    clock = Clock(speed=100)
    async with SpinsolveSimulator(clock=clock, data_root=tmp_path / "root") as sim:
        reader, writer = await asyncio.open_connection(sim.host, sim.port)
        raw = Raw(reader, writer)
        try:
            await _start_sequence_and_files(sim, raw, tmp_path, clock)
        finally:
            await raw.close()


async def _start_sequence_and_files(
    sim: SpinsolveSimulator, raw: Raw, tmp_path: Path, clock: Clock
) -> None:
    folder = tmp_path / "exp1"
    await raw.send(
        msg(f"<Set><DataFolder><UserFolder>{folder}</UserFolder></DataFolder></Set>"),
        msg("<Set><Sample>rxn_1</Sample></Set>"),
        msg(
            '<Start protocol="1D EXTENDED+"><Option name="Number" value="8"/>'
            '<Option name="RepetitionTime" value="10"/>'
            '<Option name="AcquisitionTime" value="1.6"/></Start>'
        ),
    )
    t0 = clock.now()
    seen = [event(e) for e in await raw.until(is_completed)]
    assert clock.now() - t0 >= 80  # 8 scans x 10 s, simulated
    first, *middle, ready, completed = seen
    assert first.tag == "State" and first.get("status") == "Running"
    assert first.get("dataFolder") == str(folder) and first.get("protocol") == "1D EXTENDED+"
    progress = [e for e in middle if e.tag == "Progress"]
    # about once a simulated second: never more often; fewer when a loaded host wakes the
    # simulator late, so the lower bound only asks for a progress report at all
    assert len(progress) == len(middle) and 1 <= len(progress) <= 80
    pcts = [int(p.get("percentage", "")) for p in progress]
    assert pcts == sorted(pcts) and pcts[-1] == 100
    remaining = [int(p.get("secondsRemaining", "")) for p in progress]
    assert remaining[0] <= 79 and remaining[-1] == 0
    assert all(a > b for a, b in itertools.pairwise(remaining))
    assert ready.tag == "State" and ready.get("status") == "Ready"
    assert ready.get("dataFolder") == str(folder)
    assert completed.attrib == {
        "protocol": "1D EXTENDED+",
        "completed": "true",
        "successful": "true",
    }
    dic, fid = ng.spinsolve.read(str(folder), specfile="data.1d")
    assert fid.size == 8192 and dic["acqu"]["Sample"] == "rxn_1"
    assert dic["acqu"]["nrScans"] == 8
    assert (folder / "spectrum.1d").is_file() and sim.completed_folders == [folder]


async def test_default_and_timestamp_folders(
    sim: SpinsolveSimulator, raw: Raw, tmp_path: Path
) -> None:
    start = msg('<Start protocol="1D PROTON"><Option name="Scan" value="QuickScan"/></Start>')
    await raw.send(start)
    ready = [event(e) for e in await raw.until(is_completed)][-2]
    folder = Path(ready.get("dataFolder", ""))
    assert folder.parent == sim.data_root and len(folder.name) == 14  # yyyymmddhhmmss
    assert (folder / "data.1d").is_file()
    await raw.send(
        msg(
            f"<Set><DataFolder><TimeStampTree>{tmp_path / 'tree'}"
            "</TimeStampTree></DataFolder></Set>"
        ),
        start,
    )
    ready = [event(e) for e in await raw.until(is_completed)][-2]
    tree = Path(ready.get("dataFolder", "")).relative_to(tmp_path / "tree")
    assert len(tree.parts) == 6 and len(tree.parts[0]) == 4
    assert (tmp_path / "tree" / tree / "data.1d").is_file()


async def test_start_while_busy_and_abort(sim: SpinsolveSimulator, raw: Raw) -> None:
    await raw.send(
        msg(
            '<Start protocol="1D EXTENDED+"><Option name="Number" value="256"/>'
            '<Option name="RepetitionTime" value="60"/></Start>'
        )
    )
    assert event(await raw.read_message()).get("status") == "Running"
    await raw.send(msg('<Start protocol="1D PROTON"/>'))
    busy = await raw.until(lambda e: event(e).tag == "Error")
    assert "busy" in event(busy[-1]).get("error", "")
    assert event(busy[-1]).get("protocol") == "1D PROTON"
    await raw.send(msg("<Abort/>"))
    rest = [event(e) for e in await raw.until(is_completed)]
    states = [(e.tag, e.get("status")) for e in rest if e.tag != "Progress"]
    assert states == [("State", "Stopping"), ("State", "Ready"), ("Completed", None)]
    assert rest[-1].get("successful") == "false" and rest[-1].get("completed") == "true"
    assert sim.busy_with is None


async def test_start_rejections(sim: SpinsolveSimulator, raw: Raw) -> None:
    await raw.send(msg('<Start protocol="2D MAGIC"/>'))
    assert "Unknown protocol" in event(await raw.read_message()).get("error", "")
    await raw.send(
        msg('<Start protocol="1D EXTENDED+"><Option name="PulseAngle" value="77"/></Start>')
    )
    assert "Invalid value" in event(await raw.read_message()).get("error", "")
    sim.connected_to_hardware = False
    await raw.send(msg('<Start protocol="1D PROTON"/>'))
    assert "hardware" in event(await raw.read_message()).get("error", "")


async def test_shim_requests_change_line_width(
    sim: SpinsolveSimulator, raw: Raw, clock: Clock
) -> None:
    await raw.send(msg("<CheckShimRequest/>"))
    check = await raw.read_message()
    assert check.tag == "CheckShimResponse" and check.get("error") is None
    assert [c.tag for c in check] == [
        "OperatingTemperature",
        "StableTemperatures",
        "StableLock",
        "LineWidth",
        "BaseWidth",
        "SystemIsReady",
    ]
    assert float(check.findtext("LineWidth", "")) == pytest.approx(1.5, abs=0.05)
    t0 = clock.now()
    await raw.send(msg("<QuickShimRequest/>"))
    quick = await raw.read_message()
    assert clock.now() - t0 >= 180  # QuickShim takes simulated minutes
    assert float(quick.findtext("LineWidth", "")) == pytest.approx(0.9, abs=0.01)
    assert quick.findtext("SystemIsReady") == "true"
    # the line width drifts after shimming, and the synthesiser gets the current value
    sim.shim_drift_hz_per_hour = 3600.0  # 1 Hz per simulated second, to see it quickly
    await wait_until(lambda: sim.line_width_hz > 0.9 + 1.0)  # a few simulated seconds
    await raw.send(msg("<CheckShimRequest/>"))
    assert (await raw.read_message()).findtext("SystemIsReady") == "false"


async def test_shim_request_abort_and_busy(sim: SpinsolveSimulator, raw: Raw) -> None:
    await raw.send(msg("<PowerShimRequest/>"))
    await wait_until(lambda: sim.busy_with == "PowerShim")
    await raw.send(msg("<CheckShimRequest/>"))
    busy = await raw.read_message()
    assert busy.tag == "CheckShimResponse" and "busy" in busy.get("error", "")
    await raw.send(msg("<Abort/>"))
    aborted = await raw.read_message()
    assert aborted.tag == "PowerShimResponse" and aborted.get("error") == "Shim aborted"
    assert aborted.findtext("SystemIsReady") == "false"


async def test_shim_protocol_via_start(sim: SpinsolveSimulator, raw: Raw, tmp_path: Path) -> None:
    await raw.send(
        msg(f"<Set><DataFolder><UserFolder>{tmp_path / 's'}</UserFolder></DataFolder></Set>"),
        msg('<Start protocol="SHIM"><Option name="Shim" value="QuickShim"/></Start>'),
    )
    done = event((await raw.until(is_completed))[-1])
    assert done.get("successful") == "true"
    assert (tmp_path / "s" / "shim.par").is_file()
    assert sim.line_width_hz == pytest.approx(0.9, abs=0.01)


async def test_spectrum_source_hook(clock: Clock, tmp_path: Path) -> None:
    contexts = []

    def source(context: dict) -> list[Signal]:
        contexts.append(context)
        return [Signal(2.0, 3, 0.1)]

    async with SpinsolveSimulator(
        clock=clock, data_root=tmp_path, spectrum_source=source, noise_sd=0.0
    ) as sim:
        reader, writer = await asyncio.open_connection(sim.host, sim.port)
        raw = Raw(reader, writer)
        await raw.send(
            msg("<Set><Sample>s1</Sample></Set>"),
            msg('<Set><UserData><Data key="k" value="v"/></UserData></Set>'),
            msg(
                '<Start protocol="1D EXTENDED+"><Option name="Number" value="4"/>'
                '<Option name="RepetitionTime" value="2"/></Start>'
            ),
        )
        folder = Path(event((await raw.until(is_completed))[-2]).get("dataFolder", ""))
        await raw.close()
    (ctx,) = contexts
    assert ctx["sample"] == "s1" and ctx["user_data"] == {"k": "v"}
    assert ctx["protocol"] == "1D EXTENDED+" and ctx["scans"] == 4
    assert ctx["nucleus"] == "1H" and ctx["line_width_hz"] == pytest.approx(1.5, abs=0.05)
    assert ctx["n_points"] == 16384 and ctx["bandwidth_hz"] == 5000.0
    dic, fid = ng.spinsolve.read(str(folder), specfile="data.1d")
    spec = ng.proc_base.fft(fid)
    ppm = ng.spinsolve.make_uc(dic, spec).ppm_scale()
    assert ppm[int(np.argmax(np.abs(spec)))] == pytest.approx(2.0, abs=0.01)


async def test_spectrum_source_may_return_an_fid(clock: Clock, tmp_path: Path) -> None:
    fid_in = (np.arange(16384) % 7).astype(np.complex64)

    async with SpinsolveSimulator(
        clock=clock, data_root=tmp_path, spectrum_source=lambda ctx: fid_in
    ) as sim:
        reader, writer = await asyncio.open_connection(sim.host, sim.port)
        raw = Raw(reader, writer)
        await raw.send(
            msg('<Start protocol="1D PROTON"><Option name="Scan" value="QuickScan"/></Start>')
        )
        folder = Path(event((await raw.until(is_completed))[-2]).get("dataFolder", ""))
        await raw.close()
    _, fid = ng.spinsolve.read(str(folder), specfile="data.1d")
    np.testing.assert_array_equal(fid, fid_in)


# -- faults ---------------------------------------------------------------------------------
async def test_device_error_forms(sim: SpinsolveSimulator, raw: Raw) -> None:
    sim.faults.inject(FaultKind.DEVICE_ERROR, count=3)
    await raw.send(msg("<HardwareRequest/>"))
    assert (await raw.read_message()).findtext("ConnectedToHardware") == "false"
    await raw.send(msg("<QuickShimRequest/>"))
    assert (await raw.read_message()).get("error")
    await raw.send(msg('<Start protocol="1D PROTON"/>'))
    assert event(await raw.read_message()).tag == "Error"
    assert sim.busy_with is None


async def test_garbled_reply_is_unparseable_but_framed(sim: SpinsolveSimulator, raw: Raw) -> None:
    sim.faults.inject(FaultKind.GARBLED)
    await raw.send(msg("<HardwareRequest/>"), msg("<HardwareRequest/>"))
    with pytest.raises(ET.ParseError):
        await raw.read_message()
    assert (await raw.read_message()).tag == "HardwareResponse"  # the next message is intact


async def test_no_reply_late_reply_and_drop(sim: SpinsolveSimulator, raw: Raw) -> None:
    sim.faults.inject(FaultKind.NO_REPLY)
    await raw.send(msg("<HardwareRequest/>"))
    with pytest.raises(TimeoutError):
        await raw.read_message(0.2)
    sim.faults.inject(FaultKind.LATE_REPLY, delay_s=0.3)
    await raw.send(msg("<HardwareRequest/>"))
    with pytest.raises(TimeoutError):
        await raw.read_message(0.1)
    assert (await raw.read_message()).tag == "HardwareResponse"
    sim.faults.inject(FaultKind.DROP)
    await raw.send(msg("<HardwareRequest/>"))
    with pytest.raises(ConnectionError):
        await raw.read_message()


async def test_set_messages_do_not_consume_faults(sim: SpinsolveSimulator, raw: Raw) -> None:
    sim.faults.inject(FaultKind.NO_REPLY)
    await raw.send(msg("<Set><Sample>x</Sample></Set>"), msg("<Abort/>"), msg("<HardwareRequest/>"))
    with pytest.raises(TimeoutError):
        await raw.read_message(0.2)
    assert sim.sample == "x"


async def test_out_of_order_notifications(sim: SpinsolveSimulator, raw: Raw) -> None:
    sim.inject_acquisition_fault("out_of_order")
    await raw.send(
        msg(
            '<Start protocol="1D EXTENDED+"><Option name="Number" value="4"/>'
            '<Option name="RepetitionTime" value="2"/></Start>'
        )
    )
    first = [event(e) for e in await raw.until(is_completed)]
    assert first[0].tag == "Completed" and first[0].get("successful") == "false"  # stale
    rest = [event(e) for e in await raw.until(is_completed)]
    assert rest[0].tag == "Progress"  # progress before the Running state
    assert rest[1].tag == "State" and rest[1].get("status") == "Running"
    assert rest[-1].get("successful") == "true"
    ready = event(await raw.read_message())  # Ready after Completed
    assert ready.tag == "State" and ready.get("status") == "Ready"


async def test_late_file(sim: SpinsolveSimulator, raw: Raw, tmp_path: Path, clock: Clock) -> None:
    sim.inject_acquisition_fault("late_file", delay_s=3000.0)  # 3 s wall: well after the check
    folder = tmp_path / "late"
    await raw.send(
        msg(f"<Set><DataFolder><UserFolder>{folder}</UserFolder></DataFolder></Set>"),
        msg('<Start protocol="1D PROTON"><Option name="Scan" value="QuickScan"/></Start>'),
    )
    done = event((await raw.until(is_completed))[-1])
    assert done.get("successful") == "true"
    assert not (folder / "data.1d").exists()
    await wait_until((folder / "data.1d").is_file)


@pytest.mark.parametrize("kind", ["unsuccessful", "acquisition_error"])
async def test_failing_runs(sim: SpinsolveSimulator, raw: Raw, tmp_path: Path, kind: str) -> None:
    sim.inject_acquisition_fault(kind)
    await raw.send(
        msg(f"<Set><DataFolder><UserFolder>{tmp_path / 'x'}</UserFolder></DataFolder></Set>"),
        msg('<Start protocol="1D PROTON"><Option name="Scan" value="QuickScan"/></Start>'),
    )
    seen = [event(e) for e in await raw.until(is_completed)]
    assert seen[-1].get("successful") == "false"
    assert any(e.tag == "Error" for e in seen) == (kind == "acquisition_error")
    assert not (tmp_path / "x" / "data.1d").exists()
    assert sim.busy_with is None


async def test_malformed_request_is_ignored(raw: Raw) -> None:
    await raw.send(b"<?xml version='1.0'?><Message><Oops></Message>", msg("<HardwareRequest/>"))
    assert (await raw.read_message()).tag == "HardwareResponse"
