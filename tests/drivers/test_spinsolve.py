"""SpinsolveNMR driver against the Spinsolve simulator over real TCP sockets."""

from __future__ import annotations

import asyncio
import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nmrglue as ng
import numpy as np
import pytest
from wire import WAIT_S, wait_until

from robochem.clock import Clock, set_clock
from robochem.drivers.base import Acquisition
from robochem.drivers.errors import (
    ConnectionLost,
    DeviceFault,
    GarbledReply,
    ReplyTimeout,
    SetpointRejected,
)
from robochem.drivers.registry import open_device
from robochem.drivers.spinsolve import AcquisitionProgress, SpinsolveNMR
from robochem.simulator.base import FaultKind
from robochem.simulator.spinsolve import SpinsolveSimulator

TIMEOUT = 0.3
# Reply timeout of the ``nmr`` fixture in tests that do not provoke timeouts: a loaded CI
# machine can stall a local round trip past 0.3 s, and those tests are not about timing.
PATIENT_TIMEOUT = 2.0
EXTENDED = {"Number": 16, "RepetitionTime": 10, "AcquisitionTime": 3.2, "PulseAngle": 90}


@pytest.fixture
def clock() -> Clock:
    c = Clock(speed=1000)
    set_clock(c)  # the suite's conftest resets it after each test
    return c


@pytest.fixture
async def sim(clock: Clock, tmp_path: Path) -> AsyncIterator[SpinsolveSimulator]:
    s = SpinsolveSimulator(clock=clock, data_root=tmp_path / "spinsolve")
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def nmr(
    sim: SpinsolveSimulator, clock: Clock, request: pytest.FixtureRequest
) -> AsyncIterator[SpinsolveNMR]:
    quick = request.node.get_closest_marker("quick_timeouts") is not None
    dev = SpinsolveNMR(sim.url(), timeout_s=TIMEOUT if quick else PATIENT_TIMEOUT, clock=clock)
    await dev.connect()
    yield dev
    await dev.disconnect()


def sent(sim: SpinsolveSimulator, tag: str) -> list[ET.Element]:
    """The first children of every message the simulator received with this tag."""
    out = []
    for raw in sim.received:
        root = ET.fromstring(raw.strip())
        assert root.tag == "Message" and len(root) == 1
        if root[0].tag == tag:
            out.append(root[0])
    return out


async def eventually(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Wait (wall time, bounded; fails only on timeout) until ``condition()`` holds."""
    await wait_until(condition, timeout_s)


def peak_ppm(folder: Path) -> list[float]:
    dic, fid = ng.spinsolve.read(str(folder), specfile="data.1d")
    spec = ng.proc_base.fft(fid)
    uc = ng.spinsolve.make_uc(dic, spec)
    ppm = uc.ppm_scale()
    real = np.abs(spec)
    found = []
    for lo, hi in ((5.9, 6.3), (3.6, 4.0), (7.0, 7.5)):
        window = (ppm > lo) & (ppm < hi)
        found.append(float(ppm[window][np.argmax(real[window])]))
    return found


# -- normal use -----------------------------------------------------------------------
async def test_hardware_check_and_connect(nmr: SpinsolveNMR) -> None:
    info = await nmr.hardware_check()
    assert info.connected and info.software == "1.18.1.3062"
    assert info.details["RemoteControlVersion"] == "1.0"
    assert await nmr.is_reachable()


async def test_acquire_end_to_end(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path, clock: Clock
) -> None:
    progress: list[AcquisitionProgress] = []
    folder = tmp_path / "c1" / "exp0042"
    t0 = clock.now()
    acq = await nmr.acquire(
        "1D EXTENDED+",
        EXTENDED,
        sample="rxn_0042",
        data_folder=folder,
        user_data={"campaign": "c1", "Comment": "BO iter 5"},
        on_progress=progress.append,
    )
    assert isinstance(acq, Acquisition)
    assert acq.protocol == "1D EXTENDED+"
    assert acq.data_folder == folder
    assert acq.options == {"Number": "16", "RepetitionTime": "10", "AcquisitionTime": "3.2",
                           "PulseAngle": "90"}
    assert acq.metadata["estimated_duration_s"] == pytest.approx(160)
    assert acq.metadata["data_file"] == str(folder / "data.1d")
    # 16 scans x 10 s on the simulated clock
    assert clock.now() - t0 >= 160
    dic, fid = ng.spinsolve.read(str(folder), specfile="data.1d")
    assert fid.size == 16384
    assert dic["acqu"]["Sample"] == "rxn_0042"
    assert dic["acqu"]["userData"] == "campaign=c1;Comment=BO iter 5"
    assert dic["acqu"]["Protocol"] == "1D EXTENDED+"
    tmb, ome, product = peak_ppm(folder)
    assert tmb == pytest.approx(6.08, abs=0.02)
    assert ome == pytest.approx(3.78, abs=0.02)
    assert product == pytest.approx(7.25, abs=0.02)
    # progress was reported in order and ended with Completed
    pcts = [p.percentage for p in progress if p.percentage is not None]
    assert len(pcts) >= 5 and pcts == sorted(pcts) and pcts[-1] == 100
    assert progress[0].status == "Running" and progress[-1].status == "Completed"
    assert nmr.progress is not None and nmr.progress.status == "Completed"


async def test_acquire_quick_proton_in_a_timestamped_folder(
    sim: SpinsolveSimulator, clock: Clock, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    async with open_device("spinsolve", sim.url(), timeout_s=TIMEOUT, clock=clock,
                           data_root=str(root)) as dev:
        acq = await dev.acquire("1D PROTON", {"Scan": "QuickScan"})
    assert acq.data_folder.parent == root
    assert len(acq.data_folder.name) == 14 and acq.data_folder.name.isdigit()
    assert (acq.data_folder / "data.1d").is_file()
    folder_set = sent(sim, "Set")[-1]
    assert folder_set[0].tag == "DataFolder" and folder_set[0][0].tag == "TimeStamp"
    assert folder_set[0][0].text == str(root)


async def test_fluorine_protocol(nmr: SpinsolveNMR, tmp_path: Path) -> None:
    acq = await nmr.acquire(
        "1D FLUORINE HDEC",
        {"Number": 4, "RepetitionTime": 2, "AcquisitionTime": 0.819, "decouplePower": -85},
        data_folder=tmp_path / "f",
    )
    dic, fid = ng.spinsolve.read(str(acq.data_folder), specfile="data.1d")
    assert dic["acqu"]["rxChannel"] == "19F"
    spec = ng.proc_base.fft(fid)
    ppm = ng.spinsolve.make_uc(dic, spec).ppm_scale()
    assert ppm[int(np.argmax(np.abs(spec)))] == pytest.approx(-63.0, abs=0.5)


async def test_estimate_duration(nmr: SpinsolveNMR) -> None:
    assert await nmr.estimate_duration("1D EXTENDED+", EXTENDED) == pytest.approx(160)
    assert await nmr.estimate_duration("1D PROTON", {"Scan": "QuickScan"}) == pytest.approx(15)


async def test_settings_round_trip(nmr: SpinsolveNMR, sim: SpinsolveSimulator) -> None:
    await nmr.set_sample('a <b> & "c"')
    await nmr.set_solvent("CDCl3")
    await nmr.set_user_data({"k": "v & w", "n": 5})
    assert await nmr.get_setting("Sample") == 'a <b> & "c"'
    assert await nmr.get_setting("Solvent") == "CDCl3"
    assert await nmr.get_setting("UserData") == {"k": "v & w", "n": "5"}
    await nmr.set_data_folder("D:/nmr/c1", mode="TimeStampTree")
    assert await nmr.get_setting("DataFolder") == "D:/nmr/c1"
    assert sim.folder_mode == "TimeStampTree"
    with pytest.raises(ValueError):
        await nmr.set_data_folder("D:/x", mode="Bogus")


async def test_sample_shim_runs_on_the_cell_and_reads_its_line_width(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator
) -> None:
    sim.line_width_hz = 2.4  # drifted
    result = await nmr.shim("QuickShim", sample_reference_ppm=1.94)
    assert result.ok and result.line_width_hz == pytest.approx(0.9, abs=0.01)
    assert sim.line_width_hz == pytest.approx(0.9, abs=0.01)
    (start,) = sent(sim, "Start")
    assert start.get("protocol") == "SHIM 1H SAMPLE"
    options = {o.get("name"): o.get("value") for o in start.iter("Option")}
    assert options == {"SampleReference": "1.94", "Shim": "QuickShim"}
    assert not sent(sim, "QuickShimRequest")  # not the shim-standard form


async def test_solvent_set_on_connect(sim: SpinsolveSimulator, clock: Clock) -> None:
    async with open_device("spinsolve", sim.url(), timeout_s=TIMEOUT, clock=clock,
                           solvent="DMSO") as dev:
        assert await dev.get_setting("Solvent") == "DMSO"


async def test_shim_improves_line_width(nmr: SpinsolveNMR, sim: SpinsolveSimulator) -> None:
    before = await nmr.shim("CheckShim")
    assert before.line_width_hz == pytest.approx(1.5, abs=0.05)
    assert before.base_width_hz == pytest.approx(25 * before.line_width_hz, rel=0.05)
    after = await nmr.shim("QuickShim")
    assert after.ok and after.line_width_hz == pytest.approx(0.9, abs=0.01)
    assert after.details["StableLock"] == "true"
    assert sim.line_width_hz == pytest.approx(0.9, abs=0.01)
    assert [e.tag for e in sent(sim, "CheckShimRequest")] == ["CheckShimRequest"]
    assert len(sent(sim, "QuickShimRequest")) == 1
    sim.stable_lock = False
    assert not (await nmr.shim("CheckShim")).ok
    n = len(sim.received)
    with pytest.raises(SetpointRejected, match="CheckShim, QuickShim, PowerShim"):
        await nmr.shim("MegaShim")
    assert len(sim.received) == n


async def test_unconnected_hardware_fails_connect(
    sim: SpinsolveSimulator, clock: Clock
) -> None:
    sim.connected_to_hardware = False
    dev = SpinsolveNMR(sim.url(), timeout_s=TIMEOUT, clock=clock)
    with pytest.raises(DeviceFault, match="not connected"):
        await dev.connect()


def test_url_forms() -> None:
    dev = SpinsolveNMR("tcp://192.0.2.5")
    assert (dev.host, dev.port) == ("192.0.2.5", 13000)
    assert SpinsolveNMR("tcp://localhost:14000").port == 14000
    with pytest.raises(ValueError):
        SpinsolveNMR("socket://localhost:13000")


# -- transcript -----------------------------------------------------------------------
async def test_transcript_of_an_acquisition(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path
) -> None:
    await nmr.available_options()  # fetched once, then cached
    sim.received.clear()
    folder = tmp_path / "exp & 1"
    await nmr.acquire("1D EXTENDED+", EXTENDED, sample="rxn <1>",
                      user_data={"Comment": "BO iter 5", "campaign": "c1"},
                      data_folder=folder)
    for raw in sim.received:
        assert raw.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    tags = [ET.fromstring(r)[0].tag for r in sim.received]
    assert tags == ["Set", "Set", "Set", "EstimateDurationRequest", "Start"]
    sample, user, data_folder = (s[0] for s in sent(sim, "Set"))
    assert sample.tag == "Sample" and sample.text == "rxn <1>"
    # <Data key=".." value=".."/>, not flowchem's <Data Comment="..">
    assert user.tag == "UserData"
    assert [d.attrib for d in user] == [{"key": "Comment", "value": "BO iter 5"},
                                        {"key": "campaign", "value": "c1"}]
    assert all(d.tag == "Data" for d in user)
    # <DataFolder><UserFolder>..</UserFolder></DataFolder>, never an empty <DataFolder/>
    assert data_folder.tag == "DataFolder" and len(data_folder) == 1
    assert data_folder[0].tag == "UserFolder" and data_folder[0].text == str(folder)
    (start,) = sent(sim, "Start")
    assert start.attrib == {"protocol": "1D EXTENDED+"}
    assert [(o.tag, o.attrib) for o in start] == [
        ("Option", {"name": "Number", "value": "16"}),
        ("Option", {"name": "RepetitionTime", "value": "10"}),
        ("Option", {"name": "AcquisitionTime", "value": "3.2"}),
        ("Option", {"name": "PulseAngle", "value": "90"}),
    ]
    (estimate,) = sent(sim, "EstimateDurationRequest")
    assert estimate.attrib == {"protocol": "1D EXTENDED+"}
    assert [o.attrib for o in estimate] == [o.attrib for o in start]
    # escaping survived the trip
    assert sim.sample == "rxn <1>" and sim.folder_value == str(folder)


async def test_transcript_of_simple_requests(nmr: SpinsolveNMR, sim: SpinsolveSimulator) -> None:
    sim.received.clear()
    await nmr.hardware_check()
    await nmr.available_options(refresh=True)
    await nmr.get_setting("Solvent")
    await nmr.abort()
    await eventually(lambda: len(sim.received) == 4)  # Abort has no reply to wait for
    bodies = [ET.fromstring(r)[0] for r in sim.received]
    assert [(b.tag, len(b), b.attrib) for b in bodies] == [
        ("HardwareRequest", 0, {}),
        ("AvailableProtocolOptionsRequest", 0, {}),
        ("GetRequest", 1, {}),
        ("Abort", 0, {}),
    ]
    assert bodies[2][0].tag == "Solvent" and len(bodies[2][0]) == 0


# -- option validation ------------------------------------------------------------------
async def test_options_validated_before_sending(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator
) -> None:
    table = await nmr.available_options()
    assert table["1D PROTON"]["Scan"] == ["QuickScan", "StandardScan", "PowerScan"]
    assert "16384" in table["1D EXTENDED+"]["Number"]
    n = len(sim.received)
    with pytest.raises(SetpointRejected) as bad_value:
        await nmr.acquire("1D EXTENDED+", {"Number": 3})
    assert bad_value.value.quantity == "1D EXTENDED+ option Number"
    assert bad_value.value.unit == "scans"
    assert "16384" in bad_value.value.allowed and "3" in str(bad_value.value)
    with pytest.raises(SetpointRejected, match=r"\{0.4, 0.8, 1.6, 3.2, 6.4\}"):
        await nmr.acquire("1D EXTENDED+", {"AcquisitionTime": 3.3})
    with pytest.raises(SetpointRejected, match="Number, AcquisitionTime"):
        await nmr.acquire("1D EXTENDED+", {"Scans": 16})
    with pytest.raises(SetpointRejected, match="1D PROTON"):
        await nmr.acquire("1D PROTONS", {"Scan": "QuickScan"})
    with pytest.raises(SetpointRejected, match="QuickScan, StandardScan, PowerScan"):
        await nmr.estimate_duration("1D PROTON", {"Scan": "FastScan"})
    assert len(sim.received) == n  # nothing was sent
    # numbers match the device's spelling: 16.0 -> "16", 1.60 -> "1.6"
    checked = await nmr.check_options("1D EXTENDED+", {"Number": 16.0, "AcquisitionTime": 1.60})
    assert checked == {"Number": "16", "AcquisitionTime": "1.6"}
    # free-valued options pass through
    checked = await nmr.check_options("SHIM 1H SAMPLE", {"SampleReference": 7.26})
    assert checked == {"SampleReference": "7.26"}


# -- busy, abort, cancel ----------------------------------------------------------------
async def test_start_while_busy_is_a_device_fault(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, clock: Clock, tmp_path: Path
) -> None:
    other = SpinsolveNMR(sim.url(), timeout_s=TIMEOUT, clock=clock)
    await other.connect()
    running = asyncio.create_task(
        other.acquire("1D EXTENDED+", {"Number": 64, "RepetitionTime": 10},
                      data_folder=tmp_path / "other")
    )
    await eventually(lambda: sim.busy_with is not None)
    with pytest.raises(DeviceFault, match="busy") as exc:
        await nmr.acquire("1D PROTON", {"Scan": "QuickScan"}, data_folder=tmp_path / "mine")
    assert exc.value.code == "acquisition-error"
    with pytest.raises(DeviceFault, match="busy"):
        await nmr.shim("CheckShim")
    acq = await running  # the other client's run is unharmed
    assert (acq.data_folder / "data.1d").is_file()
    await other.disconnect()
    acq = await nmr.acquire("1D PROTON", {"Scan": "QuickScan"}, data_folder=tmp_path / "mine")
    assert (acq.data_folder / "data.1d").is_file()


async def test_abort_ends_the_acquisition(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path
) -> None:
    seen = asyncio.Event()
    task = asyncio.create_task(nmr.acquire(
        "1D EXTENDED+", {"Number": 256, "RepetitionTime": 60},  # 4 simulated hours
        data_folder=tmp_path / "long", on_progress=lambda p: seen.set(),
    ))
    await asyncio.wait_for(seen.wait(), 2)
    t0 = time.monotonic()
    await nmr.abort()
    assert task.done()
    with pytest.raises(DeviceFault, match="aborted") as exc:
        await task
    assert exc.value.code == "aborted"
    # A one-sided bound, generous for a loaded machine: the abort ends it, rather than the
    # four simulated hours of the acquisition running out.
    assert time.monotonic() - t0 < 5.0
    assert sim.busy_with is None
    assert not (tmp_path / "long" / "data.1d").exists()
    acq = await nmr.acquire("1D PROTON", {"Scan": "QuickScan"}, data_folder=tmp_path / "next")
    assert (acq.data_folder / "data.1d").is_file()


async def test_cancelling_acquire_aborts_the_device(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path
) -> None:
    task = asyncio.create_task(nmr.acquire("1D EXTENDED+", {"Number": 256, "RepetitionTime": 60},
                                           data_folder=tmp_path / "x"))
    await eventually(lambda: sim.busy_with is not None)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: sim.busy_with is None)
    assert [ET.fromstring(r)[0].tag for r in sim.received][-1] == "Abort"


async def test_emergency_stop_aborts(nmr: SpinsolveNMR, sim: SpinsolveSimulator) -> None:
    sim.received.clear()
    await nmr.emergency_stop()
    await eventually(lambda: len(sim.received) == 1)
    assert [ET.fromstring(r)[0].tag for r in sim.received] == ["Abort"]


# -- faults on requests -----------------------------------------------------------------
@pytest.mark.quick_timeouts
@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (FaultKind.NO_REPLY, ReplyTimeout),
        (FaultKind.LATE_REPLY, ReplyTimeout),
        (FaultKind.GARBLED, GarbledReply),
        (FaultKind.DROP, ConnectionLost),
        (FaultKind.DEVICE_ERROR, DeviceFault),
    ],
)
async def test_request_faults(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, kind: FaultKind, error: type[Exception]
) -> None:
    sim.faults.inject(kind, delay_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(error):
        await nmr.hardware_check()
    # Only "it fired rather than hung": a one-sided bound, generous for a loaded machine.
    assert time.monotonic() - t0 < 5.0
    # the next call works (on a fresh connection where the old one is suspect)
    assert (await nmr.hardware_check()).connected


@pytest.mark.quick_timeouts
@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (FaultKind.NO_REPLY, ReplyTimeout),
        (FaultKind.GARBLED, GarbledReply),
        (FaultKind.DROP, ConnectionLost),
        (FaultKind.DEVICE_ERROR, DeviceFault),
    ],
)
async def test_shim_and_estimate_faults(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, kind: FaultKind, error: type[Exception]
) -> None:
    for call in (lambda: nmr.shim("CheckShim"),
                 lambda: nmr.estimate_duration("1D PROTON", {"Scan": "QuickScan"})):
        await nmr.available_options()
        sim.faults.inject(kind)
        with pytest.raises(error):
            await call()
    assert (await nmr.shim("CheckShim")).line_width_hz is not None


# -- faults on Start --------------------------------------------------------------------
@pytest.mark.quick_timeouts
@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (FaultKind.NO_REPLY, ReplyTimeout),
        (FaultKind.LATE_REPLY, ReplyTimeout),
        (FaultKind.GARBLED, GarbledReply),
        (FaultKind.DROP, ConnectionLost),
        (FaultKind.DEVICE_ERROR, DeviceFault),
    ],
)
async def test_start_faults(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path, kind: FaultKind,
    error: type[Exception],
) -> None:
    await nmr.available_options()
    sim.fault_targets = {"Start"}
    sim.faults.inject(kind, delay_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(error):
        await nmr.acquire("1D PROTON", {"Scan": "QuickScan"}, data_folder=tmp_path / "a")
    # the start wait, then at most a timeout for the abort to land; only "it fired rather
    # than hung": a one-sided bound, generous for a loaded machine
    assert time.monotonic() - t0 < 5.0
    if kind is FaultKind.LATE_REPLY:
        # the device is deaf until its late reply went out: it reads the driver's Abort,
        # queued behind the Start, only then
        await wait_until(lambda: b"<Abort" in sim.received[-1])
    # the driver aborted whatever may have started
    await eventually(lambda: sim.busy_with is None)
    acq = await nmr.acquire("1D PROTON", {"Scan": "QuickScan"}, data_folder=tmp_path / "b")
    assert (acq.data_folder / "data.1d").is_file()


async def test_estimate_error_falls_back_to_scans_times_repetition(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path
) -> None:
    await nmr.available_options()
    sim.fault_targets = {"EstimateDurationRequest"}
    sim.faults.inject(FaultKind.DEVICE_ERROR)
    acq = await nmr.acquire("1D EXTENDED+", {"Number": 4, "RepetitionTime": 15},
                            data_folder=tmp_path / "e")
    assert acq.metadata["estimated_duration_s"] == 60


# -- acquisition faults -------------------------------------------------------------------
async def test_out_of_order_notifications(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path
) -> None:
    sim.inject_acquisition_fault("out_of_order")
    acq = await nmr.acquire("1D EXTENDED+", EXTENDED, data_folder=tmp_path / "o")
    assert acq.data_folder == tmp_path / "o"
    assert (acq.data_folder / "data.1d").is_file()


async def test_stale_notifications_flushed_before_start(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path
) -> None:
    stale = (
        b"<?xml version='1.0' encoding='utf-8'?>\n<Message><StatusNotification timestamp="
        b"'00:00:00'><Error protocol='1D PROTON' error='old news'/></StatusNotification>"
        b"</Message>\n"
    )
    await nmr.hardware_check()
    sim.broadcast(stale)
    # arrived and queued by the driver before the Start (its private notification queue)
    await wait_until(lambda: nmr._link is not None and nmr._link.notes.qsize() > 0)
    acq = await nmr.acquire("1D PROTON", {"Scan": "QuickScan"}, data_folder=tmp_path / "s")
    assert (acq.data_folder / "data.1d").is_file()


async def test_late_file_within_the_wait(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path, clock: Clock
) -> None:
    sim.inject_acquisition_fault("late_file", delay_s=3.0)
    acq = await nmr.acquire("1D PROTON", {"Scan": "QuickScan"}, data_folder=tmp_path / "l")
    assert (acq.data_folder / "data.1d").is_file()


@pytest.mark.quick_timeouts
async def test_file_that_never_comes_is_a_device_fault(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path
) -> None:
    # 3000 simulated s = 3 wall s: beyond both the 10 s (simulated) and 0.3 s (wall) waits
    sim.inject_acquisition_fault("late_file", delay_s=3000.0)
    with pytest.raises(DeviceFault, match=r"data\.1d did not appear") as exc:
        await nmr.acquire("1D PROTON", {"Scan": "QuickScan"}, data_folder=tmp_path / "n")
    assert exc.value.code == "no-data-file"
    acq = await nmr.acquire("1D PROTON", {"Scan": "QuickScan"}, data_folder=tmp_path / "n2")
    assert (acq.data_folder / "data.1d").is_file()


@pytest.mark.parametrize(
    ("kind", "code"),
    [("unsuccessful", "unsuccessful"), ("acquisition_error", "acquisition-error")],
)
async def test_failed_acquisitions(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path, kind: str, code: str
) -> None:
    sim.inject_acquisition_fault(kind)
    with pytest.raises(DeviceFault) as exc:
        await nmr.acquire("1D EXTENDED+", EXTENDED, data_folder=tmp_path / "f")
    assert exc.value.code == code
    acq = await nmr.acquire("1D EXTENDED+", EXTENDED, data_folder=tmp_path / "g")
    assert (acq.data_folder / "data.1d").is_file()


async def test_acquisition_that_never_completes_times_out(
    sim: SpinsolveSimulator, clock: Clock, tmp_path: Path
) -> None:
    # a budget of a tenth of the estimate: the run (3840 s) cannot finish within it
    dev = SpinsolveNMR(sim.url(), timeout_s=TIMEOUT, clock=clock, duration_margin=-0.9,
                       duration_margin_s=0.0)
    await dev.connect()
    t0 = time.monotonic()
    with pytest.raises(ReplyTimeout, match="budget"):
        await dev.acquire("1D EXTENDED+", {"Number": 64, "RepetitionTime": 60},
                          data_folder=tmp_path / "t")
    # A one-sided bound, generous for a loaded machine: the budget (0.384 wall s) ends the
    # wait, not the run's 3.84 wall s.
    assert time.monotonic() - t0 < 3.0
    await eventually(lambda: sim.busy_with is None)  # aborted
    await dev.disconnect()


async def test_connection_drop_during_acquisition(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path
) -> None:
    task = asyncio.create_task(nmr.acquire("1D EXTENDED+", {"Number": 64, "RepetitionTime": 60},
                                           data_folder=tmp_path / "d"))
    await eventually(lambda: sim.busy_with is not None)
    for w in list(sim._writers):
        w.close()
    with pytest.raises(ConnectionLost):
        await task
    # reconnected to send Abort; and the next call works
    assert (await nmr.hardware_check()).connected
    await eventually(lambda: sim.busy_with is None)


async def test_refused_connection(clock: Clock) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    dev = SpinsolveNMR(f"tcp://127.0.0.1:{port}", timeout_s=TIMEOUT, clock=clock)
    with pytest.raises(ConnectionLost, match="remote control"):
        await dev.connect()
    assert not await dev.is_reachable()


# -- framing against a scripted peer ------------------------------------------------------
async def test_framing_tolerates_coalesced_split_and_indented_messages(clock: Clock) -> None:
    response = (
        b"<?xml version='1.0' encoding='utf-8'?>\n<Message><HardwareResponse>"
        b"<SpinsolveSoftware>1.18.1.3062</SpinsolveSoftware>"
        b"<RemoteControlVersion>1.0</RemoteControlVersion>"
        b"<ConnectedToHardware>true</ConnectedToHardware></HardwareResponse></Message>\n"
    )
    note = (
        b"<?xml version='1.0' encoding='utf-8'?>\n<Message><StatusNotification "
        b"timestamp='12:00:00'><State protocol='X' status='Ready' dataFolder='D:/x'/>"
        b"</StatusNotification></Message>\n"
    )
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                buf += chunk
                while b"</Message>" in buf:
                    i = buf.index(b"</Message>") + len(b"</Message>")
                    requests.append(buf[:i])
                    buf = buf[i:]
                    n = len(requests)
                    if n == 1:  # a notification and the reply in one segment, indented
                        writer.write(b"  \r\n" + note + b"\n\t" + response)
                    elif n == 2:  # the reply a few bytes at a time
                        for k in range(0, len(response), 7):
                            writer.write(response[k : k + 7])
                            await writer.drain()
                            await asyncio.sleep(0)
                    else:  # the reply without a declaration
                        writer.write(response.split(b"?>", 1)[1])
                    await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dev = SpinsolveNMR(f"tcp://127.0.0.1:{port}", timeout_s=TIMEOUT, clock=clock)
    try:
        for _ in range(3):
            info = await dev.hardware_check()
            assert info.connected and info.software == "1.18.1.3062"
        assert dev._link is not None and dev._link.notes.qsize() == 1
    finally:
        await dev.disconnect()
        server.close()
        await server.wait_closed()


async def test_status_queries_while_a_shim_request_waits(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator
) -> None:
    shim = asyncio.create_task(nmr.shim("QuickShim"))  # 180 simulated s: 0.18 wall s
    await eventually(lambda: sim.busy_with == "QuickShim")
    info = await nmr.hardware_check()  # answered while the shim reply is outstanding
    assert info.connected and not shim.done()
    assert (await shim).line_width_hz == pytest.approx(0.9, abs=0.01)


async def test_reply_nobody_waits_for_is_dropped(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="robochem.drivers.wire")
    sim.broadcast(b"<?xml version='1.0' encoding='utf-8'?>\n<Message><HardwareResponse>"
                  b"<ConnectedToHardware>false</ConnectedToHardware></HardwareResponse>"
                  b"</Message>\n")
    await wait_until(lambda: "dropped <HardwareResponse>" in caplog.text)  # read, before
    # the request below
    assert (await nmr.hardware_check()).connected  # the stale "false" was not taken


@pytest.mark.quick_timeouts
async def test_state_ready_without_completed_ends_the_run(
    nmr: SpinsolveNMR, sim: SpinsolveSimulator, tmp_path: Path
) -> None:
    sim.send_completed = False
    t0 = time.monotonic()
    acq = await nmr.acquire("1D PROTON", {"Scan": "QuickScan"}, data_folder=tmp_path / "r")
    assert (acq.data_folder / "data.1d").is_file()
    # The run, then a grace period ends it rather than the wait hanging: a one-sided bound,
    # generous for a loaded machine.
    assert time.monotonic() - t0 < 5.0


async def test_raw_bytes_are_logged_on_the_wire_logger(
    nmr: SpinsolveNMR, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("DEBUG", logger="robochem.drivers.wire"):
        await nmr.hardware_check()
    wire = [r.getMessage() for r in caplog.records if r.name == "robochem.drivers.wire"]
    assert any(">>" in m and "<HardwareRequest />" in m for m in wire)
    assert any("<<" in m and "<ConnectedToHardware>true" in m for m in wire)
