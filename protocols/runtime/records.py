"""One campaign's rows: experiments, measurements, the reagent inventory and the optimiser's
history, read and written in short transactions.

The engine and the runners it hands its loop to (scale-up, later the pipelined schedule)
use this one place for what a campaign has stored; the engine decides when to call it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from robochem.analysis import AnalysisResult
from robochem.optimizer import Optimizer
from robochem.storage.db import Database
from robochem.storage.models import (
    Campaign,
    CampaignStatus,
    Experiment,
    ExperimentStatus,
    Measurement,
)

from ..measures import objective_values
from ..model import Protocol
from ..platform import Platform
from ..steps import ExperimentPlan, InfeasibleConditions, plan_experiment, timing_model
from .states import Outcome, Policy
from .warm_start import related_observations

__all__ = ["CampaignRecords", "latest_accepted", "stored_outcome", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CampaignRecords:
    """The stored side of one campaign (every method is one transaction)."""

    def __init__(
        self, database: Database, campaign_id: int, protocol: Protocol, platform: Platform
    ) -> None:
        self.db = database
        self.campaign_id = campaign_id
        self.protocol = protocol
        self.platform = platform

    # -- experiments --------------------------------------------------------------------------
    def new_experiment(
        self, session: Any, conditions: Mapping[str, Any], *, repeat_of: int | None = None
    ) -> Experiment:
        """A queued experiment after the campaign's last one (inside ``session``)."""
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

    def first_queued(self) -> int | None:
        """The id of the next queued experiment (repeats come first by index)."""
        with self.db.session() as session:
            return session.scalar(
                select(Experiment.id)
                .where(Experiment.campaign_id == self.campaign_id)
                .where(Experiment.status == ExperimentStatus.QUEUED)
                .order_by(Experiment.index)
                .limit(1)
            )

    def store_asked(self, points: list[dict[str, Any]], optimizer: Optimizer) -> list[int]:
        """Queue the optimiser's suggestions and its state in one transaction."""
        with self.db.session() as session:
            ids = [self.new_experiment(session, p).id for p in points]
            campaign = self._campaign(session)
            campaign.optimizer_state = optimizer.state()
        return ids

    def mark_running(self, exp_id: int, plan: ExperimentPlan, remaining: int, now_s: float) -> None:
        """The experiment starts; the dashboard reads current_step and eta from the summary
        (web/data.py): the eta assumes every remaining experiment takes as long as this
        one's timing model."""
        seconds = timing_model(plan.steps, use_ml=plan.use_ml).duration_s * max(1, remaining)
        eta = dt.datetime.fromtimestamp(now_s + seconds, dt.UTC)
        with self.db.session() as session:
            exp = session.get(Experiment, exp_id)
            assert exp is not None
            exp.status = ExperimentStatus.RUNNING
            exp.started_at = utcnow()
            campaign = self._campaign(session)
            campaign.summary = {
                **(campaign.summary or {}),
                "current_experiment": exp.index,
                "current_step": f"experiment {exp.index}",
                "eta": eta.isoformat(),
            }

    def store_measurement(self, exp_id: int, result: AnalysisResult, folder: Path) -> int:
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

    # -- inventory ----------------------------------------------------------------------------
    def initial_inventory(self) -> dict[str, float]:
        """Stock volumes on hand, minus priming each pump's dead volume once."""
        pumps = self.platform.fluidics.pumps
        out = {
            name: s.available.value - pumps[s.pump].dead_volume.value
            for name, s in self.protocol.stocks.items()
        }
        solvent = self.protocol.solvent
        out[solvent.name] = solvent.available.value - pumps[solvent.pump].dead_volume.value
        return out

    def consume(self, inventory: dict[str, float], conditions: Mapping[str, Any]) -> None:
        """Subtract what an experiment at ``conditions`` pumped."""
        try:
            plan = plan_experiment(self.protocol, self.platform, conditions)
        except (InfeasibleConditions, KeyError, ValueError):
            return  # nothing was pumped for conditions that cannot run
        for stock, ml in plan.use_ml.items():
            inventory[stock] = inventory.get(stock, 0.0) - ml

    def refill(self, stock: str, ml: float) -> None:
        """Record that ``stock`` (or the solvent, by name) now holds ``ml`` mL."""
        names = {*self.protocol.stocks, self.protocol.solvent.name}
        if stock not in names:
            raise KeyError(f"unknown stock {stock!r}; stocks: {', '.join(sorted(names))}")
        if not ml >= 0:
            raise ValueError(f"volume must be >= 0 mL, got {ml!r}")
        with self.db.session() as session:
            campaign = self._campaign(session)
            summary = dict(campaign.summary or {})
            inventory = dict(summary.get("inventory") or self.initial_inventory())
            inventory[stock] = float(ml)
            summary["inventory"] = inventory
            campaign.summary = summary

    def shortage(self, plan: ExperimentPlan) -> str | None:
        """Why the next experiment cannot start for lack of a stock, or None."""
        with self.db.session() as session:
            inventory = (self._campaign(session).summary or {}).get("inventory") or {}
        short = [
            f"{stock}: {inventory.get(stock, 0.0):.3g} mL left, the next experiment needs "
            f"{need:.3g} mL"
            for stock, need in plan.use_ml.items()
            if need > 1e-9 and inventory.get(stock, 0.0) < need
        ]
        if not short:
            return None
        return "stock running low, refill and resume: " + "; ".join(short)

    # -- resume -------------------------------------------------------------------------------
    def recover(self, initial_status: CampaignStatus) -> tuple[dict[str, Any], list[int]]:
        """Mark experiments left running as interrupted and queue their repeats (one
        transaction); set up the inventory on the first start. Returns (what was done, for
        the ``campaign.resumed`` event; the ids of experiments whose measurement was
        committed: they are finished from it, never measured again)."""
        with self.db.session() as session:
            campaign = self._campaign(session)
            summary = dict(campaign.summary or {})
            if "inventory" not in summary:
                summary["inventory"] = self.initial_inventory()
            running = session.scalars(
                select(Experiment)
                .where(Experiment.campaign_id == self.campaign_id)
                .where(Experiment.status == ExperimentStatus.RUNNING)
                .order_by(Experiment.index)
            ).all()
            repeated, measured, measured_ids = [], [], []
            inventory = dict(summary["inventory"])
            for exp in running:
                if self.protocol.scale_up is None and exp.measurements:
                    measured.append(exp.index)
                    measured_ids.append(exp.id)
                    continue
                exp.status = ExperimentStatus.INTERRUPTED
                exp.status_reason = "the engine stopped while it ran (crash or kill); repeated"
                exp.ended_at = utcnow()
                self.consume(inventory, exp.conditions)
                if initial_status == CampaignStatus.ABORTING:
                    continue  # the campaign ends: nothing is repeated
                repeat = self.new_experiment(session, exp.conditions, repeat_of=exp.id)
                repeated.append({"interrupted": exp.index, "repeat": repeat.index})
            summary["inventory"] = inventory
            campaign.summary = summary
        out: dict[str, Any] = {"repeated": repeated} if repeated else {}
        if measured:
            out["finished_from_measurement"] = measured
        return out, measured_ids

    def last_shim(self) -> tuple[float, float | None] | None:
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

    def resumed_experiment(self, exp_id: int) -> tuple[dict[str, Any], int, Outcome]:
        """(conditions, index, how its stored measurements end it) of one experiment."""
        with self.db.session() as session:
            exp = session.get(Experiment, exp_id)
            assert exp is not None
            return dict(exp.conditions), exp.index, stored_outcome(exp)

    def conditions_of(self, exp_id: int) -> tuple[dict[str, Any], int]:
        with self.db.session() as session:
            exp = session.get(Experiment, exp_id)
            assert exp is not None
            return dict(exp.conditions), exp.index

    # -- the optimiser ------------------------------------------------------------------------
    def history(self, session: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(told observations in index order, conditions still to run)."""
        return campaign_history(session, self.campaign_id, self.protocol.objectives)

    def rebuild_optimizer(self) -> Optimizer:
        """From the stored experiments (the source of truth), keeping only the ask counters
        of the stored state so that the next suggestions are the ones a run without the
        crash would have made."""
        spec = self.protocol.to_optimizer_spec()
        fresh = Optimizer.from_spec(spec)
        with self.db.session() as session:
            campaign = self._campaign(session)
            told, pending = self.history(session)
            stored = campaign.optimizer_state or {}
            n_asked = (
                session.scalar(
                    select(func.count(Experiment.id))
                    .where(Experiment.campaign_id == self.campaign_id)
                    .where(Experiment.repeat_of_id.is_(None))
                )
                or 0
            )
            related = related_observations(
                session, self.protocol, self.campaign_id, fresh, campaign_history
            )
        batch = self.protocol.optimizer.batch_size
        state = {
            "format": fresh.state()["format"],
            "spec": fresh.spec(),
            "observations": related + [{**t, "source": "campaign"} for t in told],
            "pending": pending,
            "asks": int(stored.get("asks", math.ceil(n_asked / batch))),
            "design_served": int(stored.get("design_served", min(fresh.n_initial, n_asked))),
        }
        return Optimizer.from_state(state)

    # -- closing an experiment ----------------------------------------------------------------
    def commit_outcome(
        self,
        exp_id: int,
        outcome: Outcome,
        plan: ExperimentPlan | None,
        *,
        optimizer: Optimizer,
        policy: Policy,
        aborting: bool,
    ) -> dict[str, Any]:
        """One transaction: the experiment's status, the inventory, what the optimiser is
        told, a repeat when one is due. It counts (its event is published) only once this
        returns: after the commit the database is checked to be still the one opened."""
        with self.db.session() as session:
            exp = session.get(Experiment, exp_id)
            campaign = self._campaign(session)
            assert exp is not None
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
                values = objective_values(self.protocol.objectives, outcome.result)
                tell = (dict(exp.conditions), values)
                out["objectives"] = values
            elif outcome.kind == "rejected":
                exp.status = ExperimentStatus.FAILED
                exp.status_reason = f"spectrum rejected: {outcome.reason}"
                if _qc_repeats(session, exp) < policy.repeat:
                    repeat = self.new_experiment(session, exp.conditions, repeat_of=exp.id)
                else:
                    tell = (dict(exp.conditions), None)
            elif outcome.kind == "failed":
                exp.status = ExperimentStatus.FAILED
                exp.status_reason = outcome.reason
                tell = (dict(exp.conditions), None)
            else:
                exp.status = ExperimentStatus.INTERRUPTED
                exp.status_reason = outcome.reason
                if not aborting:
                    repeat = self.new_experiment(session, exp.conditions, repeat_of=exp.id)
            exp.ended_at = utcnow()
            if tell is not None:
                optimizer.tell([tell[0]], [tell[1]])
                campaign.optimizer_state = optimizer.state()
            summary["inventory"] = inventory
            summary["experiments_done"] = optimizer.n_experiments
            summary.pop("current_experiment", None)
            summary.pop("current_step", None)
            campaign.summary = summary
            out.update(
                status=str(exp.status),
                reason=exp.status_reason,
                repeat=None if repeat is None else repeat.index,
                told=optimizer.n_experiments,
                inventory=inventory,
            )
        self.db.verify()
        return out

    def _campaign(self, session: Any) -> Campaign:
        campaign = session.get(Campaign, self.campaign_id)
        assert campaign is not None
        return campaign


def campaign_history(
    session: Any, campaign_id: int, objectives: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A campaign's told observations in index order (objective values as ``objectives``
    measure them; None for a failure) and the conditions it still has to run."""
    rows = session.scalars(
        select(Experiment).where(Experiment.campaign_id == campaign_id).order_by(Experiment.index)
    ).all()
    superseded = {e.repeat_of_id for e in rows if e.repeat_of_id is not None}
    told: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for exp in rows:
        if exp.status == ExperimentStatus.DONE:
            m = latest_accepted(exp)
            result = objective_values(objectives, _result_of(m)) if m else None
            told.append({"point": dict(exp.conditions), "result": result})
        elif exp.status == ExperimentStatus.FAILED and exp.id not in superseded:
            told.append({"point": dict(exp.conditions), "result": None})
        elif exp.status in (ExperimentStatus.QUEUED, ExperimentStatus.RUNNING):
            pending.append(dict(exp.conditions))
    return told, pending


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


def stored_outcome(exp: Experiment) -> Outcome:
    """How an experiment's stored measurements end it: done with the newest accepted
    spectrum, else rejected with the newest one's reasons."""
    ok = latest_accepted(exp)
    if ok is not None:
        return Outcome("done", result=_result_of(ok))
    newest = max(exp.measurements, key=lambda m: m.id)
    return Outcome("rejected", "; ".join(newest.qc_reasons or []), _result_of(newest))


def latest_accepted(exp: Experiment) -> Measurement | None:
    """The experiment's newest measurement that quality control did not reject."""
    ok = [m for m in exp.measurements if m.qc_status != "rejected"]
    return max(ok, key=lambda m: m.id) if ok else None


def _result_of(m: Measurement) -> AnalysisResult:
    """Enough of an AnalysisResult to compute objective values from a stored row. The
    yield's standard deviation lives in the stored analysis result (no column of its own):
    a rebuilt optimiser is told the same spread as the live one."""
    sd = (m.result or {}).get("yield_sd_percent")
    return AnalysisResult(
        status=m.qc_status,  # type: ignore[arg-type]
        reasons=list(m.qc_reasons or []),
        yield_percent=m.yield_percent,
        yield_sd_percent=(
            float(sd) if isinstance(sd, int | float) and not isinstance(sd, bool) else None
        ),
        conversion_percent=m.conversion_percent,
        throughput_mmol_h=m.throughput_mmol_h,
        concentrations_M={},
        integrals={},
        snr={},
        processing={},
        software={},
        source={},
    )
