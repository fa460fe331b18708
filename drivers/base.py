"""Capability interfaces every driver implements.

Methods are idempotent and unit-explicit (``set_flow_rate(ml_min)``, never a toggle).
Canonical units: mL/min, mL, bar, degC, percent, seconds. A driver class may implement
several capabilities (a photoreactor box is a light source and a temperature controller).
Every device can be asked to go to its safe state with ``emergency_stop()``.
"""

from __future__ import annotations

import abc
import enum
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from robochem.drivers.errors import LINK_ERRORS, DeviceError
from robochem.drivers.options import RequiredOption

log = logging.getLogger("robochem.drivers")


class Device(abc.ABC):
    """A connected device. Use as ``async with`` to connect and always disconnect.

    ``connect()`` is the one way in, for every driver: it runs ``_open_link()`` and then
    ``_initialise()``, and if anything fails on the way (an error, a timeout, a
    cancellation) it runs ``disconnect()`` before re-raising, so a failed connect leaves
    nothing open (on hardware, a serial port left open stays locked). A driver implements
    the hooks; it does not override ``connect()`` (refused when the class is created).
    """

    #: Driver name used in platform files and ``open_device`` (e.g. "knauer-azura").
    driver_name: str = ""
    #: False for drivers not yet checked against real hardware: they log a warning.
    verified: bool = False
    #: Options a platform file must give this driver (``robochem.drivers.options``).
    required_options: ClassVar[tuple[RequiredOption, ...]] = ()

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.driver_name

    #: The device's link, for drivers with one (a ByteTransport or ModbusTransport).
    transport: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "connect" in cls.__dict__:
            raise TypeError(
                f"{cls.__qualname__} overrides connect(); implement _initialise() (and "
                "_open_link() for a link that is not ``transport``) instead: connect() is "
                "the one path that closes the link when connecting fails"
            )

    async def connect(self) -> None:
        """Open the link and bring the device to a known safe state, or raise.

        On any failure (``BaseException``: cancellation included) the device is
        disconnected again before the error propagates.
        """
        if not self.verified:
            log.warning("%s: driver not yet verified against real hardware", self.name)
        try:
            await self._open_link()
            await self._initialise()
        except BaseException:
            await self._undo_connect()
            raise

    async def _open_link(self) -> None:
        """Open the link; the default opens ``transport`` when the driver has one."""
        if self.transport is not None:
            await self.transport.open()

    async def _initialise(self) -> None:
        """The safe-start sequence run by ``connect()`` (flow off, light off...).

        Every driver must say how its device starts safe.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no safe-start sequence")

    async def _undo_connect(self) -> None:
        """Close what a failed connect opened; the error that made it fail is the one
        the caller sees, so a failure to close is logged, not raised."""
        try:
            await self.disconnect()
        except (OSError, DeviceError) as exc:
            log.warning("%s: closing after a failed connect failed too: %r", self.name, exc)

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Close the link. Never raises for an already-closed (or never-opened) link."""

    @abc.abstractmethod
    async def emergency_stop(self) -> None:
        """Put the device in its safe state (flow stopped, light off, heating stopped)."""

    async def is_reachable(self) -> bool:
        """A cheap query (``_probe()``) that proves the link works; False instead of
        raising when the link or the device fails (``LINK_ERRORS``). Any other exception
        is a bug and propagates."""
        try:
            await self._probe()
        except LINK_ERRORS:
            return False
        return True

    async def _probe(self) -> None:
        """The cheap query behind ``is_reachable()``; the default asks nothing."""
        return None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()


class PumpState(enum.StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    PAUSED = "paused"
    STALLED = "stalled"
    TARGET_REACHED = "target_reached"
    FAULT = "fault"


@dataclass(frozen=True)
class PumpStatus:
    state: PumpState
    flow_rate_ml_min: float | None = None
    pressure_bar: float | None = None
    detail: str = ""


class Pump(Device):
    """A continuous-flow pump."""

    @abc.abstractmethod
    async def set_flow_rate(self, ml_min: float) -> float:
        """Set the flow rate; returns the rate actually set (the device's resolution)."""

    @abc.abstractmethod
    async def get_flow_rate(self) -> float: ...

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def status(self) -> PumpStatus: ...

    async def get_pressure(self) -> float | None:
        """Pressure in bar, or None when the pump has no sensor."""
        return None

    async def emergency_stop(self) -> None:
        await self.stop()


class SyringePump(Pump):
    """A syringe pump: a pump with a finite syringe and a direction."""

    @abc.abstractmethod
    async def set_syringe(self, diameter_mm: float, volume_ml: float) -> None: ...

    @abc.abstractmethod
    async def set_target_volume(self, ml: float | None) -> None:
        """Stop after dispensing ``ml``; None clears the target."""

    @abc.abstractmethod
    async def infuse(self) -> None: ...

    @abc.abstractmethod
    async def withdraw(self) -> None: ...

    @abc.abstractmethod
    async def get_dispensed_volume(self) -> float:
        """Volume infused since the counter was last cleared, in mL."""

    async def start(self) -> None:
        await self.infuse()


@dataclass(frozen=True)
class LampStatus:
    enabled: bool
    intensity_percent: float
    faults: tuple[str, ...] = ()
    wavelength_nm: float | None = None
    photon_flux_umol_s: float | None = None
    heatsink_temperature_c: float | None = None


class LightSource(Device):
    @abc.abstractmethod
    async def set_intensity(self, percent: float) -> float:
        """Set the output in percent of full power; returns the value set."""

    @abc.abstractmethod
    async def get_intensity(self) -> float:
        """The measured (read-back) output in percent."""

    @abc.abstractmethod
    async def light_on(self) -> None: ...

    @abc.abstractmethod
    async def light_off(self) -> None: ...

    @abc.abstractmethod
    async def lamp_status(self) -> LampStatus: ...

    async def emergency_stop(self) -> None:
        await self.light_off()


@dataclass(frozen=True)
class TemperatureStatus:
    running: bool
    setpoint_c: float
    temperature_c: float
    alarms: tuple[str, ...] = ()


class TemperatureController(Device):
    @abc.abstractmethod
    async def set_setpoint(self, celsius: float) -> float: ...

    @abc.abstractmethod
    async def get_setpoint(self) -> float: ...

    @abc.abstractmethod
    async def get_temperature(self) -> float: ...

    @abc.abstractmethod
    async def run(self) -> None: ...

    @abc.abstractmethod
    async def stop_control(self) -> None: ...

    @abc.abstractmethod
    async def temperature_status(self) -> TemperatureStatus: ...

    async def emergency_stop(self) -> None:
        await self.stop_control()


class Valve(Device):
    #: Valid positions, as printed on the valve body.
    positions: tuple[str, ...] = ()

    @abc.abstractmethod
    async def set_position(self, position: str | int) -> str:
        """Move to ``position`` and return the position read back."""

    @abc.abstractmethod
    async def get_position(self) -> str: ...

    async def emergency_stop(self) -> None:
        """A valve has no energy to remove; staying put is safe."""


@dataclass(frozen=True)
class HardwareInfo:
    connected: bool
    software: str = ""
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ShimResult:
    ok: bool
    line_width_hz: float | None = None
    base_width_hz: float | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Acquisition:
    """What an NMR acquisition produced."""

    protocol: str
    data_folder: Path
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


class NMRSpectrometer(Device):
    @abc.abstractmethod
    async def hardware_check(self) -> HardwareInfo: ...

    @abc.abstractmethod
    async def shim(
        self, method: str = "CheckShim", *, sample_reference_ppm: float | None = None
    ) -> ShimResult:
        """Measure or improve the field homogeneity; with ``sample_reference_ppm``, on the
        liquid in the cell, locking onto the line at that shift."""

    @abc.abstractmethod
    async def acquire(
        self,
        protocol: str,
        options: dict[str, Any] | None = None,
        *,
        sample: str | None = None,
        data_folder: str | Path | None = None,
        user_data: dict[str, str] | None = None,
    ) -> Acquisition: ...

    @abc.abstractmethod
    async def abort(self) -> None: ...

    async def emergency_stop(self) -> None:
        await self.abort()


class Photoreactor(Device):
    """A light source and a temperature controller acting as one reactor."""

    def __init__(
        self, light: LightSource, temperature: TemperatureController, name: str | None = None
    ) -> None:
        super().__init__(name or "photoreactor")
        self.light = light
        self.temperature = temperature

    async def _open_link(self) -> None:
        """The parts open their own links in ``_initialise``."""

    async def _initialise(self) -> None:
        # If the second part fails, connect() disconnects both (the first is open).
        await self.light.connect()
        await self.temperature.connect()

    async def _probe(self) -> None:
        await self.light._probe()

    async def disconnect(self) -> None:
        try:
            await self.light.disconnect()
        finally:
            await self.temperature.disconnect()

    async def emergency_stop(self) -> None:
        # Light first: it is the energy source that can run away.
        try:
            await self.light.emergency_stop()
        finally:
            await self.temperature.emergency_stop()
