"""A failed connect leaves nothing open, for every driver (issue 30).

Each driver is pointed at its simulator through a small TCP tap (a relay in front of the
simulator's real socket) that sees when the driver's side of the link closes. Every case
makes the initialisation fail *after* the link was opened (a wrong device answer, a
mismatching head or valve, a setpoint out of range, a device error), through both ways of
getting a device from the registry, and checks that the link is closed afterwards: on
hardware a leaked serial port stays locked until the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from robochem.clock import Clock
from robochem.drivers.base import Device
from robochem.drivers.errors import DeviceError, ReplyTimeout
from robochem.drivers.registry import DRIVERS, driver_class, open_device
from robochem.simulator.base import FaultKind
from robochem.simulator.chemyx import ChemyxSimulator
from robochem.simulator.harvard import Elite11Simulator
from robochem.simulator.knauer import KnauerPumpSimulator, KnauerValveSimulator
from robochem.simulator.manson import MansonSimulator
from robochem.simulator.modbus_reactor import PhotoreactorSimulator
from robochem.simulator.spinsolve import SpinsolveSimulator

#: Upper bound (wall s) for the tap to see the driver's side close; only a leak reaches it.
CLOSE_WAIT_S = 5.0


@dataclass
class Tap:
    """A TCP relay to ``target`` that counts client connections and sees them close."""

    target: tuple[str, int]
    port: int = 0
    opened: int = 0
    open_now: int = 0
    first_request: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> Tap:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def wait_all_closed(self) -> None:
        """Return once every client connection the tap accepted has been closed."""
        while self.open_now:
            self._changed.clear()
            await self._changed.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        self.open_now += 1
        self._changed.set()
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        back = asyncio.ensure_future(self._pipe(up_reader, writer, first=False))
        try:
            await self._pipe(reader, up_writer, first=True)  # ends when the driver closes
        finally:
            back.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await back
            up_writer.close()
            writer.close()
            self.open_now -= 1
            self._changed.set()
            self._tasks.discard(task)

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, first: bool
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await src.read(65536):
                if first:
                    self.first_request.set()
                dst.write(chunk)
                await dst.drain()


@dataclass(frozen=True)
class Case:
    """A driver, its simulator, and options that make the initialisation fail."""

    driver: str
    simulator: Callable[[Clock, Path], Any]
    url: Callable[[int], str]
    options: dict[str, Any]
    error: type[BaseException] = DeviceError
    sabotage: Callable[[Any], None] = lambda sim: None


def _no_hardware(sim: SpinsolveSimulator) -> None:
    sim.connected_to_hardware = False


def _device_error(sim: PhotoreactorSimulator) -> None:
    sim.faults.inject(FaultKind.DEVICE_ERROR, count=None)


CASES = {
    # a head mismatch: the pump reports 10 ml, the platform says 50
    "knauer-azura": Case(
        "knauer-azura",
        lambda c, _: KnauerPumpSimulator(clock=c, head_ml=10),
        lambda port: f"tcp://127.0.0.1:{port}",
        {"head_ml": 50},
    ),
    # a valve type mismatch
    "knauer-valve": Case(
        "knauer-valve",
        lambda c, _: KnauerValveSimulator(clock=c, valve_type="LI"),
        lambda port: f"tcp://127.0.0.1:{port}",
        {"valve_type": "6"},
    ),
    # a wrong device answer: 'ver' names another pump
    "harvard-elite11": Case(
        "harvard-elite11",
        lambda c, _: Elite11Simulator(clock=c, version="PHD ULTRA 4400 3.0.4"),
        lambda port: f"socket://127.0.0.1:{port}",
        {},
    ),
    # a syringe diameter outside the documented range, found after stop/units were sent
    "chemyx-fusion": Case(
        "chemyx-fusion",
        lambda c, _: ChemyxSimulator(clock=c),
        lambda port: f"socket://127.0.0.1:{port}",
        {"diameter_mm": 55.0, "syringe_volume_ml": 10.0},
    ),
    # the controller answers every request with a Modbus device failure
    "omron-e5cc": Case(
        "omron-e5cc",
        lambda c, _: PhotoreactorSimulator(clock=c),
        lambda port: f"modbus+rtu+socket://127.0.0.1:{port}?unit=1",
        {},
        sabotage=_device_error,
    ),
    # the fitted LED module is 450 nm, the platform expects 365 nm
    "modbus-led": Case(
        "modbus-led",
        lambda c, _: PhotoreactorSimulator(clock=c, wavelength_nm=450),
        lambda port: f"modbus+rtu+socket://127.0.0.1:{port}?unit=1",
        {"wavelength_nm": 365},
    ),
    "modbus-photoreactor": Case(
        "modbus-photoreactor",
        lambda c, _: PhotoreactorSimulator(clock=c, wavelength_nm=450),
        lambda port: f"modbus+rtu+socket://127.0.0.1:{port}?unit=1",
        {"wavelength_nm": 365},
    ),
    # more current at 100 % than the supply can give
    "manson-hcs": Case(
        "manson-hcs",
        lambda c, _: MansonSimulator(clock=c, model="HCS-3102"),
        lambda port: f"socket://127.0.0.1:{port}",
        {"led_voltage_v": 24.0, "max_current_a": 50.0},
    ),
    # the Spinsolve software is not connected to the spectrometer
    "spinsolve": Case(
        "spinsolve",
        lambda c, root: SpinsolveSimulator(clock=c, data_root=root),
        lambda port: f"tcp://127.0.0.1:{port}",
        {},
        sabotage=_no_hardware,
    ),
}


def test_every_registered_driver_has_a_case() -> None:
    assert set(CASES) == set(DRIVERS)


def test_no_driver_overrides_connect() -> None:
    """One path: every driver connects through ``Device.connect`` and its hooks."""
    for name in DRIVERS:
        assert driver_class(name).connect is Device.connect, name


def test_a_subclass_that_overrides_connect_is_refused() -> None:
    with pytest.raises(TypeError, match="_initialise"):

        class Sneaky(Device):  # pragma: no cover - refused at class creation
            async def connect(self) -> None: ...

            async def disconnect(self) -> None: ...

            async def emergency_stop(self) -> None: ...


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Callable[[Case], Awaitable[tuple[Any, Tap]]]]:
    started: list[Any] = []

    async def make(case: Case) -> tuple[Any, Tap]:
        sim = case.simulator(Clock(speed=1000), tmp_path / "nmr")
        await sim.start()
        started.append(sim)
        case.sabotage(sim)
        tap = await Tap(("127.0.0.1", sim.port)).start()
        started.append(tap)
        return sim, tap

    yield make
    for thing in reversed(started):
        await thing.stop()


async def _leaves_closed(tap: Tap) -> None:
    assert tap.opened >= 1, "the driver never opened its link: the case proves nothing"
    try:
        await asyncio.wait_for(tap.wait_all_closed(), CLOSE_WAIT_S)
    except TimeoutError:
        pytest.fail(f"the link is still open {CLOSE_WAIT_S:g} s after the failed connect")


@pytest.mark.parametrize("name", sorted(CASES))
async def test_failed_initialisation_closes_the_link(name: str, rig) -> None:
    case = CASES[name]
    _, tap = await rig(case)
    # The device stays referenced: a leaked socket must not be closed by the garbage
    # collector before the tap looks (a real serial port would stay locked meanwhile).
    device = driver_class(case.driver)(case.url(tap.port), timeout_s=2.0, **case.options)
    with pytest.raises(case.error):
        await device.connect()
    await _leaves_closed(tap)
    if device.transport is not None:
        assert not device.transport.is_open


@pytest.mark.parametrize("name", sorted(CASES))
async def test_failed_open_device_await_closes_the_link(name: str, rig) -> None:
    case = CASES[name]
    _, tap = await rig(case)
    with pytest.raises(case.error) as failure:
        await open_device(case.driver, case.url(tap.port), timeout_s=2.0, **case.options)
    await _leaves_closed(tap)  # ``failure`` (its traceback) keeps the device alive till here
    assert failure.value is not None


@pytest.mark.parametrize("name", sorted(CASES))
async def test_failed_open_device_async_with_closes_the_link(name: str, rig) -> None:
    case = CASES[name]
    _, tap = await rig(case)
    with pytest.raises(case.error) as failure:
        async with open_device(case.driver, case.url(tap.port), timeout_s=2.0, **case.options):
            pytest.fail("connect should have failed")
    await _leaves_closed(tap)
    assert failure.value is not None


@pytest.mark.parametrize("name", ["knauer-azura", "harvard-elite11", "spinsolve", "omron-e5cc"])
async def test_cancelled_connect_closes_the_link(name: str, rig) -> None:
    """A connect cancelled while it waits for the device (e.g. by asyncio.wait_for)."""
    case = CASES[name]
    sim, tap = await rig(case)
    sim.faults.clear()
    sim.faults.inject(FaultKind.NO_REPLY, count=None)
    options = {k: v for k, v in case.options.items() if k in ("led_voltage_v", "max_current_a")}
    task = asyncio.ensure_future(
        open_device(case.driver, case.url(tap.port), timeout_s=30.0, **options)
    )
    await asyncio.wait_for(tap.first_request.wait(), CLOSE_WAIT_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _leaves_closed(tap)


@pytest.mark.parametrize("name", ["knauer-valve", "chemyx-fusion", "modbus-led", "spinsolve"])
async def test_timed_out_connect_closes_the_link(name: str, rig) -> None:
    case = CASES[name]
    sim, tap = await rig(case)
    sim.faults.clear()
    sim.faults.inject(FaultKind.NO_REPLY, count=None)
    with pytest.raises(ReplyTimeout):
        await open_device(case.driver, case.url(tap.port), timeout_s=0.3)
    await _leaves_closed(tap)
