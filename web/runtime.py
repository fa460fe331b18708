"""The running lab behind the dashboard: device polling, manual control, the engine.

``LabService`` implements :class:`~robochem.web.lab.LabController` on a connected
:class:`~robochem.protocols.runtime.lab.Lab`: a background task reads every device about once a
second and keeps the snapshots the pages poll, so page views never touch the hardware.
``CampaignService`` implements :class:`~robochem.web.lab.CampaignController` with the
campaign :class:`~robochem.protocols.runtime.engine.Engine` in this process (the event bus is
in-process, so the dashboard, the engine and the devices share one event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from robochem.drivers.base import (
    Device,
    LightSource,
    NMRSpectrometer,
    Photoreactor,
    Pump,
    TemperatureController,
    Valve,
)
from robochem.drivers.errors import CommunicationError, DeviceError
from robochem.web.lab import (
    CampaignProgress,
    CommandRejectedError,
    ControlError,
    DeviceState,
    ExampleProtocol,
    ProtocolInvalidError,
    ProtocolIssue,
    UnknownCampaignError,
    UnknownDeviceError,
)

log = logging.getLogger("robochem.web.runtime")

EXAMPLES = Path(__file__).resolve().parent.parent / "protocols" / "examples"


def _kind(device: Device) -> str:
    for cls, kind in (
        (Photoreactor, "photoreactor"),
        (Pump, "pump"),
        (Valve, "valve"),
        (NMRSpectrometer, "nmr"),
        (LightSource, "light"),
        (TemperatureController, "temperature"),
    ):
        if isinstance(device, cls):
            return kind
    return "device"


_CONTROLS = {
    "pump": ["flow"],
    "valve": ["valve"],
    "photoreactor": ["light", "temperature"],
    "light": ["light"],
    "temperature": ["temperature"],
}


class LabService:
    """Cached device snapshots and manual commands for the dashboard."""

    def __init__(self, lab: Any, *, poll_s: float = 1.0) -> None:
        self.lab = lab
        self.platform = lab.platform.name
        self.poll_s = poll_s
        self._states: dict[str, DeviceState] = {}
        self._task: asyncio.Task[None] | None = None
        self.campaigns: CampaignService | None = None  # paused by the emergency stop
        for name, device in lab.devices.items():
            spec = lab.platform.devices.get(name)
            kind = _kind(device)
            limits = spec.limits.model_dump(exclude_none=True) if spec is not None else {}
            self._states[name] = DeviceState(
                name=name,
                driver=getattr(device, "driver_name", "") or (spec.driver if spec else ""),
                kind=kind,
                connected=True,
                controls=list(_CONTROLS.get(kind, [])),
                positions=[str(p) for p in getattr(device, "positions", ())],
                limits=_jsonable(limits),
            )

    # -- polling ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._poll_forever(), name="lab-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll_forever(self) -> None:
        while True:
            for name, device in self.lab.devices.items():
                await self._poll(name, device)
            await asyncio.sleep(self.poll_s)  # wall time: readings are for people

    async def _poll(self, name: str, device: Device) -> None:
        state = self._states[name]
        readings: dict[str, Any] = {}
        faults: list[str] = []
        try:
            if isinstance(device, Pump):
                status = await device.status()
                readings["state"] = status.state.value
                readings["flow_ml_min"] = status.flow_rate_ml_min
                if status.pressure_bar is not None:
                    readings["pressure_bar"] = status.pressure_bar
            elif isinstance(device, Valve):
                readings["position"] = await device.get_position()
            elif isinstance(device, Photoreactor):
                lamp = await device.light.lamp_status()
                readings["light_on"] = lamp.enabled
                readings["light_percent"] = lamp.intensity_percent
                if lamp.photon_flux_umol_s is not None:
                    readings["photon_flux_umol_s"] = lamp.photon_flux_umol_s
                faults.extend(lamp.faults)
                temp = await device.temperature.temperature_status()
                readings["temperature_c"] = temp.temperature_c
                readings["setpoint_c"] = temp.setpoint_c
                readings["temperature_control"] = "running" if temp.running else "stopped"
                faults.extend(temp.alarms)
            elif isinstance(device, NMRSpectrometer):
                # Never query a spectrometer mid-acquisition: its state comes from events.
                readings["state"] = "ready"
            state.connected = True
        except CommunicationError as exc:
            state.connected = False
            faults.append(str(exc))
        except DeviceError as exc:
            faults.append(str(exc))
        except Exception as exc:  # a poller bug must not stop the lab
            log.exception("polling %s failed", name)
            faults.append(f"poll failed: {exc}")
        if readings:
            state.readings = readings
        state.faults = faults
        state.updated_at = dt.datetime.now(dt.UTC)

    # -- LabController ----------------------------------------------------------------------
    def devices(self) -> list[DeviceState]:
        return list(self._states.values())

    def _device(self, name: str) -> Device:
        try:
            return self.lab.devices[name]
        except KeyError:
            raise UnknownDeviceError(name) from None

    async def set_flow(self, device: str, ml_min: float) -> None:
        pump = self._device(device)
        if not isinstance(pump, Pump):
            raise CommandRejectedError(f"{device} is not a pump")
        if ml_min <= 0:
            await pump.stop()
            return
        await pump.set_flow_rate(ml_min)
        await pump.start()

    async def set_light(self, device: str, percent: float) -> None:
        dev = self._device(device)
        light = dev.light if isinstance(dev, Photoreactor) else dev
        if not isinstance(light, LightSource):
            raise CommandRejectedError(f"{device} has no light")
        if percent <= 0:
            await light.light_off()
            return
        await light.set_intensity(percent)
        await light.light_on()

    async def set_temperature(self, device: str, celsius: float) -> None:
        dev = self._device(device)
        tc = dev.temperature if isinstance(dev, Photoreactor) else dev
        if not isinstance(tc, TemperatureController):
            raise CommandRejectedError(f"{device} has no temperature control")
        await tc.set_setpoint(celsius)
        await tc.run()

    async def set_valve(self, device: str, position: str) -> None:
        valve = self._device(device)
        if not isinstance(valve, Valve):
            raise CommandRejectedError(f"{device} is not a valve")
        await valve.set_position(position)

    async def emergency_stop(self) -> None:
        if self.campaigns is not None:
            await self.campaigns.pause_all("emergency stop")
        report = await self.lab.safe_state(temperature=True)
        if not report.ok:
            raise ControlError(f"safe state incomplete: {report.to_dict()}")


class CampaignService:
    """Campaigns created, run and steered from the dashboard (one engine per campaign)."""

    def __init__(self, database: Any, bus: Any, lab: Any, *, examples_dir: Path = EXAMPLES):
        self.database = database
        self.bus = bus
        self.lab = lab
        self.examples_dir = examples_dir
        self.engines: dict[int, Any] = {}
        self.tasks: dict[int, asyncio.Task[Any]] = {}

    def examples(self) -> list[ExampleProtocol]:
        out = []
        for path in sorted(self.examples_dir.glob("*.yaml")):
            text = path.read_text()
            title = next(
                (ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")),
                path.stem,
            )
            out.append(ExampleProtocol(path.stem, title, text))
        return out

    def validate(self, protocol_yaml: str) -> list[ProtocolIssue]:
        from robochem.protocols.errors import ProtocolError
        from robochem.protocols.load import parse_protocol

        try:
            parse_protocol(protocol_yaml, "<protocol>", self.lab.platform)
        except ProtocolError as exc:
            return [ProtocolIssue(i.message, i.line, i.column, i.path or None) for i in exc.issues]
        return []

    async def create(self, protocol_yaml: str, *, created_by: str) -> int:
        from robochem.protocols.runtime.engine import create_campaign

        issues = self.validate(protocol_yaml)
        if issues:
            raise ProtocolInvalidError(issues)
        return create_campaign(self.database, protocol_yaml, platform=self.lab.platform)

    async def start(self, campaign_id: int) -> None:
        from robochem.protocols.runtime.engine import Engine

        if any(not t.done() for t in self.tasks.values()):
            raise ControlError("another campaign is running on this platform")
        try:
            engine = Engine(self.database, self.bus, self.lab, campaign_id)
        except LookupError:
            raise UnknownCampaignError(str(campaign_id)) from None
        except RuntimeError as exc:
            raise ControlError(str(exc)) from None
        self.engines[campaign_id] = engine
        self.tasks[campaign_id] = asyncio.create_task(engine.run(), name=f"campaign-{campaign_id}")

    def _engine(self, campaign_id: int) -> Any:
        engine = self.engines.get(campaign_id)
        task = self.tasks.get(campaign_id)
        if engine is None or task is None or task.done():
            raise ControlError(f"campaign {campaign_id} is not running in this process")
        return engine

    async def _verb(self, campaign_id: int, verb: str, *args: Any) -> None:
        from robochem.protocols.runtime.engine import IllegalTransition

        engine = self._engine(campaign_id)
        try:
            await getattr(engine, verb)(*args)
        except IllegalTransition as exc:
            raise ControlError(str(exc)) from None

    async def pause(self, campaign_id: int) -> None:
        await self._verb(campaign_id, "request_pause")

    async def resume(self, campaign_id: int) -> None:
        await self._verb(campaign_id, "resume")

    async def abort(self, campaign_id: int, reason: str) -> None:
        await self._verb(campaign_id, "abort", reason)

    async def pause_all(self, reason: str) -> None:
        for campaign_id, task in self.tasks.items():
            if not task.done():
                with contextlib.suppress(Exception):
                    await self.engines[campaign_id].request_pause(immediate=True, reason=reason)

    def progress(self, campaign_id: int) -> CampaignProgress | None:
        engine = self.engines.get(campaign_id)
        task = self.tasks.get(campaign_id)
        if engine is None or task is None or task.done():
            return None
        p = engine.progress
        return CampaignProgress(
            campaign_id=campaign_id,
            planned_experiments=p.planned,
            current_experiment_id=p.experiment_id,
            current_step=p.step,
        )

    async def close(self) -> None:
        for campaign_id, task in list(self.tasks.items()):
            if not task.done():
                with contextlib.suppress(Exception):
                    await self.engines[campaign_id].abort("dashboard shutting down")
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 30)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value") and hasattr(value, "text"):  # a protocols Quantity
        return value.value
    return value
