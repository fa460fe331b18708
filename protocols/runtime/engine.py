"""The campaign engine: ask -> plan -> execute -> analyse -> store -> tell, as a state machine.

States (bluesky's run-engine verbs, ivoryOS's run behaviour)::

    idle -> running <-> pausing -> paused -> running ...
    running/pausing/paused -> stopping -> completed      (finish the current experiment)
    any live state         -> aborting -> aborted        (cancel at once, safe state)
    any live state         -> failed                     (a bug)

Guarantees, by the structure of the code rather than by discipline:

* Safe state on every exit path: each experiment runs inside ``try/finally`` that calls
  :meth:`Lab.safe_state`, and so does the whole run; safe state cannot be cancelled half-way.
* Durability: every state change is committed to the database before it is published on
  the bus and before the step it announces runs. The optimiser's state, the experiment's
  status, its measurement and the reagent inventory change in one transaction.
* Storage that fails (a database deleted, replaced, full, unwritable or unreachable; the
  data directory full) ends the run at once: safe state, then :class:`StorageError` with
  one line naming the database and what to do. The campaign is not marked failed (it could
  not be stored anyway): it resumes once the storage is back.
* Resume: experiments found ``running`` (the process died) are marked ``interrupted`` and
  repeated once, unless their measurement was committed: those are finished from it;
  finished experiments are never repeated; the optimiser is rebuilt from the stored
  experiments (told in index order).
* Interlocks: a watcher polls pressure, reactor temperature, lamp and pump faults during
  every experiment; a trip cancels the running step, reaches safe state, records an event
  and pauses with the reason. A rejected spectrum is measured again, then the experiment
  repeated once, then the campaign pauses. Nothing is silently continued.

The engine's vocabulary is in :mod:`.states`, what a campaign stores in :mod:`.records`, the
interlocks in :mod:`.interlocks`. A protocol with a ``scale_up`` section hands the loop to
:class:`~.scaleup.ScaleUpRunner`, which uses only the engine's public interface (the
"for runners" section below). See docs/engine.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from robochem.analysis import AnalysisConfig, AnalysisResult, analyze_folder
from robochem.clock import Clock, get_clock
from robochem.drivers.base import Acquisition, TemperatureController
from robochem.drivers.errors import DeviceError, SetpointRejected
from robochem.events import EventBus
from robochem.logs import log_context
from robochem.optimizer import Optimizer
from robochem.storage.db import Database, StorageError, is_storage_failure, storage_error
from robochem.storage.locks import campaign_lock
from robochem.storage.models import Campaign, CampaignStatus

from ..load import parse_protocol
from ..model import Protocol
from ..platform import Platform
from ..recipe import Recipe
from ..steps import (
    Acquire,
    Analyze,
    ExperimentPlan,
    InfeasibleConditions,
    LightOff,
    SetFlow,
    SetLight,
    SetTemperature,
    SetValve,
    StartPump,
    Step,
    StopPump,
    Wait,
    WaitTemperature,
    describe,
    plan_experiment,
    pump_group,
)
from .interlocks import check_interlocks, fault_kind
from .lab import Lab, uncancellable
from .records import CampaignRecords, utcnow
from .shim import ShimSchedule
from .states import (
    DB_STATUS,
    TERMINAL,
    TRANSITIONS,
    EngineState,
    IllegalTransition,
    InterlockTrip,
    Outcome,
    Policy,
    Progress,
)

log = logging.getLogger("robochem.protocols.runtime.engine")

__all__ = [
    "TRANSITIONS",
    "Engine",
    "EngineState",
    "IllegalTransition",
    "InterlockTrip",
    "Outcome",
    "Policy",
    "analysis_config",
    "create_campaign",
]

SOURCE = "engine"
S = EngineState
T = TypeVar("T")


def analysis_config(protocol: Protocol, recipe: Recipe) -> AnalysisConfig:
    """The protocol's analysis with this experiment's own limiting-reagent concentration and,
    when the standard is dissolved in the limiting stock, its concentration in the mixture."""
    base = protocol.analysis
    limiting = protocol.limiting_stock()
    c_a = recipe.concentrations[limiting]
    update: dict[str, Any] = {
        "limiting_reagent": base.limiting_reagent.model_copy(update={"concentration": c_a})
    }
    standard = protocol.stocks[limiting].internal_standard
    if standard is not None:
        c_is = standard.concentration.value * c_a / protocol.stocks[limiting].concentration.value
        update["internal_standard"] = base.internal_standard.model_copy(
            update={"concentration": c_is}
        )
    return base.model_copy(update=update)


def create_campaign(
    database: Database,
    protocol_text: str,
    *,
    file: str = "<protocol>",
    platform: Platform | None = None,
    name: str | None = None,
) -> int:
    """Validate and store a new campaign (status ``created``); returns its id."""
    protocol = parse_protocol(protocol_text, file, platform)
    with database.session() as session:
        row = Campaign(
            name=name or protocol.metadata.name,
            protocol_text=protocol_text,
            protocol_sha256=hashlib.sha256(protocol_text.encode()).hexdigest(),
            status=CampaignStatus.CREATED,
            summary={
                "planned_experiments": 1 if protocol.scale_up else protocol.optimizer.budget,
                "protocol_file": file,
                "platform": platform.name if platform is not None else None,
            },
        )
        session.add(row)
        session.flush()
        return row.id


class Engine:
    """Runs one campaign on a connected :class:`Lab`.

    Control verbs (``request_pause``, ``resume``, ``stop``, ``abort``) are coroutines to be
    called from the same event loop as :meth:`run` (the CLI's signal handlers, the web API).
    With ``exit_on_pause`` :meth:`run` returns when the campaign pauses (a headless run has
    nobody to press resume); ``robochem run --resume`` continues it later.
    """

    def __init__(
        self,
        database: Database,
        bus: EventBus,
        lab: Lab,
        campaign_id: int,
        *,
        protocol: Protocol | None = None,
        clock: Clock | None = None,
        policy: Policy | None = None,
        exit_on_pause: bool = False,
        data_dir: Path | None = None,
    ) -> None:
        self.db = database
        self.bus = bus
        self.lab = lab
        self.campaign_id = campaign_id
        self.clock = clock or get_clock()
        self.policy = policy or Policy()
        self.exit_on_pause = exit_on_pause
        if data_dir is None:
            from robochem.settings import get_settings

            data_dir = get_settings().data_dir
        #: raw spectra are copied here before their measurement is recorded
        self.spectra_dir = Path(data_dir) / "spectra" / f"campaign-{campaign_id}"
        with database.session() as session:
            campaign = session.get(Campaign, campaign_id)
            if campaign is None:
                raise LookupError(f"no campaign {campaign_id}")
            text = campaign.protocol_text
            self._initial_status = CampaignStatus(campaign.status)
        self.protocol = protocol or parse_protocol(text, f"campaign {campaign_id}", lab.platform)
        self.platform = lab.platform
        #: what the campaign has stored (experiments, measurements, inventory)
        self.records = CampaignRecords(database, campaign_id, self.protocol, self.platform)
        self.state = EngineState.IDLE
        self.reason: str | None = None
        planned = 1 if self.protocol.scale_up is not None else self.protocol.optimizer.budget
        self.progress = Progress(planned=planned)
        self.optimizer: Optimizer | None = None
        self._wake = asyncio.Event()  # resume/stop/abort while paused
        self._interrupt = asyncio.Event()  # abort or immediate pause during an experiment
        self._lock = asyncio.Lock()
        self._halted = False  # set when an experiment's tasks are being cancelled
        #: the running attempt's outcome once its spectrum is analysed and stored: what
        #: follows (cleaning) can be interrupted without losing the measurement
        self._measured: Outcome | None = None
        #: experiments found running on resume whose measurement was committed: they are
        #: finished from it (their remaining steps run) before anything else
        self._resume_measured: list[int] = []
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        shim = self.platform.fluidics.nmr.shim
        self._shim = ShimSchedule(shim) if shim is not None else None

    # -- state machine ----------------------------------------------------------------------
    async def _transition(self, target: EngineState, reason: str | None = None) -> None:
        """Commit, then publish, then act (the caller acts after this returns)."""
        async with self._lock:
            if target not in TRANSITIONS[self.state]:
                raise IllegalTransition(self.state, target)
            previous = self.state
            await asyncio.to_thread(self._store_status, target, reason)
            self.state = target
            self.reason = reason
            self.progress.reason = reason
        await self.publish("campaign.state", {"from": previous, "to": target, "reason": reason})
        log.info(
            "campaign %s: %s -> %s%s",
            self.campaign_id,
            previous,
            target,
            f" ({reason})" if reason else "",
        )

    def _store_status(self, target: EngineState, reason: str | None) -> None:
        with self.db.session() as session:
            campaign = session.get(Campaign, self.campaign_id)
            assert campaign is not None
            campaign.status = DB_STATUS[target]
            campaign.status_reason = reason
            if target is S.RUNNING and campaign.started_at is None:
                campaign.started_at = utcnow()
            if target in TERMINAL:
                campaign.ended_at = utcnow()
        if target in TERMINAL:
            self.db.verify()  # an end is reported only once it is stored where it belongs

    # -- control verbs ------------------------------------------------------------------------
    async def request_pause(
        self, *, immediate: bool = False, reason: str = "pause requested"
    ) -> None:
        """Pause at the next checkpoint (between experiments); ``immediate`` interrupts the
        running experiment (it is repeated on resume)."""
        if self.state is S.RUNNING:
            await self._transition(S.PAUSING, reason)
        elif self.state is not S.PAUSING:
            raise IllegalTransition(self.state, S.PAUSING)
        if immediate:
            self._interrupt.set()
        self._wake.set()  # a scale-up run sleeping between NMR checks ends its collection

    async def resume(self) -> None:
        if self.state is S.PAUSED:
            await self._transition(S.RUNNING, "resumed")
            self._wake.set()
        elif self.state is S.PAUSING:
            await self._transition(S.RUNNING, "pause cancelled")
        else:
            raise IllegalTransition(self.state, S.RUNNING)

    async def stop(self, reason: str = "stop requested") -> None:
        """Finish the current experiment, then end ``completed``."""
        await self._transition(S.STOPPING, reason)
        self._wake.set()

    async def abort(self, reason: str = "abort requested") -> None:
        """Cancel the running step at once, go to safe state, end ``aborted``."""
        await self._transition(S.ABORTING, reason)
        self._interrupt.set()
        self._wake.set()

    def refill(self, stock: str, ml: float) -> None:
        """Record that ``stock`` (or the solvent, by name) now holds ``ml`` mL."""
        self.records.refill(stock, ml)

    # -- the run ------------------------------------------------------------------------------
    async def run(self) -> EngineState:
        """Run (or resume) the campaign until it ends, or until it pauses with
        ``exit_on_pause``. Returns the final state."""
        final = (CampaignStatus.COMPLETED, CampaignStatus.ABORTED, CampaignStatus.FAILED)
        if self._initial_status in final:
            raise RuntimeError(
                f"campaign {self.campaign_id} is {self._initial_status}: it cannot run again"
            )
        if self.state is not S.IDLE:
            raise RuntimeError("an engine runs once; build a new one to resume")
        # One controller per campaign: CampaignBusy (one line) if another process runs it.
        with campaign_lock(self.db, self.campaign_id):
            return await self._run()

    async def _run(self) -> EngineState:
        with log_context(campaign_id=self.campaign_id):
            failure: BaseException | None = None
            try:
                self.db.verify()  # the database it starts on is the one it must end on
                await self._start()
                await self._loop()
            except asyncio.CancelledError as exc:
                failure = exc
            # Any bug ends the campaign failed (safe state first); _failure logs its trace.
            except Exception as exc:  # noqa: BLE001
                failure = self._failure(exc)
            finally:
                report = await self.lab.safe_state(temperature=True)
                if not isinstance(failure, StorageError):
                    await self.record_safe_state(report.to_dict(), "campaign end")
                    try:
                        await self._finish(failure)
                    except Exception as exc:
                        if not is_storage_failure(exc):
                            raise
                        failure = self._failure(exc)
            if isinstance(failure, StorageError):
                raise self._storage_advice(failure, report.ok)
            if isinstance(failure, asyncio.CancelledError):
                raise failure
            return self.state

    def _failure(self, exc: Exception) -> Exception:
        """Log a failure once: storage as one line, anything else (a bug) with its trace."""
        if is_storage_failure(exc):
            error = storage_error(self.db, exc)
            log.error("campaign %s: storage failed: %s", self.campaign_id, error)
            return error
        log.exception("campaign %s failed", self.campaign_id)
        return exc

    def _storage_advice(self, error: StorageError, safe: bool) -> StorageError:
        """The one line a person reads: what failed, the lab's state, what to do."""
        lab = "the lab is in safe state" if safe else "safe state was INCOMPLETE (see the log)"
        return StorageError(
            error.url,
            f"{error.problem}. {lab}; nothing after the last commit is stored and campaign "
            f"{self.campaign_id} is not completed. Restore or free the storage, then continue "
            f"with: robochem run --resume {self.campaign_id} --platform PLATFORM",
        )

    async def _finish(self, failure: BaseException | None) -> None:
        if self.state in TERMINAL:
            return
        if isinstance(failure, asyncio.CancelledError):
            if self.state is not S.ABORTING:
                await self._transition(S.ABORTING, "engine task cancelled")
            await self._transition(S.ABORTED, self.reason)
        elif failure is not None:
            await self._transition(S.FAILED, f"{type(failure).__name__}: {failure}")
        elif self.state is S.ABORTING:
            await self._transition(S.ABORTED, self.reason)
        elif self.state is S.PAUSED:
            return  # detached (exit_on_pause): resumable
        elif self.state is S.IDLE:
            return
        else:
            await self._transition(S.COMPLETED, self.reason or "campaign finished")

    async def _start(self) -> None:
        status = self._initial_status
        resumed, self._resume_measured = await asyncio.to_thread(self.records.recover, status)
        self.optimizer = await asyncio.to_thread(self.records.rebuild_optimizer)
        if self._shim is not None:
            shim = await asyncio.to_thread(self.records.last_shim)
            if shim is not None:
                self._shim.restore(*shim)
                resumed["shim_kept"] = {"shimmed_at": shim[0], "line_width_hz": shim[1]}
        if resumed:
            await self.publish("campaign.resumed", resumed)
        await self._transition(S.RUNNING, "resumed" if status != CampaignStatus.CREATED else None)
        if status == CampaignStatus.ABORTING:
            await self._transition(S.ABORTING, "abort was in progress when the engine stopped")
        elif status == CampaignStatus.STOPPING:
            await self._transition(S.STOPPING, "stop was in progress when the engine stopped")

    # -- main loop ----------------------------------------------------------------------------
    async def _loop(self) -> None:
        if self.protocol.scale_up is not None:
            from .scaleup import ScaleUpRunner

            await ScaleUpRunner(self).loop()
            return
        for exp_id in self._resume_measured:
            await self._run_experiment(exp_id, resumed=True)
        while True:
            await self.checkpoint()
            if self.state in (S.STOPPING, S.ABORTING, S.PAUSED):
                return
            exp_id = await self._next_experiment()
            if exp_id is None:
                return
            await self._run_experiment(exp_id)

    async def _next_experiment(self) -> int | None:
        """The next queued experiment (repeats first), else new ones from the optimiser."""
        queued = await asyncio.to_thread(self.records.first_queued)
        if queued is not None:
            return queued
        assert self.optimizer is not None
        stop, why = self.optimizer.should_stop()
        if stop:
            self.reason = why
            await self.publish("optimizer.stop", {"reason": why})
            return None
        # The last batch is cut to what the budget leaves: a budget of 15 in batches of 2 runs
        # 15 experiments, not 16 (the reagent estimate counts on it).
        left = self.protocol.optimizer.budget - self.optimizer.n_experiments
        size = max(1, min(self.protocol.optimizer.batch_size, left))
        points = await asyncio.to_thread(self.optimizer.ask, size)
        ids = await asyncio.to_thread(self.records.store_asked, points, self.optimizer)
        await self.publish("optimizer.ask", {"points": points, "experiment_ids": ids})
        return ids[0]

    # -- for runners: the engine's public interface ---------------------------------------------
    # The scale-up runner (and the pipelined schedule to come) drives the lab through these
    # and through ``records``; the experiment loop below uses the same ones.

    async def checkpoint(self) -> None:
        """Where a pause takes effect: between experiments. Returns when the campaign runs
        (or stops, or aborts), or at once when paused with ``exit_on_pause``."""
        if self.state is S.PAUSING:
            await self._enter_paused(self.reason or "pause requested")
        while self.state is S.PAUSED:
            if self.exit_on_pause:
                return
            self._wake.clear()
            await self._wake.wait()
        self._interrupt.clear()

    async def publish(
        self, kind: str, payload: dict[str, Any], *, experiment_id: int | None = None
    ) -> None:
        """Commit an event, then tell the listeners (a display's callback must not stop the
        lab: one that fails is logged and the others still hear the event)."""
        await self.bus.publish(
            SOURCE, kind, payload, campaign_id=self.campaign_id, experiment_id=experiment_id
        )
        for listener in list(self.listeners):
            try:
                listener(kind, payload)
            except Exception:
                log.exception(
                    "campaign %s: listener %r failed on %s", self.campaign_id, listener, kind
                )

    async def publish_trip(self, trip: InterlockTrip, exp_id: int) -> None:
        await self.publish(
            "interlock.tripped",
            {"kind": trip.kind, "device": trip.device, "message": trip.message},
            experiment_id=exp_id,
        )

    async def pause_for(self, reason: str) -> None:
        """Pause the campaign now with ``reason`` (safe state recorded), unless it is already
        stopping or aborting, which win over a pause."""
        if self.state not in (S.RUNNING, S.PAUSING):
            return
        if self.state is S.RUNNING:
            await self._transition(S.PAUSING, reason)
        await self._enter_paused(reason)

    @property
    def halted(self) -> bool:
        """True once the running attempt is being cancelled: no further step may start."""
        return self._halted

    async def run_step(self, step: Step) -> None:
        """Send one step to the lab (refused once the attempt is halted)."""
        if self._halted:
            raise asyncio.CancelledError
        await self._do(step)

    async def sleep_unless_woken(self, delay_s: float) -> None:
        """Sleep ``delay_s`` clock seconds; a pause, stop or abort request ends it early."""
        if delay_s <= 0:
            return
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(delay_s))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancel_all((sleeper, waker))

    async def attempt(
        self, exp_id: int, index: int, body: Callable[[], Coroutine[Any, Any, Outcome]]
    ) -> Outcome:
        """Run ``body`` (e.g. a scale-up segment) with the interlock watcher beside it."""
        return await self._attempt(exp_id, index, None, body=body)

    async def shim_if_due(self, exp_id: int, index: int) -> None:
        """Shim the NMR first when the platform's policy says so (``fluidics.nmr.shim``).
        A shim that fails raises like any device error: the experiment is interrupted,
        the lab made safe, and after the operator resumes the shim and then the
        experiment are tried again."""
        if self._shim is None:
            return
        reason = self._shim.due(self.clock.now())
        if reason is None:
            return
        policy = self._shim.policy
        self.progress.step = f"shimming the NMR ({policy.method})"
        await self.publish(
            "nmr.shim",
            {"index": index, "reason": reason, "method": policy.method,
             "sample_reference_ppm": policy.sample_reference},
            experiment_id=exp_id,
        )  # fmt: skip
        try:
            result = await self.lab.nmr.shim(policy.method,
                                             sample_reference_ppm=policy.sample_reference)
        except BaseException:
            self._shim.failed(reason)
            raise
        await self.publish(
            "nmr.shimmed",
            {"index": index, "ok": result.ok, "line_width_hz": result.line_width_hz},
            experiment_id=exp_id,
        )
        if result.ok:
            self._shim.done(self.clock.now())
        else:
            self._shim.failed(reason)
            raise InterlockTrip(
                "nmr", f"{policy.method} finished but the spectrometer is not ready ("
                + ", ".join(f"{k} {v}" for k, v in result.details.items()) + ")",
                device=self.lab.nmr_name)  # fmt: skip

    async def acquire(self, exp_id: int, index: int, step: Acquire) -> Acquisition:
        """Acquire; an NMR error is retried ``remeasure`` times before it trips."""
        attempts = 1 + self.policy.remeasure
        for attempt in range(1, attempts + 1):
            try:
                return await self.lab.nmr.acquire(
                    step.protocol,
                    dict(step.options),
                    sample=f"campaign{self.campaign_id}-exp{index}",
                )
            except DeviceError as exc:
                await self.publish(
                    "nmr.error",
                    {"index": index, "attempt": attempt, "error": str(exc)},
                    experiment_id=exp_id,
                )
                if attempt == attempts:
                    raise InterlockTrip("nmr", str(exc), device=self.lab.nmr_name) from exc
        raise AssertionError("unreachable")

    async def analyze(
        self, exp_id: int, plan: ExperimentPlan, acquisition: Acquisition
    ) -> AnalysisResult:
        """Archive the spectrum, analyse it, store the measurement, then publish it."""
        config = analysis_config(self.protocol, plan.recipe)
        folder = await asyncio.to_thread(self._archive, exp_id, acquisition.data_folder)
        result = await asyncio.to_thread(
            analyze_folder, folder, config, flow_rate_ml_min=plan.flow_ml_min
        )
        row_id = await asyncio.to_thread(self.records.store_measurement, exp_id, result, folder)
        warning = self._shim.observe(result) if self._shim is not None else None
        await self.publish(
            "measurement",
            {
                "measurement_id": row_id,
                "status": result.status,
                "yield": result.yield_percent,
                "conversion": result.conversion_percent,
                "throughput": result.throughput_mmol_h,
                "reasons": list(result.reasons),
                "folder": str(folder),
                "instrument_folder": str(acquisition.data_folder),
            },
            experiment_id=exp_id,
        )
        if warning is not None:
            await self.publish("nmr.shim_warning", {"message": warning}, experiment_id=exp_id)
        return result

    async def record_safe_state(self, report: dict[str, Any], where: str) -> None:
        """Publish what safe state did. A storage failure here is logged, not raised: it is
        called on the way out of a failure (the database may be what failed), and the lab
        is already safe."""
        try:
            await self.publish("safe_state", {"where": where, **report})
        except Exception as exc:
            if not is_storage_failure(exc):
                raise
            log.error(
                "campaign %s: safe state at %s could not be recorded (%s): %s",
                self.campaign_id, where, storage_error(self.db, exc), report,
            )  # fmt: skip

    # -- one experiment -----------------------------------------------------------------------
    async def _run_experiment(self, exp_id: int, *, resumed: bool = False) -> None:
        """Run one experiment; ``resumed``: one found running on resume with its
        measurement committed, which runs only its steps after the analysis."""
        if resumed:
            conditions, index, stored = await asyncio.to_thread(
                self.records.resumed_experiment, exp_id
            )
            measured: Outcome | None = stored
        else:
            conditions, index = await asyncio.to_thread(self.records.conditions_of, exp_id)
            measured = None
        with log_context(experiment_id=exp_id):
            try:
                plan = plan_experiment(self.protocol, self.platform, conditions)
            except InfeasibleConditions as exc:
                await self._close_experiment(exp_id, measured or Outcome("failed", str(exc)), None)
                return
            if measured is None:
                if not await self._start_experiment(exp_id, index, conditions, plan):
                    return
                after = 0
            else:
                after = 1 + next(i for i, s in enumerate(plan.steps) if isinstance(s, Analyze))
                await self.publish(
                    "experiment.resumed",
                    {
                        "index": index,
                        "measured": measured.kind,
                        "steps_left": [s.to_dict() for s in plan.steps[after:]],
                    },
                    experiment_id=exp_id,
                )
            self.progress.experiment_id, self.progress.experiment_index = exp_id, index
            outcome = measured or Outcome("interrupted", "engine stopped")
            try:
                if measured is None or self.state is not S.ABORTING:
                    outcome = await self._attempt(
                        exp_id, index, plan, after=after, measured=measured
                    )
            finally:
                # Whatever happened (cancellation included), the lab ends safe.
                report = await self.lab.safe_state()
                if not report.ok:
                    await self.record_safe_state(report.to_dict(), "experiment end")
                await uncancellable(self._close_experiment(exp_id, outcome, plan))

    async def _start_experiment(
        self, exp_id: int, index: int, conditions: dict[str, Any], plan: ExperimentPlan
    ) -> bool:
        """Mark it running and announce it; False (and paused) when a stock runs short."""
        shortage = await asyncio.to_thread(self.records.shortage, plan)
        if shortage:
            await self.publish("inventory.low", {"message": shortage}, experiment_id=exp_id)
            await self.pause_for(shortage)
            return False
        assert self.optimizer is not None
        remaining = self.protocol.optimizer.budget - self.optimizer.n_experiments
        await asyncio.to_thread(
            self.records.mark_running, exp_id, plan, remaining, self.clock.now()
        )
        await self.publish(
            "experiment.running",
            {
                "index": index,
                "conditions": conditions,
                "pump_flows_ml_min": plan.recipe.pump_flows_ml_min,
                "use_ml": plan.use_ml,
                "steps": [s.to_dict() for s in plan.steps],
            },
            experiment_id=exp_id,
        )
        return True

    async def _enter_paused(self, reason: str) -> None:
        if self.state is S.PAUSED:
            return
        if self.state not in (S.RUNNING, S.PAUSING):
            return  # stopping/aborting win over a pause
        await self._transition(S.PAUSED, reason)
        report = await self.lab.safe_state(temperature=True)
        await self.record_safe_state(report.to_dict(), "paused")

    async def _attempt(
        self,
        exp_id: int,
        index: int,
        plan: ExperimentPlan | None,
        *,
        body: Callable[[], Coroutine[Any, Any, Outcome]] | None = None,
        after: int = 0,
        measured: Outcome | None = None,
    ) -> Outcome:
        """Run the steps (after the first ``after``; or ``body``, e.g. a scale-up segment)
        with the interlock watcher beside them; the first to finish wins. Once the spectrum
        is analysed (or with ``measured``, its stored outcome) an interruption keeps it: the
        experiment ends with its measurement, the trip attached."""
        self._halted = False
        self._measured = measured
        try:
            outcome = await self._race(exp_id, index, plan, body, after)
        finally:
            kept, self._measured = self._measured, None
        if kept is None or outcome is kept:
            return outcome
        # interrupted (or a refused setpoint) after the measurement: it stands, and what
        # stopped the rest is reported as a trip, which pauses the campaign when it calls
        trip = outcome.trip
        if trip is None and outcome.kind == "failed":
            trip = InterlockTrip("after_measurement", outcome.reason)
        return replace(kept, trip=trip)

    async def _race(
        self,
        exp_id: int,
        index: int,
        plan: ExperimentPlan | None,
        body: Callable[[], Coroutine[Any, Any, Outcome]] | None,
        after: int,
    ) -> Outcome:
        if body is None:
            assert plan is not None
            work = self._execute(exp_id, index, plan, after)
        else:
            work = body()
        steps = asyncio.create_task(work, name="steps")
        watcher = asyncio.create_task(self._watch(), name="interlocks")
        interrupt = asyncio.create_task(self._interrupt.wait(), name="interrupt")
        try:
            await asyncio.wait({steps, watcher, interrupt}, return_when=asyncio.FIRST_COMPLETED)
            if steps.done():
                return _outcome_of(steps)
            if watcher.done():
                exc = watcher.exception()
                trip = (
                    exc
                    if isinstance(exc, InterlockTrip)
                    else InterlockTrip("watcher", f"interlock watcher failed: {exc!r}")
                )
                return Outcome("interrupted", str(trip), trip=trip)
            if self.state is S.ABORTING:
                return Outcome("interrupted", f"aborted: {self.reason}")
            return Outcome("interrupted", f"paused: {self.reason}")
        finally:
            self._halted = True  # no further step starts, whatever a cancellation does
            await _cancel_all((steps, watcher, interrupt))

    async def _execute(
        self, exp_id: int, index: int, plan: ExperimentPlan, after: int = 0
    ) -> Outcome:
        """The plan's steps after the first ``after`` (a resumed experiment's are the ones
        after its stored analysis; its outcome is that analysis)."""
        acquisition: Acquisition | None = None
        outcome = self._measured or Outcome("failed", "the plan has no Analyze step")
        group_end = 0
        # When the last run of pump steps was sent: the wait after it counts from then, not
        # from when the drivers finished (their round trips are seconds of simulated time at
        # x100 and more at x1000, which stretched a slug and pushed it past the cell).
        flow_t0: float | None = None
        if after == 0:
            await self.shim_if_due(exp_id, index)
        for number, step in enumerate(plan.steps, 1):
            if self._halted:
                raise asyncio.CancelledError
            if number <= after:
                continue  # done before the resume
            self.progress.step = describe(step)
            if number <= group_end:
                continue  # announced and sent with its group
            if isinstance(step, SetFlow | StartPump | StopPump):
                # A run of pump steps: every step announced (committed) first, then the
                # commands sent together so the stocks start and stop as one.
                group_end = pump_group(plan.steps, number - 1)
                group = plan.steps[number - 1 : group_end]
                await self._announce(exp_id, index, number, group)
                flow_t0 = self.clock.now()
                await self._do_group(group)
                continue
            await self._announce(exp_id, index, number, [step])
            if isinstance(step, Wait) and pump_group(plan.steps, number) > number:
                # A wait that ends in pump steps (a slug reaching the NMR cell): they
                # are announced before the wait, so the commands leave the moment it ends
                # (committing the events afterwards took tens of simulated seconds at x1000,
                # which moved a fast slug past the cell).
                group_end = pump_group(plan.steps, number)
                group = plan.steps[number:group_end]
                await self._announce(exp_id, index, number + 1, group)
                await self._sleep_since(step, flow_t0)
                if self._halted:
                    raise asyncio.CancelledError
                self.progress.step = describe(group[0])
                flow_t0 = self.clock.now()
                await self._do_group(group)
                continue
            if isinstance(step, Wait):
                await self._sleep_since(step, flow_t0)
                flow_t0 = None
            elif isinstance(step, Acquire):
                acquisition = await self.acquire(exp_id, index, step)
            elif isinstance(step, Analyze):
                assert acquisition is not None, "Analyze needs an Acquire before it"
                outcome = await self._measure(exp_id, index, plan, acquisition)
                self._measured = outcome
            else:
                await self._do(step)
        return outcome

    async def _measure(
        self, exp_id: int, index: int, plan: ExperimentPlan, acquisition: Acquisition
    ) -> Outcome:
        """Analyse the spectrum; a rejected one is acquired again ``remeasure`` times."""
        result = await self.analyze(exp_id, plan, acquisition)
        for _ in range(self.policy.remeasure):
            if result.status != "rejected":
                break
            await self.publish(
                "retry.remeasure",
                {"index": index, "reasons": result.reasons},
                experiment_id=exp_id,
            )
            acquire = next(s for s in plan.steps if isinstance(s, Acquire))
            acquisition = await self.acquire(exp_id, index, acquire)
            result = await self.analyze(exp_id, plan, acquisition)
        if result.status == "rejected":
            return Outcome("rejected", "; ".join(result.reasons), result)
        return Outcome("done", result=result)

    async def _announce(
        self, exp_id: int, index: int, number: int, steps: list[Step] | tuple[Step, ...]
    ) -> None:
        """Publish (commit) the ``step`` events of ``steps``, numbered from ``number``."""
        for offset, step in enumerate(steps):
            await self.publish(
                "step",
                {"index": index, "number": number + offset, **step.to_dict()},
                experiment_id=exp_id,
            )

    async def _sleep_since(self, step: Wait, start: float | None) -> None:
        """The wait of ``step``, counted from ``start`` (simulated s) when given."""
        elapsed = 0.0 if start is None else max(0.0, self.clock.now() - start)
        await self.clock.sleep(max(0.0, step.seconds - elapsed))

    async def _do_group(self, group: list[Step] | tuple[Step, ...]) -> None:
        """Pump steps at once: each pump's own steps in order, the pumps in parallel."""
        by_pump: dict[str, list[Step]] = {}
        for step in group:
            by_pump.setdefault(getattr(step, "pump", ""), []).append(step)

        async def in_order(steps: list[Step]) -> None:
            for step in steps:
                await self._do(step)

        await asyncio.gather(*(in_order(steps) for steps in by_pump.values()))

    async def _do(self, step: Step) -> None:
        lab = self.lab
        match step:
            case SetFlow(pump=p, ml_min=q):
                await lab.pump(p).set_flow_rate(q)
            case StartPump(pump=p):
                await lab.pump(p).start()
            case StopPump(pump=p):
                await lab.pump(p).stop()
            case SetValve(valve=v, position=pos):
                await lab.valve(v).set_position(pos)
            case SetTemperature(celsius=c):
                controller = self._required(lab.temperature, "temperature controller", step)
                await controller.set_setpoint(c)
                await controller.run()
            case WaitTemperature(celsius=c, tolerance=tol, timeout=timeout):
                controller = self._required(lab.temperature, "temperature controller", step)
                await self._wait_temperature(controller, c, tol, timeout)
            case SetLight(percent=x):
                light = self._required(lab.light, "light source", step)
                await light.set_intensity(x)
                await light.light_on()
            case LightOff():
                await self._required(lab.light, "light source", step).light_off()
            case Wait(seconds=s):
                await self.clock.sleep(s)
            case _:
                raise TypeError(f"unknown step {step!r}")

    def _required(self, device: T | None, what: str, step: Step) -> T:
        """The device a step needs. The checks refuse a protocol whose steps need a device
        the platform lacks, so a missing one here is a lab connected without it: the step
        trips like a device that cannot be reached, never skipped."""
        if device is None:
            raise InterlockTrip(
                "configuration",
                f"{describe(step)} needs the {what} of {self.lab.reactor_name}, which the "
                "connected lab does not have",
                device=self.lab.reactor_name,
            )
        return device

    async def _wait_temperature(
        self, controller: TemperatureController, celsius: float, tolerance: float, limit_s: float
    ) -> None:
        start = self.clock.now()
        while not self._halted:
            temperature = await controller.get_temperature()
            if abs(temperature - celsius) <= tolerance:
                return
            if self.clock.now() - start > limit_s:
                raise InterlockTrip(
                    "temperature",
                    f"reactor at {temperature:.1f} degC did not reach {celsius:.1f} +/- "
                    f"{tolerance:g} degC within {limit_s:.0f} s",
                    device=self.lab.reactor_name,
                )
            await self._poll_sleep(2.0)

    async def _poll_sleep(self, simulated_s: float) -> None:
        await asyncio.sleep(max(self.clock.wall_seconds(simulated_s), self.policy.min_poll_wall_s))

    def _archive(self, exp_id: int, source: Path) -> Path:
        """Copy a spectrum's raw data into robochem's data directory (the instrument's own
        folder may be cleaned, moved or lost); the copy is what is analysed and recorded."""
        source = Path(source)
        target_dir = self.spectra_dir / f"experiment-{exp_id}"
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            n = sum(1 for _ in target_dir.iterdir()) + 1
            target = target_dir / f"{n:02d}-{source.name}"
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        except FileNotFoundError:
            return source  # no data at all: the analysis rejects it and says so
        except OSError as exc:
            raise StorageError(
                str(self.spectra_dir), f"cannot copy the spectrum {source} there: {exc}"
            ) from exc
        return target

    # -- interlocks ---------------------------------------------------------------------------
    async def _watch(self) -> None:
        """Poll the lab until a trip; raises :class:`InterlockTrip`."""
        while not self._halted:
            await self._poll_sleep(self.policy.poll_s)
            await check_interlocks(self.lab, self.protocol, self.platform)

    # -- closing an experiment ----------------------------------------------------------------
    async def _close_experiment(
        self, exp_id: int, outcome: Outcome, plan: ExperimentPlan | None
    ) -> None:
        """One transaction: status, inventory, optimiser, repeat; then events; then a pause
        when the outcome calls for one."""
        if outcome.trip is not None:
            await self.publish_trip(outcome.trip, exp_id)
        assert self.optimizer is not None
        summary = await asyncio.to_thread(
            self.records.commit_outcome, exp_id, outcome, plan,
            optimizer=self.optimizer, policy=self.policy, aborting=self.state is S.ABORTING,
        )  # fmt: skip
        await self.publish(f"experiment.{summary['status']}", summary, experiment_id=exp_id)
        self.progress.done = summary["told"]
        pause_reason = self._pause_reason(outcome, summary)
        if pause_reason is not None:
            await self.pause_for(pause_reason)

    def _pause_reason(self, outcome: Outcome, summary: dict[str, Any]) -> str | None:
        """Why an experiment's end pauses the campaign, or None."""
        if outcome.trip is not None:
            return f"interlock {outcome.trip}"
        if outcome.kind == "failed" and outcome.reason.startswith("setpoint refused"):
            return f"experiment {summary['index']} failed: {outcome.reason}"
        if (
            outcome.kind == "rejected"
            and summary.get("repeat") is None
            and self.policy.on_rejected == "pause"
        ):
            return (
                f"experiment {summary['index']}: spectrum rejected after re-measuring and "
                f"repeating: {outcome.reason}"
            )
        if outcome.kind == "interrupted" and self.state is S.PAUSING:
            return self.reason
        return None


def _outcome_of(steps: asyncio.Task[Outcome]) -> Outcome:
    """How a finished steps task ended the attempt."""
    try:
        return steps.result()
    except InterlockTrip as trip:
        return Outcome("interrupted", str(trip), trip=trip)
    except SetpointRejected as exc:
        return Outcome("failed", f"setpoint refused: {exc}")
    except DeviceError as exc:
        trip = InterlockTrip(fault_kind(exc), str(exc), device=exc.device)
        return Outcome("interrupted", str(trip), trip=trip)


async def _cancel_all(tasks: tuple[asyncio.Task[Any], ...]) -> None:
    """Cancel ``tasks`` and wait until they have ended. The cancellation is sent again every
    half second: on Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives
    as its inner awaitable completes (bpo-42130), which would leave a polling loop running and
    its awaiter waiting forever."""
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.5)
        for task in pending:
            task.cancel()
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" warnings
