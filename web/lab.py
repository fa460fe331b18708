"""What the dashboard needs from the rest of the system, as two small interfaces.

The web app never talks to drivers or to the campaign loop directly. The device layer
implements ``LabController`` (live state and manual control); the campaign engine
implements ``CampaignController`` (create, start, pause, resume, abort). Either may be
absent: the dashboard then shows what the database holds and answers control requests
with 409 Conflict and a detail saying what is missing.

Errors the web layer understands (anything else is a bug and becomes a 500):

- ``UnknownDeviceError`` / ``UnknownCampaignError``  -> 404
- ``robochem.drivers.errors.SetpointRejected``, ``CommandRejectedError`` -> 422
- ``robochem.drivers.errors.DeviceError`` (faults, timeouts, lost links) -> 409
- ``ControlError`` (e.g. "campaign 3 is not running") -> 409
- ``ProtocolInvalidError`` (a protocol with errors at lines) -> 422 with the issues
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CampaignController",
    "CampaignProgress",
    "CommandRejectedError",
    "ControlError",
    "DeviceState",
    "ExampleProtocol",
    "LabController",
    "ProtocolInvalidError",
    "ProtocolIssue",
    "UnknownCampaignError",
    "UnknownDeviceError",
]


class UnknownDeviceError(LookupError):
    """No device of that name on this platform."""


class UnknownCampaignError(LookupError):
    """No campaign with that id."""


class CommandRejectedError(ValueError):
    """A manual command that makes no sense for the device (e.g. light on a pump)."""


class ControlError(RuntimeError):
    """A campaign or lab command refused in the present state; the message says why."""


@dataclass(frozen=True)
class ProtocolIssue:
    """One validation problem, located in the YAML text (1-based line and column)."""

    message: str
    line: int | None = None
    column: int | None = None
    path: str | None = None  # e.g. "variables.residence_time.max"


class ProtocolInvalidError(ValueError):
    def __init__(self, issues: list[ProtocolIssue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(i.message for i in issues) or "invalid protocol")


@dataclass
class DeviceState:
    """A snapshot of one device, cheap to produce (the device layer keeps it cached).

    ``readings`` holds canonical units in the key name: ``flow_ml_min``,
    ``pressure_bar``, ``light_percent``, ``temperature_c``, ``position``, ...
    ``controls`` lists the manual commands it accepts: ``flow``, ``light``,
    ``temperature``, ``valve``. ``positions`` are the valve's valid positions.
    """

    name: str
    driver: str
    kind: str  # pump, valve, light, temperature, photoreactor, nmr, ...
    connected: bool
    readings: dict[str, Any] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    positions: list[str] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)  # e.g. {"flow_ml_min": [0, 10]}
    updated_at: dt.datetime | None = None


@runtime_checkable
class LabController(Protocol):
    """Live devices and manual control. Implemented by the device layer.

    ``devices()`` is called often (every SSE client polls it several times a second),
    so it must return cached state without touching the hardware. Commands are
    awaited until the device acknowledged them (or raised).
    """

    platform: str

    def devices(self) -> list[DeviceState]: ...

    async def set_flow(self, device: str, ml_min: float) -> None: ...

    async def set_light(self, device: str, percent: float) -> None: ...

    async def set_temperature(self, device: str, celsius: float) -> None: ...

    async def set_valve(self, device: str, position: str) -> None: ...

    async def emergency_stop(self) -> None:
        """Stop every pump, switch off every light, pause any running campaign."""
        ...


@dataclass(frozen=True)
class ExampleProtocol:
    name: str
    title: str
    text: str


@dataclass
class CampaignProgress:
    """What only the running engine knows; the rest comes from the database."""

    campaign_id: int
    planned_experiments: int | None = None
    current_experiment_id: int | None = None
    current_step: str | None = None
    eta: dt.datetime | None = None


@runtime_checkable
class CampaignController(Protocol):
    """The campaign engine, as seen by the dashboard.

    Every method raises ``UnknownCampaignError``, ``ControlError`` or (create/validate)
    ``ProtocolInvalidError``; state changes are also published on the event bus.
    """

    def examples(self) -> list[ExampleProtocol]: ...

    def validate(self, protocol_yaml: str) -> list[ProtocolIssue]:
        """Problems found in the text (empty when it would be accepted)."""
        ...

    async def create(self, protocol_yaml: str, *, created_by: str) -> int:
        """Store a new campaign (status ``created``) and return its id."""
        ...

    async def start(self, campaign_id: int) -> None: ...

    async def pause(self, campaign_id: int) -> None: ...

    async def resume(self, campaign_id: int) -> None: ...

    async def abort(self, campaign_id: int, reason: str) -> None: ...

    def progress(self, campaign_id: int) -> CampaignProgress | None:
        """Live progress of a campaign the engine is running, else None."""
        ...
