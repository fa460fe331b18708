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
from robochem.web.checker import (
    Checker,
    CheckFailedError,
    CheckMemoryError,
    CheckTimeoutError,
)
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
from robochem.web.tasks import spawn, watch

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
            self._task = watch(
                asyncio.create_task(self._poll_forever(), name="lab-poller"), "device poller"
            )

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


#: Campaign statuses from which nothing can be started, paused or resumed.
FINISHED = ("completed", "aborted", "failed")


class CampaignService:
    """Campaigns created, run and steered from the dashboard (one engine per campaign).

    Every command is checked against the campaign's state before anything is scheduled
    and refused with :class:`ControlError` (409) naming the reason. Protocols from the
    network are checked by :class:`~robochem.web.checker.Checker` processes, bounded in
    wall time, never on the event loop that drives the lab.
    """

    def __init__(
        self,
        database: Any,
        bus: Any,
        lab: Any,
        *,
        examples_dir: Path = EXAMPLES,
        checker: Checker | None = None,
    ):
        self.database = database
        self.bus = bus
        self.lab = lab
        self.examples_dir = examples_dir
        self.engines: dict[int, Any] = {}
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        #: why a campaign's engine task ended with an exception (it is also logged)
        self.errors: dict[int, str] = {}
        self._starting = asyncio.Lock()  # two start requests must not both pass the checks
        if checker is None:
            from robochem.settings import get_settings

            checker = Checker(timeout_s=get_settings().check_timeout_s)
            checker.warm_up()
        self.checker = checker

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
        """Problems of the text against this platform, found in a checker process; blocks the
        calling thread (the API calls it from a worker thread) for at most check_timeout_s.
        Raises :class:`CheckerBusyError` when every checker process is busy."""
        platform = self.lab.platform
        try:
            rows = self.checker.call("validate", protocol_yaml, "<protocol>", platform)
        except CheckTimeoutError:
            return [
                ProtocolIssue(
                    f"checking this protocol took longer than {self.checker.timeout_s:g} s "
                    "(setting check_timeout_s) and was stopped; robochem's examples check "
                    "in well under a second"
                )
            ]
        except CheckMemoryError as exc:
            return [ProtocolIssue(f"{exc}; robochem's examples need a small part of that")]
        except CheckFailedError as exc:
            log.error("checking a protocol failed: %s", exc)
            return [ProtocolIssue("robochem could not check this protocol (see the log)")]
        return [ProtocolIssue(m, line, column, path or None) for m, line, column, path in rows]

    async def create(self, protocol_yaml: str, *, created_by: str) -> int:
        from robochem.protocols.runtime.engine import create_campaign

        issues = await asyncio.to_thread(self.validate, protocol_yaml)
        if issues:
            raise ProtocolInvalidError(issues)
        # It passed the bounded check just now; storing it parses it once more, in a thread.
        return await asyncio.to_thread(
            create_campaign, self.database, protocol_yaml, platform=self.lab.platform
        )

    async def start(self, campaign_id: int) -> None:
        async with self._starting:
            status, reason = await asyncio.to_thread(self._status, campaign_id)
            if status in FINISHED:
                why = f" ({reason})" if reason else ""
                raise ControlError(
                    f"cannot start campaign {campaign_id}: it is {status}{why}, and a finished "
                    "campaign cannot run again; create a new one"
                )
            running = self._running()
            if running == campaign_id:
                raise ControlError(f"cannot start campaign {campaign_id}: it is already running")
            if running is not None:
                raise ControlError(
                    f"cannot start campaign {campaign_id}: campaign {running} is running on "
                    "this platform (one at a time)"
                )
            await asyncio.to_thread(self._not_run_elsewhere, campaign_id)
            engine = await asyncio.to_thread(self._new_engine, campaign_id)
            self.engines[campaign_id] = engine
            self.errors.pop(campaign_id, None)
            task = asyncio.create_task(engine.run(), name=f"campaign-{campaign_id}")
            self.tasks[campaign_id] = watch(
                task, f"campaign {campaign_id}", lambda exc: self._record_failure(campaign_id, exc)
            )

    def _status(self, campaign_id: int) -> tuple[str, str | None]:
        from robochem.storage.models import Campaign

        with self.database.session() as session:
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise UnknownCampaignError(f"no campaign {campaign_id}")
            return str(row.status), row.status_reason

    def _not_run_elsewhere(self, campaign_id: int) -> None:
        """409 now, rather than a failed engine task, when another process (a headless
        ``robochem run``) holds the campaign."""
        from robochem.storage.locks import CampaignBusy, campaign_lock

        try:
            with campaign_lock(self.database, campaign_id):
                pass
        except CampaignBusy as exc:
            raise ControlError(f"cannot start campaign {campaign_id}: {exc}") from None

    def _running(self) -> int | None:
        return next((cid for cid, task in self.tasks.items() if not task.done()), None)

    def _new_engine(self, campaign_id: int) -> Any:
        from robochem.protocols.errors import ProtocolError
        from robochem.protocols.runtime.engine import Engine

        try:
            return Engine(self.database, self.bus, self.lab, campaign_id)
        except LookupError:
            raise UnknownCampaignError(f"no campaign {campaign_id}") from None
        except ProtocolError as exc:
            raise ControlError(
                f"cannot start campaign {campaign_id}: its protocol does not pass the checks "
                f"against platform {self.lab.platform.name!r}: {exc.issues[0]}"
            ) from None
        except RuntimeError as exc:
            raise ControlError(f"cannot start campaign {campaign_id}: {exc}") from None

    def _record_failure(self, campaign_id: int, error: BaseException) -> None:
        """The engine task ended with an exception: remember it and put it on the record."""
        self.errors[campaign_id] = f"{type(error).__name__}: {error}"
        spawn(
            self.bus.publish(
                "web",
                "campaign.engine_error",
                {"error": self.errors[campaign_id]},
                campaign_id=campaign_id,
            ),
            f"recording the engine error of campaign {campaign_id}",
        )

    async def _command(self, campaign_id: int, verb: str, *args: Any) -> None:
        """Run ``verb`` on the live engine, or refuse with the campaign's actual state."""
        from robochem.protocols.runtime.engine import IllegalTransition

        method = {"pause": "request_pause", "resume": "resume", "abort": "abort"}[verb]
        engine = self.engines.get(campaign_id)
        task = self.tasks.get(campaign_id)
        if engine is None or task is None or task.done():
            status, _ = await asyncio.to_thread(self._status, campaign_id)
            if verb == "resume" and status == "paused":
                await self.start(campaign_id)  # a new engine resumes it where it stopped
                return
            raise ControlError(self._refusal(campaign_id, verb, status))
        try:
            await getattr(engine, method)(*args)
        except IllegalTransition as exc:
            state = "starting" if exc.current == "idle" else exc.current
            message = f"cannot {verb} campaign {campaign_id}: it is {state}"
            raise ControlError(message) from None

    def _refusal(self, campaign_id: int, verb: str, status: str) -> str:
        text = f"cannot {verb} campaign {campaign_id}: it is {status}"
        if campaign_id in self.errors:
            return f"{text}; its engine stopped with {self.errors[campaign_id]}"
        if status == "created":
            return f"{text} and has not been started"
        if status not in FINISHED:
            return f"{text} but not run by this dashboard; start it here to continue it"
        return text

    async def pause(self, campaign_id: int) -> None:
        await self._command(campaign_id, "pause")

    async def resume(self, campaign_id: int) -> None:
        await self._command(campaign_id, "resume")

    async def abort(self, campaign_id: int, reason: str) -> None:
        await self._command(campaign_id, "abort", reason)

    async def pause_all(self, reason: str) -> None:
        for campaign_id, task in self.tasks.items():
            if not task.done():
                try:
                    await self.engines[campaign_id].request_pause(immediate=True, reason=reason)
                except Exception:
                    # An emergency stop must reach every campaign: log this one, go on.
                    log.exception("pausing campaign %s (%s) failed", campaign_id, reason)

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

    async def close(self, stop_s: float = 30.0) -> None:
        """Abort every running campaign and wait up to ``stop_s`` for each to stop; one that
        does not is cancelled. A campaign's own failure is logged by its task's watcher."""
        for campaign_id, task in list(self.tasks.items()):
            if not task.done():
                await self._abort_for_shutdown(campaign_id)
                await self._await_stopped(campaign_id, task, stop_s)

    async def _abort_for_shutdown(self, campaign_id: int) -> None:
        from robochem.protocols.runtime.engine import IllegalTransition

        try:
            await self.engines[campaign_id].abort("dashboard shutting down")
        except IllegalTransition as exc:  # already ending (aborting, failing, finishing)
            log.info("campaign %s is already %s at shutdown", campaign_id, exc.current)
        except Exception:
            # Shutting down must still stop every other campaign: log this one and go on
            # (waiting for its task below cancels it should it not stop by itself).
            log.exception("aborting campaign %s at shutdown failed", campaign_id)

    @staticmethod
    async def _await_stopped(campaign_id: int, task: asyncio.Task[Any], stop_s: float) -> None:
        # asyncio.wait never raises the task's exception (its watcher logs that) and lets a
        # cancellation of close() itself through.
        done, _ = await asyncio.wait({task}, timeout=stop_s)
        if not done:
            log.error(
                "campaign %s did not stop within %g s of the shutdown abort; cancelling it",
                campaign_id,
                stop_s,
            )
            task.cancel()
            await asyncio.wait({task})


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value") and hasattr(value, "text"):  # a protocols Quantity
        return value.value
    return value
