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

See docs/engine.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import hashlib
import logging
import math
import shutil
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from robochem.analysis import AnalysisConfig, AnalysisResult, analyze_folder
from robochem.clock import Clock, get_clock
from robochem.drivers.base import Acquisition
from robochem.drivers.errors import DeviceError, DeviceFault, SetpointRejected
from robochem.events import EventBus
from robochem.logs import log_context
from robochem.optimizer import Optimizer
from robochem.storage.db import Database, StorageError, is_storage_failure, storage_error
from robochem.storage.locks import campaign_lock
from robochem.storage.models import (
    Campaign,
    CampaignStatus,
    Experiment,
    ExperimentStatus,
    Measurement,
)

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
    timing_model,
)
from .lab import Lab, uncancellable
from .shim import ShimSchedule

log = logging.getLogger("robochem.protocols.runtime.engine")

__all__ = [
    "TRANSITIONS",
    "Engine",
    "EngineState",
    "IllegalTransition",
    "InterlockTrip",
    "Policy",
    "analysis_config",
    "create_campaign",
    "objective_values",
]

SOURCE = "engine"


class EngineState(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    STOPPING = "stopping"
    ABORTING = "aborting"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"


S = EngineState
#: Allowed transitions; anything else raises :class:`IllegalTransition`.
TRANSITIONS: dict[EngineState, frozenset[EngineState]] = {
    S.IDLE: frozenset({S.RUNNING, S.ABORTING, S.FAILED}),
    S.RUNNING: frozenset({S.PAUSING, S.PAUSED, S.STOPPING, S.ABORTING, S.COMPLETED, S.FAILED}),
    S.PAUSING: frozenset({S.RUNNING, S.PAUSED, S.STOPPING, S.ABORTING, S.COMPLETED, S.FAILED}),
    S.PAUSED: frozenset({S.RUNNING, S.STOPPING, S.ABORTING, S.FAILED}),
    S.STOPPING: frozenset({S.COMPLETED, S.ABORTING, S.FAILED}),
    S.ABORTING: frozenset({S.ABORTED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.ABORTED: frozenset(),
    S.FAILED: frozenset(),
}
TERMINAL = frozenset({S.COMPLETED, S.ABORTED, S.FAILED})

#: Engine state -> campaign status stored in the database (pausing is still running).
DB_STATUS: dict[EngineState, CampaignStatus] = {
    S.IDLE: CampaignStatus.CREATED,
    S.RUNNING: CampaignStatus.RUNNING,
    S.PAUSING: CampaignStatus.RUNNING,
    S.PAUSED: CampaignStatus.PAUSED,
    S.STOPPING: CampaignStatus.STOPPING,
    S.ABORTING: CampaignStatus.ABORTING,
    S.COMPLETED: CampaignStatus.COMPLETED,
    S.ABORTED: CampaignStatus.ABORTED,
    S.FAILED: CampaignStatus.FAILED,
}


class IllegalTransition(RuntimeError):
    def __init__(self, current: EngineState, target: EngineState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final state)"
        super().__init__(f"cannot go from {current} to {target}; allowed: {allowed}")
        self.current = current
        self.target = target


class InterlockTrip(Exception):
    """A watched quantity left its allowed range, or a device reported a fault."""

    def __init__(self, kind: str, message: str, *, device: str | None = None) -> None:
        self.kind = kind
        self.device = device
        self.message = message
        super().__init__(f"{kind}: {message}")


@dataclass(frozen=True)
class Policy:
    """Recovery policy and interlock settings."""

    #: extra acquisitions after a rejected spectrum or an NMR error (sample still in the cell)
    remeasure: int = 1
    #: repeats of an experiment whose spectrum stays rejected
    repeat: int = 1
    #: when re-measuring and repeating did not help: "pause" the campaign for the operator,
    #: or "fail" the experiment (told to the optimiser as a failure, event recorded) and go on
    on_rejected: str = "pause"
    #: simulated seconds between interlock polls (never more often than ``min_poll_wall_s``)
    poll_s: float = 1.0
    min_poll_wall_s: float = 0.02

    def __post_init__(self) -> None:
        if self.on_rejected not in ("pause", "fail"):
            raise ValueError(f"on_rejected must be 'pause' or 'fail', got {self.on_rejected!r}")
        if self.remeasure < 0 or self.repeat < 0:
            raise ValueError("remeasure and repeat must be >= 0")


def objective_values(protocol: Protocol, result: AnalysisResult | None) -> dict[str, Any] | None:
    """Objective name -> measured value for the optimiser; None when the spectrum failed."""
    if result is None or not result.ok_for_optimizer:
        return None
    measures = {
        "yield": result.yield_percent,
        "conversion": result.conversion_percent,
        "throughput": result.throughput_mmol_h,
        "selectivity": None,  # integration note: the analysis does not report it yet
    }
    return {name: measures.get(obj.measure) for name, obj in protocol.objectives.items()}


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


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Outcome:
    """How one attempt at an experiment ended."""

    kind: str  # done | rejected | interrupted | failed
    reason: str = ""
    result: AnalysisResult | None = None
    trip: InterlockTrip | None = None


@dataclass
class Progress:
    """Live progress, for the CLI and the dashboard (``CampaignProgress``)."""

    experiment_id: int | None = None
    experiment_index: int | None = None
    step: str | None = None
    step_number: int = 0
    steps_total: int = 0
    done: int = 0
    planned: int = 0
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
        self._measured: _Outcome | None = None
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
        await self._publish("campaign.state", {"from": previous, "to": target, "reason": reason})
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
                campaign.started_at = _utcnow()
            if target in TERMINAL:
                campaign.ended_at = _utcnow()
        if target in TERMINAL:
            self.db.verify()  # an end is reported only once it is stored where it belongs

    async def _publish(
        self, kind: str, payload: dict[str, Any], *, experiment_id: int | None = None
    ) -> None:
        await self.bus.publish(
            SOURCE, kind, payload, campaign_id=self.campaign_id, experiment_id=experiment_id
        )
        for listener in list(self.listeners):
            with contextlib.suppress(Exception):
                listener(kind, payload)

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
        names = {*self.protocol.stocks, self.protocol.solvent.name}
        if stock not in names:
            raise KeyError(f"unknown stock {stock!r}; stocks: {', '.join(sorted(names))}")
        if not ml >= 0:
            raise ValueError(f"volume must be >= 0 mL, got {ml!r}")
        with self.db.session() as session:
            campaign = session.get(Campaign, self.campaign_id)
            assert campaign is not None
            summary = dict(campaign.summary or {})
            inventory = dict(summary.get("inventory") or self._initial_inventory())
            inventory[stock] = float(ml)
            summary["inventory"] = inventory
            campaign.summary = summary

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
            except Exception as exc:
                failure = self._failure(exc)
            finally:
                report = await self.lab.safe_state(temperature=True)
                if not isinstance(failure, StorageError):
                    await self._record_safe_state(report.to_dict(), "campaign end")
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
        resumed = await asyncio.to_thread(self._recover)
        self.optimizer = await asyncio.to_thread(self._rebuild_optimizer)
        if self._shim is not None:
            shim = await asyncio.to_thread(self._last_shim)
            if shim is not None:
                self._shim.restore(*shim)
                resumed["shim_kept"] = {"shimmed_at": shim[0], "line_width_hz": shim[1]}
        if resumed:
            await self._publish("campaign.resumed", resumed)
        await self._transition(S.RUNNING, "resumed" if status != CampaignStatus.CREATED else None)
        if status == CampaignStatus.ABORTING:
            await self._transition(S.ABORTING, "abort was in progress when the engine stopped")
        elif status == CampaignStatus.STOPPING:
            await self._transition(S.STOPPING, "stop was in progress when the engine stopped")

    def _recover(self) -> dict[str, Any]:
        """Mark experiments left running as interrupted and queue their repeats (one
        transaction); set up the inventory on the first start."""
        with self.db.session() as session:
            campaign = session.get(Campaign, self.campaign_id)
            assert campaign is not None
            summary = dict(campaign.summary or {})
            if "inventory" not in summary:
                summary["inventory"] = self._initial_inventory()
            running = session.scalars(
                select(Experiment)
                .where(Experiment.campaign_id == self.campaign_id)
                .where(Experiment.status == ExperimentStatus.RUNNING)
                .order_by(Experiment.index)
            ).all()
            repeated = []
            measured = []
            inventory = dict(summary["inventory"])
            for exp in running:
                if self.protocol.scale_up is None and exp.measurements:
                    # its spectrum is stored: finished from it, never measured again
                    measured.append(exp.index)
                    self._resume_measured.append(exp.id)
                    continue
                exp.status = ExperimentStatus.INTERRUPTED
                exp.status_reason = "the engine stopped while it ran (crash or kill); repeated"
                exp.ended_at = _utcnow()
                self._consume(inventory, exp.conditions)
                if self._initial_status == CampaignStatus.ABORTING:
                    continue  # the campaign ends: nothing is repeated
                repeat = self._new_experiment(session, exp.conditions, repeat_of=exp.id)
                repeated.append({"interrupted": exp.index, "repeat": repeat.index})
            summary["inventory"] = inventory
            campaign.summary = summary
        out: dict[str, Any] = {"repeated": repeated} if repeated else {}
        if measured:
            out["finished_from_measurement"] = measured
        return out

    def _last_shim(self) -> tuple[float, float | None] | None:
        """(clock time, the standard's line width since) of this campaign's last good shim,
        from the stored events; None if it never shimmed. Start-up after a crash keeps
        what is still valid rather than shimming again on every resume."""
        from robochem.analysis.result import standard_line_width_hz
        from robochem.storage.models import Event as EventRow

        with self.db.session() as session:
            shims = session.scalars(
                select(EventRow)
                .where(EventRow.campaign_id == self.campaign_id)
                .where(EventRow.kind == "nmr.shimmed")
                .order_by(EventRow.id.desc())
            )
            shim = next((e for e in shims if (e.payload or {}).get("ok")), None)
            if shim is None:
                return None
            newest = session.scalars(
                select(EventRow)
                .where(EventRow.campaign_id == self.campaign_id)
                .where(EventRow.kind == "measurement")
                .where(EventRow.id > shim.id)
                .order_by(EventRow.id.desc())
                .limit(1)
            ).first()
            width = None
            if newest is not None:
                row = session.get(Measurement, (newest.payload or {}).get("measurement_id"))
                width = standard_line_width_hz(row.result) if row is not None else None
            return shim.time.timestamp(), width

    def _initial_inventory(self) -> dict[str, float]:
        """Stock volumes on hand, minus priming each pump's dead volume once."""
        pumps = self.platform.fluidics.pumps
        out = {
            name: s.available.value - pumps[s.pump].dead_volume.value
            for name, s in self.protocol.stocks.items()
        }
        solvent = self.protocol.solvent
        out[solvent.name] = solvent.available.value - pumps[solvent.pump].dead_volume.value
        return out

    def _consume(self, inventory: dict[str, float], conditions: Mapping[str, Any]) -> None:
        try:
            plan = plan_experiment(self.protocol, self.platform, conditions)
        except (InfeasibleConditions, KeyError, ValueError):
            return  # nothing was pumped for conditions that cannot run
        for stock, ml in plan.use_ml.items():
            inventory[stock] = inventory.get(stock, 0.0) - ml

    def _new_experiment(
        self, session: Any, conditions: Mapping[str, Any], *, repeat_of: int | None = None
    ) -> Experiment:
        last = session.scalar(
            select(func.max(Experiment.index)).where(Experiment.campaign_id == self.campaign_id)
        )
        exp = Experiment(
            campaign_id=self.campaign_id,
            index=0 if last is None else last + 1,
            conditions=dict(conditions),
            status=ExperimentStatus.QUEUED,
            repeat_of_id=repeat_of,
        )
        session.add(exp)
        session.flush()
        return exp

    # -- optimiser ----------------------------------------------------------------------------
    def _history(self, session: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(told observations in index order, conditions still to run)."""
        rows = session.scalars(
            select(Experiment)
            .where(Experiment.campaign_id == self.campaign_id)
            .order_by(Experiment.index)
        ).all()
        superseded = {e.repeat_of_id for e in rows if e.repeat_of_id is not None}
        told: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        for exp in rows:
            if exp.status == ExperimentStatus.DONE:
                m = _latest(exp)
                result = objective_values(self.protocol, _result_of(m)) if m else None
                told.append({"point": dict(exp.conditions), "result": result})
            elif exp.status == ExperimentStatus.FAILED and exp.id not in superseded:
                told.append({"point": dict(exp.conditions), "result": None})
            elif exp.status in (ExperimentStatus.QUEUED, ExperimentStatus.RUNNING):
                pending.append(dict(exp.conditions))
        return told, pending

    def _rebuild_optimizer(self) -> Optimizer:
        """From the stored experiments (the source of truth), keeping only the ask counters
        of the stored state so that the next suggestions are the ones a run without the
        crash would have made."""
        spec = self.protocol.to_optimizer_spec()
        fresh = Optimizer.from_spec(spec)
        with self.db.session() as session:
            campaign = session.get(Campaign, self.campaign_id)
            assert campaign is not None
            told, pending = self._history(session)
            stored = campaign.optimizer_state or {}
            n_asked = (
                session.scalar(
                    select(func.count(Experiment.id))
                    .where(Experiment.campaign_id == self.campaign_id)
                    .where(Experiment.repeat_of_id.is_(None))
                )
                or 0
            )
        batch = self.protocol.optimizer.batch_size
        state = {
            "format": fresh.state()["format"],
            "spec": fresh.spec(),
            "observations": [{**t, "source": "campaign"} for t in told],
            "pending": pending,
            "asks": int(stored.get("asks", math.ceil(n_asked / batch))),
            "design_served": int(stored.get("design_served", min(fresh.n_initial, n_asked))),
        }
        return Optimizer.from_state(state)

    # -- main loop ----------------------------------------------------------------------------
    async def _loop(self) -> None:
        if self.protocol.scale_up is not None:
            from .scaleup import ScaleUpRunner

            await ScaleUpRunner(self).loop()
            return
        for exp_id in self._resume_measured:
            await self._run_experiment(exp_id, resumed=True)
        while True:
            await self._checkpoint()
            if self.state in (S.STOPPING, S.ABORTING, S.PAUSED):
                return
            exp_id = await self._next_experiment()
            if exp_id is None:
                return
            await self._run_experiment(exp_id)

    async def _checkpoint(self) -> None:
        """Where a pause takes effect: between experiments."""
        if self.state is S.PAUSING:
            await self._enter_paused(self.reason or "pause requested")
        while self.state is S.PAUSED:
            if self.exit_on_pause:
                return
            self._wake.clear()
            await self._wake.wait()
        self._interrupt.clear()

    async def _enter_paused(self, reason: str) -> None:
        if self.state is S.PAUSED:
            return
        if self.state not in (S.RUNNING, S.PAUSING):
            return  # stopping/aborting win over a pause
        await self._transition(S.PAUSED, reason)
        report = await self.lab.safe_state(temperature=True)
        await self._record_safe_state(report.to_dict(), "paused")

    async def _next_experiment(self) -> int | None:
        """The next queued experiment (repeats first), else new ones from the optimiser."""
        queued = await asyncio.to_thread(self._first_queued)
        if queued is not None:
            return queued
        assert self.optimizer is not None
        stop, why = self.optimizer.should_stop()
        if stop:
            self.reason = why
            await self._publish("optimizer.stop", {"reason": why})
            return None
        # The last batch is cut to what the budget leaves: a budget of 15 in batches of 2 runs
        # 15 experiments, not 16 (the reagent estimate counts on it).
        left = self.protocol.optimizer.budget - self.optimizer.n_experiments
        size = max(1, min(self.protocol.optimizer.batch_size, left))
        points = await asyncio.to_thread(self.optimizer.ask, size)
        ids = await asyncio.to_thread(self._store_asked, points)
        await self._publish("optimizer.ask", {"points": points, "experiment_ids": ids})
        return ids[0]

    def _first_queued(self) -> int | None:
        with self.db.session() as session:
            return session.scalar(
                select(Experiment.id)
                .where(Experiment.campaign_id == self.campaign_id)
                .where(Experiment.status == ExperimentStatus.QUEUED)
                .order_by(Experiment.index)
                .limit(1)
            )

    def _store_asked(self, points: list[dict[str, Any]]) -> list[int]:
        assert self.optimizer is not None
        with self.db.session() as session:
            ids = [self._new_experiment(session, p).id for p in points]
            campaign = session.get(Campaign, self.campaign_id)
            assert campaign is not None
            campaign.optimizer_state = self.optimizer.state()
        return ids

    # -- one experiment -----------------------------------------------------------------------
    async def _run_experiment(self, exp_id: int, *, resumed: bool = False) -> None:
        """Run one experiment; ``resumed``: one found running on resume with its
        measurement committed, which runs only its steps after the analysis."""
        with self.db.session() as session:
            exp = session.get(Experiment, exp_id)
            assert exp is not None
            conditions, index = dict(exp.conditions), exp.index
            measured = _stored_outcome(exp) if resumed else None
        with log_context(experiment_id=exp_id):
            try:
                plan = plan_experiment(self.protocol, self.platform, conditions)
            except InfeasibleConditions as exc:
                await self._close_experiment(exp_id, measured or _Outcome("failed", str(exc)), None)
                return
            after = 0
            if measured is None:
                shortage = await asyncio.to_thread(self._shortage, plan)
                if shortage:
                    await self._publish(
                        "inventory.low", {"message": shortage}, experiment_id=exp_id
                    )
                    if self.state is S.RUNNING:
                        await self._transition(S.PAUSING, shortage)
                    await self._enter_paused(shortage)
                    return
                await asyncio.to_thread(self._mark_running, exp_id, plan)
                await self._publish(
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
            else:
                after = 1 + next(
                    i for i, s in enumerate(plan.steps) if isinstance(s, Analyze)
                )
                await self._publish(
                    "experiment.resumed",
                    {
                        "index": index,
                        "measured": measured.kind,
                        "steps_left": [s.to_dict() for s in plan.steps[after:]],
                    },
                    experiment_id=exp_id,
                )
            self.progress.experiment_id, self.progress.experiment_index = exp_id, index
            self.progress.steps_total, self.progress.step_number = len(plan.steps), after
            outcome = measured or _Outcome("interrupted", "engine stopped")
            try:
                if measured is None or self.state is not S.ABORTING:
                    outcome = await self._attempt(
                        exp_id, index, plan, after=after, measured=measured
                    )
            finally:
                # Whatever happened (cancellation included), the lab ends safe.
                report = await self.lab.safe_state()
                if not report.ok:
                    await self._record_safe_state(report.to_dict(), "experiment end")
                await uncancellable(self._close_experiment(exp_id, outcome, plan))

    def _shortage(self, plan: ExperimentPlan) -> str | None:
        with self.db.session() as session:
            campaign = session.get(Campaign, self.campaign_id)
            assert campaign is not None
            inventory = (campaign.summary or {}).get("inventory") or {}
        short = [
            f"{stock}: {inventory.get(stock, 0.0):.3g} mL left, the next experiment needs "
            f"{need:.3g} mL"
            for stock, need in plan.use_ml.items()
            if need > 1e-9 and inventory.get(stock, 0.0) < need
        ]
        if not short:
            return None
        return "stock running low, refill and resume: " + "; ".join(short)

    def _mark_running(self, exp_id: int, plan: ExperimentPlan) -> None:
        # The dashboard reads current_step and eta from the summary (web/data.py); the eta
        # assumes every remaining experiment takes as long as this one's timing model.
        assert self.optimizer is not None
        remaining = max(1, self.protocol.optimizer.budget - self.optimizer.n_experiments)
        seconds = timing_model(plan.steps, use_ml=plan.use_ml).duration_s * remaining
        eta = dt.datetime.fromtimestamp(self.clock.now() + seconds, dt.UTC)
        with self.db.session() as session:
            exp = session.get(Experiment, exp_id)
            assert exp is not None
            exp.status = ExperimentStatus.RUNNING
            exp.started_at = _utcnow()
            campaign = session.get(Campaign, self.campaign_id)
            assert campaign is not None
            campaign.summary = {
                **(campaign.summary or {}),
                "current_experiment": exp.index,
                "current_step": f"experiment {exp.index}",
                "eta": eta.isoformat(),
            }

    async def _attempt(
        self,
        exp_id: int,
        index: int,
        plan: ExperimentPlan | None,
        *,
        body: Callable[[], Coroutine[Any, Any, _Outcome]] | None = None,
        after: int = 0,
        measured: _Outcome | None = None,
    ) -> _Outcome:
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
        body: Callable[[], Coroutine[Any, Any, _Outcome]] | None,
        after: int,
    ) -> _Outcome:
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
                try:
                    return steps.result()
                except InterlockTrip as trip:
                    return _Outcome("interrupted", str(trip), trip=trip)
                except SetpointRejected as exc:
                    return _Outcome("failed", f"setpoint refused: {exc}")
                except DeviceError as exc:
                    trip = InterlockTrip(_fault_kind(exc), str(exc), device=exc.device)
                    return _Outcome("interrupted", str(trip), trip=trip)
            if watcher.done():
                exc = watcher.exception()
                trip = (
                    exc
                    if isinstance(exc, InterlockTrip)
                    else InterlockTrip("watcher", f"interlock watcher failed: {exc!r}")
                )
                return _Outcome("interrupted", str(trip), trip=trip)
            if self.state is S.ABORTING:
                return _Outcome("interrupted", f"aborted: {self.reason}")
            return _Outcome("interrupted", f"paused: {self.reason}")
        finally:
            self._halted = True  # no further step starts, whatever a cancellation does
            await _cancel_all((steps, watcher, interrupt))

    async def _execute(
        self, exp_id: int, index: int, plan: ExperimentPlan, after: int = 0
    ) -> _Outcome:
        """The plan's steps after the first ``after`` (a resumed experiment's are the ones
        after its stored analysis; its outcome is that analysis)."""
        acquisition: Acquisition | None = None
        outcome = self._measured or _Outcome("failed", "the plan has no Analyze step")
        group_end = 0
        # When the last run of pump steps was sent: the wait after it counts from then, not
        # from when the drivers finished (their round trips are seconds of simulated time at
        # x100 and more at x1000, which stretched a slug and pushed it past the cell).
        flow_t0: float | None = None
        if after == 0:
            await self._shim_if_due(exp_id, index)
        for number, step in enumerate(plan.steps, 1):
            if self._halted:
                raise asyncio.CancelledError
            if number <= after:
                continue  # done before the resume
            self.progress.step, self.progress.step_number = describe(step), number
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
                self.progress.step, self.progress.step_number = describe(group[0]), number + 1
                flow_t0 = self.clock.now()
                await self._do_group(group)
                continue
            if isinstance(step, Wait):
                await self._sleep_since(step, flow_t0)
                flow_t0 = None
                continue
            if isinstance(step, Acquire):
                acquisition = await self._acquire(exp_id, index, step)
            elif isinstance(step, Analyze):
                assert acquisition is not None, "Analyze needs an Acquire before it"
                result = await self._analyze(exp_id, plan, acquisition)
                for _ in range(self.policy.remeasure):
                    if result.status != "rejected":
                        break
                    await self._publish(
                        "retry.remeasure",
                        {"index": index, "reasons": result.reasons},
                        experiment_id=exp_id,
                    )
                    acquire = next(s for s in plan.steps if isinstance(s, Acquire))
                    acquisition = await self._acquire(exp_id, index, acquire)
                    result = await self._analyze(exp_id, plan, acquisition)
                if result.status == "rejected":
                    outcome = _Outcome("rejected", "; ".join(result.reasons), result)
                else:
                    outcome = _Outcome("done", result=result)
                self._measured = outcome
            else:
                await self._do(step)
        return outcome

    async def _announce(
        self, exp_id: int, index: int, number: int, steps: list[Step] | tuple[Step, ...]
    ) -> None:
        """Publish (commit) the ``step`` events of ``steps``, numbered from ``number``."""
        for offset, step in enumerate(steps):
            await self._publish(
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
                controller = lab.temperature
                if controller is None:
                    raise InterlockTrip("configuration", "no temperature controller")
                await controller.set_setpoint(c)
                await controller.run()
            case WaitTemperature(celsius=c, tolerance=tol, timeout=timeout):
                await self._wait_temperature(c, tol, timeout)
            case SetLight(percent=x):
                light = lab.light
                if light is None:
                    raise InterlockTrip("configuration", "no light source")
                await light.set_intensity(x)
                await light.light_on()
            case LightOff():
                if lab.light is not None:
                    await lab.light.light_off()
            case Wait(seconds=s):
                await self.clock.sleep(s)
            case _:
                raise TypeError(f"unknown step {step!r}")

    async def _wait_temperature(self, celsius: float, tolerance: float, limit_s: float) -> None:
        controller = self.lab.temperature
        if controller is None:
            return
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

    async def _shim_if_due(self, exp_id: int, index: int) -> None:
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
        await self._publish(
            "nmr.shim",
            {"index": index, "reason": reason, "method": policy.method,
             "sample_reference_ppm": policy.sample_reference},
            experiment_id=exp_id,
        )
        try:
            result = await self.lab.nmr.shim(policy.method,
                                             sample_reference_ppm=policy.sample_reference)
        except BaseException:
            self._shim.failed(reason)
            raise
        await self._publish(
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
                device=self.lab.nmr_name)

    async def _acquire(self, exp_id: int, index: int, step: Acquire) -> Acquisition:
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
                await self._publish(
                    "nmr.error",
                    {"index": index, "attempt": attempt, "error": str(exc)},
                    experiment_id=exp_id,
                )
                if attempt == attempts:
                    raise InterlockTrip("nmr", str(exc), device=self.lab.nmr_name) from exc
        raise AssertionError("unreachable")

    async def _analyze(
        self, exp_id: int, plan: ExperimentPlan, acquisition: Acquisition
    ) -> AnalysisResult:
        config = analysis_config(self.protocol, plan.recipe)
        folder = await asyncio.to_thread(self._archive, exp_id, acquisition.data_folder)
        result = await asyncio.to_thread(
            analyze_folder, folder, config, flow_rate_ml_min=plan.flow_ml_min
        )
        row_id = await asyncio.to_thread(self._store_measurement, exp_id, result, folder)
        warning = self._shim.observe(result) if self._shim is not None else None
        await self._publish(
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
            await self._publish("nmr.shim_warning", {"message": warning}, experiment_id=exp_id)
        return result

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

    def _store_measurement(self, exp_id: int, result: AnalysisResult, folder: Path) -> int:
        data = result.to_dict(include_plot=True)
        with self.db.session() as session:
            row = Measurement(
                experiment_id=exp_id,
                yield_percent=result.yield_percent,
                conversion_percent=result.conversion_percent,
                throughput_mmol_h=result.throughput_mmol_h,
                qc_status=result.status,
                qc_reasons=list(result.reasons),
                processing=dict(data.get("processing") or {}),
                result=data,
                raw_path=str(folder),
                raw_sha256=result.source.get("sha256"),
            )
            session.add(row)
            session.flush()
            row_id = row.id
        self.db.verify()
        return row_id

    # -- interlocks ---------------------------------------------------------------------------
    async def _watch(self) -> None:
        """Poll the lab until a trip; raises :class:`InterlockTrip`."""
        while not self._halted:
            await self._poll_sleep(self.policy.poll_s)
            await self.check_interlocks()

    async def check_interlocks(self) -> None:
        """One poll of every interlock; raises :class:`InterlockTrip` on the first problem."""
        safety = self.protocol.safety
        limit = safety.max_pressure.value
        for name, pump in self.lab.pumps().items():
            try:
                status = await pump.status()
            except DeviceFault as exc:
                raise InterlockTrip(_fault_kind(exc), str(exc), device=name) from exc
            except DeviceError as exc:
                raise InterlockTrip("communication", str(exc), device=name) from exc
            device_limit = self.platform.devices[name].limits.max_pressure
            pump_limit = min(limit, device_limit.value) if device_limit is not None else limit
            if status.pressure_bar is not None and status.pressure_bar > pump_limit:
                raise InterlockTrip(
                    "overpressure",
                    f"{status.pressure_bar:.1f} bar above the limit {pump_limit:g} bar",
                    device=name,
                )
        light = self.lab.light
        if light is not None:
            try:
                lamp = await light.lamp_status()
            except DeviceError as exc:
                raise InterlockTrip("communication", str(exc), device=light.name) from exc
            if lamp.faults:
                raise InterlockTrip(
                    "lamp", f"lamp fault: {', '.join(lamp.faults)}", device=light.name
                )
        controller = self.lab.temperature
        if controller is not None:
            try:
                temperature = await controller.get_temperature()
            except DeviceError as exc:
                raise InterlockTrip("communication", str(exc), device=controller.name) from exc
            low, high = (t.value for t in safety.temperature)
            if not low <= temperature <= high:
                raise InterlockTrip(
                    "temperature",
                    f"reactor at {temperature:.1f} degC, outside the allowed "
                    f"{low:g}..{high:g} degC",
                    device=controller.name,
                )

    # -- closing an experiment ----------------------------------------------------------------
    async def _close_experiment(
        self, exp_id: int, outcome: _Outcome, plan: ExperimentPlan | None
    ) -> None:
        """One transaction: status, inventory, optimiser, repeat; then events; then a pause
        when the outcome calls for one."""
        pause_reason: str | None = None
        if outcome.trip is not None:
            await self._publish_trip(outcome.trip, exp_id)
        summary = await asyncio.to_thread(self._store_outcome, exp_id, outcome, plan)
        await self._publish(f"experiment.{summary['status']}", summary, experiment_id=exp_id)
        self.progress.done = summary["told"]
        if outcome.trip is not None:
            pause_reason = f"interlock {outcome.trip}"
        elif outcome.kind == "failed" and outcome.reason.startswith("setpoint refused"):
            pause_reason = f"experiment {summary['index']} failed: {outcome.reason}"
        elif (
            outcome.kind == "rejected"
            and summary.get("repeat") is None
            and self.policy.on_rejected == "pause"
        ):
            pause_reason = (
                f"experiment {summary['index']}: spectrum rejected after re-measuring and "
                f"repeating: {outcome.reason}"
            )
        elif outcome.kind == "interrupted" and self.state is S.PAUSING:
            pause_reason = self.reason
        if pause_reason is not None and self.state in (S.RUNNING, S.PAUSING):
            if self.state is S.RUNNING:
                await self._transition(S.PAUSING, pause_reason)
            await self._enter_paused(pause_reason)

    async def _publish_trip(self, trip: InterlockTrip, exp_id: int) -> None:
        await self._publish(
            "interlock.tripped",
            {"kind": trip.kind, "device": trip.device, "message": trip.message},
            experiment_id=exp_id,
        )

    def _store_outcome(
        self, exp_id: int, outcome: _Outcome, plan: ExperimentPlan | None
    ) -> dict[str, Any]:
        """Commit the outcome; it counts (its event is published) only once this returns:
        after the commit the database is checked to be still the one opened."""
        out = self._commit_outcome(exp_id, outcome, plan)
        self.db.verify()
        return out

    def _commit_outcome(
        self, exp_id: int, outcome: _Outcome, plan: ExperimentPlan | None
    ) -> dict[str, Any]:
        assert self.optimizer is not None
        with self.db.session() as session:
            exp = session.get(Experiment, exp_id)
            campaign = session.get(Campaign, self.campaign_id)
            assert exp is not None and campaign is not None
            summary = dict(campaign.summary or {})
            inventory = dict(summary.get("inventory") or {})
            if plan is not None and exp.status == ExperimentStatus.RUNNING:
                for stock, ml in plan.use_ml.items():
                    inventory[stock] = inventory.get(stock, 0.0) - ml
            out: dict[str, Any] = {"index": exp.index, "conditions": dict(exp.conditions)}
            tell: tuple[dict[str, Any], dict[str, Any] | None] | None = None
            repeat: Experiment | None = None
            if outcome.kind == "done":
                exp.status = ExperimentStatus.DONE
                exp.status_reason = None
                values = objective_values(self.protocol, outcome.result)
                tell = (dict(exp.conditions), values)
                out["objectives"] = values
            elif outcome.kind == "rejected":
                exp.status = ExperimentStatus.FAILED
                exp.status_reason = f"spectrum rejected: {outcome.reason}"
                if self._qc_repeats(session, exp) < self.policy.repeat:
                    repeat = self._new_experiment(session, exp.conditions, repeat_of=exp.id)
                else:
                    tell = (dict(exp.conditions), None)
            elif outcome.kind == "failed":
                exp.status = ExperimentStatus.FAILED
                exp.status_reason = outcome.reason
                tell = (dict(exp.conditions), None)
            else:
                exp.status = ExperimentStatus.INTERRUPTED
                exp.status_reason = outcome.reason
                if self.state is not S.ABORTING:
                    repeat = self._new_experiment(session, exp.conditions, repeat_of=exp.id)
            exp.ended_at = _utcnow()
            if tell is not None:
                self.optimizer.tell([tell[0]], [tell[1]])
                campaign.optimizer_state = self.optimizer.state()
            summary["inventory"] = inventory
            summary["experiments_done"] = self.optimizer.n_experiments
            summary.pop("current_experiment", None)
            summary.pop("current_step", None)
            campaign.summary = summary
            out.update(
                status=str(exp.status),
                reason=exp.status_reason,
                repeat=None if repeat is None else repeat.index,
                told=self.optimizer.n_experiments,
                inventory=inventory,
            )
            return out

    @staticmethod
    def _qc_repeats(session: Any, exp: Experiment) -> int:
        """How many earlier attempts at these conditions failed QC (the repeat chain)."""
        count = 0
        parent_id = exp.repeat_of_id
        while parent_id is not None:
            parent = session.get(Experiment, parent_id)
            if parent is None:
                break
            if parent.status == ExperimentStatus.FAILED:
                count += 1
            parent_id = parent.repeat_of_id
        return count

    async def _record_safe_state(self, report: dict[str, Any], where: str) -> None:
        with contextlib.suppress(Exception):  # the database may be what failed
            await self._publish("safe_state", {"where": where, **report})


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


def _fault_kind(exc: DeviceError) -> str:
    from robochem.drivers.errors import CommunicationError

    if isinstance(exc, CommunicationError):
        return "communication"
    if isinstance(exc, DeviceFault):
        code = (exc.code or "").lower()
        if "stall" in code:
            return "pump_stall"
        return "device_fault"
    return "device"


def _stored_outcome(exp: Experiment) -> _Outcome:
    """How an experiment's stored measurements end it: done with the newest accepted
    spectrum, else rejected with the newest one's reasons."""
    ok = _latest(exp)
    if ok is not None:
        return _Outcome("done", result=_result_of(ok))
    newest = max(exp.measurements, key=lambda m: m.id)
    return _Outcome("rejected", "; ".join(newest.qc_reasons or []), _result_of(newest))


def _latest(exp: Experiment) -> Measurement | None:
    ok = [m for m in exp.measurements if m.qc_status != "rejected"]
    return max(ok, key=lambda m: m.id) if ok else None


def _result_of(m: Measurement) -> AnalysisResult | None:
    """Enough of an AnalysisResult to compute objective values from a stored row."""
    return AnalysisResult(
        status=m.qc_status,  # type: ignore[arg-type]
        reasons=list(m.qc_reasons or []),
        yield_percent=m.yield_percent,
        yield_sd_percent=None,
        conversion_percent=m.conversion_percent,
        throughput_mmol_h=m.throughput_mmol_h,
        concentrations_M={},
        integrals={},
        snr={},
        processing={},
        software={},
        source={},
    )
