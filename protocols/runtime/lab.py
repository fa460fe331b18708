"""The connected lab: a platform's devices by name, their roles, and the safe state.

The engine talks to devices only through the capability interfaces of
:mod:`robochem.drivers.base`; this module knows which device plays which part of the flow
path (from the platform's ``fluidics``) and how to make the whole lab safe.

:meth:`Lab.safe_state` is written to be called from ``finally`` blocks: it tries every
device even when some fail or hang, cannot be interrupted half-way by a second
cancellation, and reports failures instead of raising them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from robochem.clock import Clock, get_clock
from robochem.drivers.base import (
    Device,
    LightSource,
    NMRSpectrometer,
    Photoreactor,
    Pump,
    TemperatureController,
    Valve,
)
from robochem.drivers.options import options_for

from ..platform import Platform

log = logging.getLogger("robochem.protocols.runtime.lab")
T = TypeVar("T")

__all__ = [
    "Lab",
    "SafeStateReport",
    "connect_lab",
    "open_devices",
    "safety_devices",
    "uncancellable",
]

#: Wall seconds one safe-state action may take before the lab moves on without it.
SAFE_ACTION_TIMEOUT_S = 10.0


@dataclass
class SafeStateReport:
    """What :meth:`Lab.safe_state` did: actions that worked and those that failed."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    # Per pump, the clock times its stop command was sent and answered (the pumps are
    # stopped in parallel): what is accounted by flow, such as a scale-up's collected
    # product, ends in between.
    pump_stops: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"done": list(self.done), "failed": dict(self.failed)}


async def uncancellable(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to the end even if the caller is cancelled meanwhile; the
    cancellation is re-raised afterwards (safe state must never stop half-way)."""
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


class Lab:
    """A platform's connected devices (by name) and the layout of its flow path."""

    def __init__(
        self, platform: Platform, devices: Mapping[str, Device], *, clock: Clock | None = None
    ) -> None:
        self.platform = platform
        self.devices: dict[str, Device] = dict(devices)
        #: what the safe-state report's times are read from
        self.clock = clock or get_clock()
        fl = platform.fluidics
        self.collection = fl.collection
        self.reactor_name = fl.reactor.device
        self.nmr_name = fl.nmr.device

    # -- roles ------------------------------------------------------------------------------
    def pump(self, name: str) -> Pump:
        device = self.devices[name]
        if not isinstance(device, Pump):
            raise TypeError(f"{name} is not a pump ({type(device).__name__})")
        return device

    def valve(self, name: str) -> Valve:
        device = self.devices[name]
        if not isinstance(device, Valve):
            raise TypeError(f"{name} is not a valve ({type(device).__name__})")
        return device

    @property
    def light(self) -> LightSource | None:
        device = self.devices.get(self.reactor_name)
        if isinstance(device, Photoreactor):
            return device.light
        return device if isinstance(device, LightSource) else None

    @property
    def temperature(self) -> TemperatureController | None:
        device = self.devices.get(self.reactor_name)
        if isinstance(device, Photoreactor):
            return device.temperature
        return device if isinstance(device, TemperatureController) else None

    @property
    def nmr(self) -> NMRSpectrometer:
        device = self.devices[self.nmr_name]
        if not isinstance(device, NMRSpectrometer):
            raise TypeError(f"{self.nmr_name} is not an NMR spectrometer")
        return device

    def pumps(self) -> dict[str, Pump]:
        return {n: d for n, d in self.devices.items() if isinstance(d, Pump)}

    # -- safety ---------------------------------------------------------------------------
    async def safe_state(
        self, *, temperature: bool = False, now: Callable[[], float] | None = None
    ) -> SafeStateReport:
        """Light off, every pump stopped, collection valve to waste (and with
        ``temperature`` the reactor to the platform's ``safe_state.temperature``: control
        stopped when it is ``off``, else held at that setpoint). ``now`` is the clock the
        report's ``pump_stops`` are read from (default: the lab's).

        Every device is tried whatever happened to the others; each action is bounded in
        wall time. Never raises (except a caller's cancellation, after finishing).
        """
        return await uncancellable(self._safe_state(temperature, now or self.clock.now))

    async def _safe_state(self, temperature: bool, now: Callable[[], float]) -> SafeStateReport:
        report = SafeStateReport()

        async def attempt(what: str, action: Callable[[], Awaitable[Any]]) -> None:
            try:
                await asyncio.wait_for(action(), SAFE_ACTION_TIMEOUT_S)
                report.done.append(what)
            # Blind on purpose: whatever one device raises is reported and logged, and
            # must not keep the others from their safe state.
            except Exception as exc:  # noqa: BLE001
                if isinstance(exc, TimeoutError):
                    exc = TimeoutError(f"no answer within {SAFE_ACTION_TIMEOUT_S:g} s")
                report.failed[what] = f"{type(exc).__name__}: {exc}"
                log.error("safe state: %s failed: %s", what, exc)

        # The light first and on its own: it is the energy source that can run away.
        light = self.light
        if light is not None:
            await attempt(f"{self.reactor_name}: light off", light.light_off)
        async def stop(name: str, pump: Pump) -> None:
            sent = now()
            await attempt(f"{name}: stop", pump.emergency_stop)
            if f"{name}: stop" in report.done:
                report.pump_stops[name] = (sent, now())

        await asyncio.gather(*(stop(name, pump) for name, pump in self.pumps().items()))
        if self.collection is not None and self.collection.valve in self.devices:
            valve = self.valve(self.collection.valve)
            waste = self.collection.waste
            await attempt(
                f"{self.collection.valve}: waste ({waste})", lambda: valve.set_position(waste)
            )
        controller = self.temperature
        if temperature and controller is not None:
            safe = self.platform.safe_state.temperature
            if safe is None:
                await attempt(
                    f"{self.reactor_name}: temperature control off", controller.stop_control
                )
            else:

                async def hold() -> None:
                    await controller.set_setpoint(safe.value)
                    await controller.run()

                await attempt(f"{self.reactor_name}: temperature to {safe.text}", hold)
        if report.failed:
            log.error("safe state incomplete: %s", report.failed)
        else:
            log.info("safe state reached: %s", ", ".join(report.done))
        return report

    async def close(self) -> None:
        """Disconnect every device (errors are logged, never raised)."""
        for name, device in reversed(list(self.devices.items())):
            try:
                await asyncio.wait_for(device.disconnect(), SAFE_ACTION_TIMEOUT_S)
            # Blind on purpose: every device gets its disconnect whatever one raises.
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: disconnect failed: %s", name, exc)

    async def __aenter__(self) -> Lab:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _driver_options(platform: Platform, name: str) -> dict[str, Any]:
    """The device's constructor options, as the drivers declare them: on a real platform
    exactly the file's (loading it rejected any missing required option); on a simulated
    one, with the documented simulator values of the required options left out."""
    spec = platform.devices[name]
    return options_for(spec.driver, spec.options, simulated=platform.simulated)


def safety_devices(platform: Platform) -> list[str]:
    """The devices safe state needs: every one but the NMR (pumps, valves, the reactor's
    light and temperature, a gas inlet). The NMR holds no energy and moves no liquid."""
    return [name for name in platform.devices if name != platform.fluidics.nmr.device]


async def open_devices(
    platform: Platform, names: list[str]
) -> tuple[dict[str, Device], dict[str, str]]:
    """Open ``names`` in parallel (each ``connect`` leaves its device safe); returns the
    devices that connected and, per device that did not, why. Never raises for a device."""
    from robochem.drivers.registry import open_device

    async def one(name: str) -> Device:
        spec = platform.devices[name]
        options = _driver_options(platform, name)
        return await asyncio.wait_for(
            open_device(spec.driver, spec.url, name=name, **options), SAFE_ACTION_TIMEOUT_S
        )

    results = await asyncio.gather(*(one(n) for n in names), return_exceptions=True)
    devices: dict[str, Device] = {}
    failures: dict[str, str] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, Device):
            devices[name] = result
        elif isinstance(result, BaseException):
            failures[name] = f"{type(result).__name__}: {result}"
    return devices, failures


async def connect_lab(
    platform: Platform, *, only: list[str] | None = None, clock: Clock | None = None
) -> Lab:
    """Open every device of ``platform`` (each left in its safe state by ``connect``).

    If one device fails, those already open are disconnected and the error is raised.
    """
    from robochem.drivers.registry import open_device

    devices: dict[str, Device] = {}
    try:
        for name, spec in platform.devices.items():
            if only is not None and name not in only:
                continue
            options = _driver_options(platform, name)
            devices[name] = await open_device(spec.driver, spec.url, name=name, **options)
    except BaseException:
        await Lab(platform, devices, clock=clock).close()  # never raises: failures are logged
        raise
    return Lab(platform, devices, clock=clock)
