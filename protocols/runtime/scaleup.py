"""The scale-up runner: a scale-up protocol's chosen conditions run continuously.

The engine runs a protocol with a ``scale_up`` section in segments (one experiment row each):

start-up to waste -> steady state (k consecutive NMR yields agree) -> collection valve to the
flask -> NMR check every ``check_every`` (amount of product integrated from the measured
yields) -> stop when the amount is reached, the maximum run time is over, a syringe needs a
refill or the yield drifts -> shut-down (valve to waste, light off, stocks off) and flush.

An interrupted segment (interlock, drift with ``on_drift: pause``, syringe refill, pause) is
repeated on resume for the amount still missing. The plan comes from the language's
:mod:`robochem.protocols.scaleup`. See docs/scale-up.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from robochem.storage.models import Campaign, Experiment, ExperimentStatus

from ..scaleup import (
    SYRINGE_MARGIN,
    Chosen,
    plan_scale_up,
    scale_up_report,
    shutdown_steps,
    start_steps,
)
from ..steps import Acquire, ExperimentPlan, SetValve, Step, acquisition_for, describe
from .lab import uncancellable
from .records import latest_accepted
from .states import EngineState as S
from .states import Outcome

if TYPE_CHECKING:
    from robochem.analysis import AnalysisResult

    from .engine import Engine

__all__ = ["ScaleUpRunner", "YieldIntegrator", "choose_experiment"]

class YieldIntegrator:
    """Product reaching the flask, from NMR yields: piecewise linear between checks,
    constant after the last one. Times are when the sample passes the collection valve."""

    def __init__(self, rate_mmol_h: Any, start_s: float, yield_percent: float) -> None:
        self.rate = rate_mmol_h
        self.t = start_s
        self.y = yield_percent
        self.mmol = 0.0

    def add(self, t_s: float, yield_percent: float, *, until: float = math.inf) -> None:
        """A measured yield at ``t_s``; with ``until`` (the valve closed then) nothing after
        it is counted (the yield there interpolated)."""
        if t_s > until > self.t:
            y_end = self.y + (yield_percent - self.y) * (until - self.t) / (t_s - self.t)
            self.mmol += self.rate((self.y + y_end) / 2.0) * (until - self.t) / 3600.0
            self.t, self.y = until, y_end
            return
        if t_s > self.t:
            mean = (self.y + yield_percent) / 2.0
            self.mmol += self.rate(mean) * (t_s - self.t) / 3600.0
            self.t = t_s
        if self.t <= until:
            self.y = yield_percent

    def close(self, end_s: float) -> float:
        """Amount when the valve closed at ``end_s``."""
        if end_s > self.t:
            self.mmol += self.rate(self.y) * (end_s - self.t) / 3600.0
            self.t = end_s
        return self.mmol

    def projected_end(self, missing_mmol: float) -> float:
        """When ``missing_mmol`` more will have been collected at the last yield."""
        rate = self.rate(self.y)
        if rate <= 0:
            return math.inf
        return self.t + 3600.0 * max(missing_mmol - self.mmol, 0.0) / rate


@dataclass
class _Segment:
    """One start-up + collection; what it added to the flask."""

    index: int
    exp_id: int
    start_s: float = 0.0
    collect_s: float = 0.0
    collected_ml: float = 0.0
    product_mmol: float = 0.0
    steady_yield: float | None = None
    ended: str = ""  # target | max_run_time | drift | refill | stopped | paused
    checks: int = 0
    used_ml: dict[str, float] = field(default_factory=dict)
    # While the collection valve is open: the account of what reaches the flask. An
    # interrupted segment (abort, crash) is closed from it when the pumps have stopped.
    integrator: YieldIntegrator | None = None
    t_open: float | None = None
    valve_closed_at: float | None = None
    closed: bool = False
    after_last_check_s: float = 0.0  # collected after the last NMR check, at its yield
    end_uncertainty_s: float = 0.0  # +- on when collection ended (interrupted segments)


@dataclass(frozen=True)
class _Drift:
    """An NMR yield outside the drift tolerance during collection."""

    message: str
    t_s: float
    yield_percent: float


class _EndRun(Exception):
    """Ends a segment's body with an outcome (drift, refill, no steady state)."""

    def __init__(self, kind: str, reason: str, *, pause: bool) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.pause = pause


class ScaleUpRunner:
    """The engine's main loop for a protocol with a ``scale_up`` section."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.protocol = engine.protocol
        self.platform = engine.platform
        self.plan = plan_scale_up(engine.protocol, engine.platform)
        #: how long the last NMR check took (acquisition + analysis), clock seconds
        self.check_s = acquisition_for(engine.protocol).estimate_s

    # -- storage ------------------------------------------------------------------------------
    def _init(self) -> None:
        """Create the first segment and the report on the first start."""
        e = self.e
        with e.db.session() as session:
            campaign = session.get(Campaign, e.campaign_id)
            assert campaign is not None
            summary = dict(campaign.summary or {})
            if "scale_up" not in summary:
                summary["scale_up"] = {
                    "target_mmol": self.plan.target_mmol,
                    "planned_run_time_s": self.plan.run_time_s,
                    "flow_ml_min": self.plan.flow_ml_min,
                    "limiting_m": self.plan.limiting_m,
                    "reactor_ml": self.plan.reactor_ml,
                    "collected_ml": 0.0,
                    "product_mmol": 0.0,
                    "collection_s": 0.0,
                    "checks": 0,
                    "segments": [],
                    "status": "running",
                }
                campaign.summary = summary
            crashed = summary.get("scale_up_current")
            if crashed:
                # the engine stopped during a segment (crash, kill): what reached the flask up
                # to its last NMR check is kept; the engine's recovery queued the repeat
                report = dict(summary["scale_up"])
                for key, part in (
                    ("collected_ml", "collected_ml"),
                    ("product_mmol", "product_mmol"),
                    ("collection_s", "collect_s"),
                ):
                    report[key] = report.get(key, 0.0) + float(crashed.get(part, 0.0))
                report["segments"] = [
                    *report.get("segments", []),
                    {
                        "index": crashed.get("segment"),
                        "collected_ml": crashed.get("collected_ml", 0.0),
                        "product_mmol": crashed.get("product_mmol", 0.0),
                        "collect_s": crashed.get("collect_s", 0.0),
                        "steady_yield_percent": None,
                        "ended": "interrupted",
                        "reason": "the engine stopped while it ran (up to its last NMR check)",
                    },
                ]
                summary["scale_up"] = report
                summary.pop("scale_up_current", None)
                campaign.summary = summary
            count = session.scalar(
                select(func.count(Experiment.id)).where(Experiment.campaign_id == e.campaign_id)
            )
            if not count:
                e.records.new_experiment(session, self.plan.conditions)

    def _report(self) -> dict[str, Any]:
        with self.e.db.session() as session:
            campaign = session.get(Campaign, self.e.campaign_id)
            assert campaign is not None
            return dict((campaign.summary or {}).get("scale_up") or {})

    def _store_progress(self, seg: _Segment, step: str) -> None:
        """The running totals of this segment (so a crash loses at most one check)."""
        with self.e.db.session() as session:
            campaign = session.get(Campaign, self.e.campaign_id)
            assert campaign is not None
            summary = dict(campaign.summary or {})
            summary["scale_up_current"] = {
                "segment": seg.index,
                "collected_ml": seg.collected_ml,
                "product_mmol": seg.product_mmol,
                "collect_s": seg.collect_s,
            }
            summary["current_step"] = step
            campaign.summary = summary

    # -- the loop -----------------------------------------------------------------------------
    async def loop(self) -> None:
        e = self.e
        await asyncio.to_thread(self._init)
        while True:
            await e.checkpoint()
            if e.state in (S.STOPPING, S.ABORTING, S.PAUSED):
                return
            exp_id = await asyncio.to_thread(e.records.first_queued)
            if exp_id is None:
                report = scale_up_report({"scale_up": await asyncio.to_thread(self._report)})
                why = f" ({report['reason']})" if report.get("reason") else ""
                e.reason = (
                    f"scale-up {report.get('status')}: {report.get('product_mmol', 0):.3g} of "
                    f"{report.get('target_mmol', 0):.3g} mmol collected{why}"
                )
                return
            await self._segment(exp_id)

    async def _segment(self, exp_id: int) -> None:
        e = self.e
        with e.db.session() as session:
            exp = session.get(Experiment, exp_id)
            assert exp is not None
            index = exp.index
            exp.status = ExperimentStatus.RUNNING
            exp.started_at = dt.datetime.now(dt.UTC)
        report = await asyncio.to_thread(self._report)
        seg = _Segment(index=index, exp_id=exp_id, start_s=e.clock.now())
        e.progress.experiment_id, e.progress.experiment_index = exp_id, index
        await e.publish(
            "experiment.running",
            {
                "index": index,
                "conditions": self.plan.conditions,
                "pump_flows_ml_min": self.plan.recipe.pump_flows_ml_min,
                "scale_up": {
                    "missing_mmol": self.plan.target_mmol - report.get("product_mmol", 0.0),
                    "flow_ml_min": self.plan.flow_ml_min,
                },
            },
            experiment_id=exp_id,
        )
        outcome = Outcome("interrupted", "engine stopped")
        try:
            outcome = await e.attempt(exp_id, index, lambda: self._body(seg, report))
        finally:
            safe = await e.lab.safe_state(now=e.clock.now)
            if seg.integrator is not None and not seg.closed:
                # Interrupted while collecting: the flask kept filling until the pumps
                # stopped (or the valve turned to waste before).
                stopped, seg.end_uncertainty_s = self._flow_end(safe.pump_stops, e.clock.now())
                if seg.valve_closed_at is not None and seg.valve_closed_at < stopped:
                    stopped, seg.end_uncertainty_s = seg.valve_closed_at, 0.0
                self._close_account(seg, stopped)
            if not safe.ok:
                await e.record_safe_state(safe.to_dict(), "scale-up segment end")
            minutes = (e.clock.now() - seg.start_s) / 60.0
            seg.used_ml = {n: q * minutes for n, q in self.plan.use_ml_min.items()}
            solvent = self.protocol.solvent.name
            seg.used_ml[solvent] = seg.used_ml.get(solvent, 0.0) + self.plan.flush_ml
            await uncancellable(self._close(seg, outcome))
        if outcome.trip is not None:
            reason = f"interlock {outcome.trip}"
        elif outcome.kind == "interrupted" and e.state is S.PAUSING:
            reason = e.reason or "pause requested"
        elif outcome.kind == "interrupted" and outcome.reason.startswith("pause:"):
            reason = outcome.reason.removeprefix("pause:").strip()
        else:
            return
        await e.pause_for(reason)

    async def _close(self, seg: _Segment, outcome: Outcome) -> None:
        e = self.e
        if outcome.trip is not None:
            await e.publish_trip(outcome.trip, seg.exp_id)
        out = await asyncio.to_thread(self._store_close, seg, outcome)
        await e.publish(f"experiment.{out['status']}", out, experiment_id=seg.exp_id)
        if out["finished"]:
            await e.publish("scaleup.report", out["report"])

    def _store_close(self, seg: _Segment, outcome: Outcome) -> dict[str, Any]:
        e = self.e
        with e.db.session() as session:
            exp = session.get(Experiment, seg.exp_id)
            campaign = session.get(Campaign, e.campaign_id)
            assert exp is not None and campaign is not None
            summary = dict(campaign.summary or {})
            report = dict(summary.get("scale_up") or {})
            report["collected_ml"] = report.get("collected_ml", 0.0) + seg.collected_ml
            report["product_mmol"] = report.get("product_mmol", 0.0) + seg.product_mmol
            report["collection_s"] = report.get("collection_s", 0.0) + seg.collect_s
            report["checks"] = report.get("checks", 0) + seg.checks
            report["segments"] = [
                *report.get("segments", []),
                {
                    "index": seg.index,
                    "collected_ml": seg.collected_ml,
                    "product_mmol": seg.product_mmol,
                    "collect_s": seg.collect_s,
                    "steady_yield_percent": seg.steady_yield,
                    "after_last_check_s": seg.after_last_check_s,
                    "end_uncertainty_s": seg.end_uncertainty_s,
                    "ended": seg.ended or outcome.kind,
                    "reason": outcome.reason or None,
                },
            ]
            inventory = dict(summary.get("inventory") or e.records.initial_inventory())
            for stock, ml in seg.used_ml.items():
                inventory[stock] = inventory.get(stock, 0.0) - ml
            summary["inventory"] = inventory
            repeat = None
            missing = report["target_mmol"] - report["product_mmol"]
            if outcome.kind == "done":
                exp.status = ExperimentStatus.DONE
                exp.status_reason = outcome.reason or None
            else:
                exp.status = ExperimentStatus.INTERRUPTED
                exp.status_reason = outcome.reason
                if e.state is not S.ABORTING and missing > 0:
                    repeat = e.records.new_experiment(session, exp.conditions, repeat_of=exp.id)
            exp.ended_at = dt.datetime.now(dt.UTC)
            finished = repeat is None
            if finished:
                if e.state is S.ABORTING:
                    report["status"] = "aborted"
                elif seg.ended == "target":
                    report["status"] = "completed"
                elif seg.ended == "stopped":
                    report["status"] = "stopped by the operator"
                else:
                    report["status"] = f"stopped ({seg.ended or outcome.kind})"
                report["reason"] = outcome.reason or None
            summary["scale_up"] = report
            summary.pop("scale_up_current", None)
            summary.pop("current_step", None)
            summary["experiments_done"] = len(report["segments"])
            campaign.summary = summary
            return {
                "index": seg.index,
                "status": str(exp.status),
                "reason": exp.status_reason,
                "repeat": None if repeat is None else repeat.index,
                "segment": report["segments"][-1],
                "inventory": inventory,
                "finished": finished,
                "report": scale_up_report(summary),
            }

    # -- one segment ----------------------------------------------------------------------------
    async def _body(self, seg: _Segment, report: Mapping[str, Any]) -> Outcome:
        try:
            return await self._run_segment(seg, report)
        except _EndRun as end:
            seg.ended = end.kind
            reason = f"pause: {end.reason}" if end.pause else end.reason
            if not end.pause:
                return Outcome("done", end.reason)
            return Outcome("interrupted", reason)

    async def _steps(self, seg: _Segment, steps: list[Step]) -> None:
        e = self.e
        for number, step in enumerate(steps, 1):
            if e.halted:
                raise asyncio.CancelledError
            e.progress.step = describe(step)
            await e.publish(
                "step", {"index": seg.index, "number": number, **step.to_dict()},
                experiment_id=seg.exp_id,
            )  # fmt: skip
            await e.run_step(step)

    async def _phase(self, seg: _Segment, phase: str, **extra: Any) -> None:
        self.e.progress.step = phase
        await self.e.publish(
            "scaleup.phase", {"index": seg.index, "phase": phase, **extra},
            experiment_id=seg.exp_id,
        )  # fmt: skip
        await asyncio.to_thread(self._store_progress, seg, f"scale-up: {phase}")

    def _wants_to_end(self) -> str | None:
        if self.e.state is S.STOPPING:
            return "stopped"
        if self.e.state is S.PAUSING:
            return "paused"
        return None

    async def _sleep_until(self, t_s: float) -> None:
        """Sleep on the clock until ``t_s``; a stop or pause request ends the sleep early."""
        if self._wants_to_end():
            return
        await self.e.sleep_unless_woken(t_s - self.e.clock.now())

    async def _check(self, seg: _Segment, phase: str) -> tuple[float, float | None]:
        """One NMR check in flow: (sample time, yield or None when the spectrum was rejected
        even after re-measuring)."""
        e = self.e
        acquire: Acquire = acquisition_for(self.protocol)
        plan = ExperimentPlan(
            recipe=self.plan.recipe, steps=[], flow_ml_min=self.plan.flow_ml_min, use_ml={}
        )
        result: AnalysisResult | None = None
        t_sample = started = e.clock.now()
        for _ in range(1 + e.policy.remeasure):
            t0 = e.clock.now()
            acquisition = await e.acquire(seg.exp_id, seg.index, acquire)
            t_sample = (t0 + e.clock.now()) / 2.0
            result = await e.analyze(seg.exp_id, plan, acquisition)
            if result.status != "rejected":
                break
            await e.publish(
                "retry.remeasure", {"index": seg.index, "reasons": result.reasons},
                experiment_id=seg.exp_id,
            )  # fmt: skip
        assert result is not None
        self.check_s = e.clock.now() - started
        seg.checks += 1
        y = result.yield_percent if result.status != "rejected" else None
        await e.publish(
            "scaleup.check",
            {
                "index": seg.index,
                "phase": phase,
                "t_s": t_sample,
                "yield": y,
                "status": result.status,
                "reasons": list(result.reasons),
                "product_mmol": seg.product_mmol,
            },
            experiment_id=seg.exp_id,
        )
        return t_sample, y

    async def _run_segment(self, seg: _Segment, report: Mapping[str, Any]) -> Outcome:
        # A segment runs for hours with liquid in the cell: shim (when the platform's
        # policy says it is due) now, before anything flows, not in the middle of it.
        await self.e.shim_if_due(seg.exp_id, seg.index)
        steady = await self._reach_steady_state(seg)
        if isinstance(steady, Outcome):
            return steady
        flowing, y_ref = steady
        seg.steady_yield = y_ref
        ended, reason, drift = await self._collect(seg, report, flowing, y_ref)
        return await self._end_segment(seg, ended, reason, drift, y_ref)

    async def _reach_steady_state(self, seg: _Segment) -> tuple[float, float] | Outcome:
        """Start-up to waste until ``agree`` NMR yields agree: (when the flow started, the
        steady-state yield); the shutdown's outcome when a stop or pause came first."""
        e, plan = self.e, self.plan
        await self._phase(seg, "startup")
        await self._steps(seg, start_steps(self.protocol, self.platform, plan))
        flowing = e.clock.now()
        deadline = flowing + plan.startup_max_s
        await self._sleep_until(flowing + plan.min_wait_s)
        yields: list[float] = []
        while True:
            if (why := self._wants_to_end()) is not None:
                ended = await self._shutdown(seg, why)
                assert ended is not None  # a stop or a pause ends the segment with an outcome
                return ended
            started = e.clock.now()
            _, y = await self._check(seg, "startup")
            if y is not None:
                yields.append(y)
                last = yields[-plan.agree :]
                if len(last) == plan.agree and max(last) - min(last) <= plan.agree_tolerance:
                    break
            if started + plan.check_every_s > deadline:
                await self._shutdown(seg, "no steady state")
                raise _EndRun(
                    "no_steady_state",
                    f"no steady state within {plan.startup_max_s / 60:.0f} min: the last NMR "
                    f"yields were {', '.join(f'{v:.1f}' for v in yields[-plan.agree :])} %, "
                    f"the rule is {plan.agree} within {plan.agree_tolerance:g} %",
                    pause=True,
                )
            await self._sleep_until(started + plan.check_every_s)
        y_ref = sum(yields[-plan.agree :]) / plan.agree
        await self._phase(seg, "steady", yield_percent=y_ref, yields=yields[-plan.agree :])
        return flowing, y_ref

    async def _collect(
        self, seg: _Segment, report: Mapping[str, Any], flowing: float, y_ref: float
    ) -> tuple[str, str, _Drift | None]:
        """Collection valve to the flask, an NMR check every ``check_every``, the amount
        integrated from the measured yields, until the target, the maximum run time, a
        syringe refill, a yield drift or the operator ends it: (why it ended, the reason
        shown, the drift if any). The valve is back to waste when this returns."""
        e, plan = self.e, self.plan
        fl = self.platform.fluidics
        assert fl.collection is not None  # checked by the validator
        missing = plan.target_mmol - float(report.get("product_mmol", 0.0))
        run_left = plan.max_run_time_s - float(report.get("collection_s", 0.0))
        t_open = await self._switch(seg, fl.collection.collect)
        await self._phase(seg, "collecting", missing_mmol=missing)
        integrator = YieldIntegrator(plan.rate_mmol_h, t_open, y_ref)
        seg.integrator, seg.t_open = integrator, t_open
        hard_end = t_open + run_left
        refill_end = math.inf
        for q, capacity in plan.syringes.values():
            refill_end = min(refill_end, flowing + 60.0 * SYRINGE_MARGIN * capacity / q)
        last_check = t_open
        ended, reason = "target", ""
        drift: _Drift | None = None
        closed_at: float | None = None
        while True:
            end = min(integrator.projected_end(missing), hard_end, refill_end)
            await self._sleep_until(min(last_check + plan.check_every_s, end))
            now = e.clock.now()
            if (why := self._wants_to_end()) is not None:
                ended, reason = why, f"{why} by the operator"
                break
            if now >= end - 1e-6:
                break
            if now + min(self.check_s, plan.check_every_s / 2) > end:
                # the check would end after the valve closes (it could change nothing that is
                # collected): none. Capped at half an interval, so that slow analyses (a fast
                # simulated clock) do not switch the monitoring off.
                await self._sleep_until(end)
                continue
            last_check = now
            closed_at, drift = await self._check_while_collecting(seg, integrator, end, y_ref)
            if closed_at is not None:
                end = closed_at
                break
            if drift is not None:
                end = e.clock.now()
                break
            seg.product_mmol = integrator.mmol
            seg.collect_s = e.clock.now() - t_open
            seg.collected_ml = plan.flow_ml_min * seg.collect_s / 60.0
            await asyncio.to_thread(self._store_progress, seg, "scale-up: collecting")
        if drift is not None:
            ended = "drift"
        elif end >= hard_end - 1e-6 and integrator.projected_end(missing) > hard_end:
            ended, reason = "max_run_time", "maximum run time reached"
        elif end >= refill_end - 1e-6 and integrator.projected_end(missing) > refill_end:
            ended = "refill"
        if closed_at is None:
            closed_at = await self._close_valve(seg)
        self._close_account(seg, closed_at)
        return ended, reason, drift

    async def _check_while_collecting(
        self, seg: _Segment, integrator: YieldIntegrator, end: float, y_ref: float
    ) -> tuple[float | None, _Drift | None]:
        """One NMR check while the flask keeps filling; the valve closes on time at ``end``
        even when the check is still running: (when the valve closed, or None; the drift)."""
        e, plan = self.e, self.plan
        closed_at: float | None = None
        check = asyncio.ensure_future(self._check(seg, "collecting"))
        timer = asyncio.ensure_future(e.clock.sleep(max(end - e.clock.now(), 0.0)))
        try:
            await asyncio.wait({check, timer}, return_when=asyncio.FIRST_COMPLETED)
            if not check.done():
                closed_at = await self._close_valve(seg)
            t_sample, y = await check
        finally:
            timer.cancel()
            if not check.done():
                check.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await check
        if y is None:
            return closed_at, None
        limit = math.inf if closed_at is None else closed_at
        integrator.add(t_sample + plan.cell_to_valve_s, y, until=limit)
        if abs(y - y_ref) <= plan.drift_tolerance:
            return closed_at, None
        message = (
            f"yield drift: NMR yield {y:.1f} % against the steady-state {y_ref:.1f} % "
            f"(tolerance {plan.drift_tolerance:g} %)"
        )
        return closed_at, _Drift(message, t_sample, y)

    async def _end_segment(
        self, seg: _Segment, ended: str, reason: str, drift: _Drift | None, y_ref: float
    ) -> Outcome:
        """Report the collection, shut down and flush; the segment's outcome."""
        e, plan = self.e, self.plan
        await self._phase(
            seg, "collected", collected_ml=seg.collected_ml, product_mmol=seg.product_mmol,
            ended=ended,
        )  # fmt: skip
        if drift is not None:
            await e.publish(
                "scaleup.drift",
                {
                    "index": seg.index,
                    "message": drift.message,
                    "policy": plan.on_drift,
                    "t_s": drift.t_s,
                    "yield": drift.yield_percent,
                    "steady_yield": y_ref,
                },
                experiment_id=seg.exp_id,
            )
        await self._shutdown(seg, ended)
        seg.ended = ended
        if ended == "target":
            return Outcome("done", "")
        if drift is not None:
            raise _EndRun("drift", drift.message, pause=plan.on_drift == "pause")
        if ended == "refill":
            pumps = ", ".join(f"{pump} ({self._stock_on(pump)})" for pump in sorted(plan.syringes))
            raise _EndRun("refill", f"refill the syringes of {pumps}, then resume", pause=True)
        if ended == "paused":
            return Outcome("interrupted", f"paused: {e.reason}")
        return Outcome("done", reason)

    def _stock_on(self, pump: str) -> str:
        names = [n for n, s in self.protocol.stocks.items() if s.pump == pump]
        return ", ".join(names) or self.protocol.solvent.name

    async def _switch(self, seg: _Segment, position: str) -> float:
        """Turn the collection valve; returns when it turned (the middle of the command: at
        high clock speeds a command's round trip is many simulated seconds)."""
        fl = self.platform.fluidics
        assert fl.collection is not None
        before = self.e.clock.now()
        await self._steps(seg, [SetValve(fl.collection.valve, position)])
        return (before + self.e.clock.now()) / 2.0

    async def _close_valve(self, seg: _Segment) -> float:
        fl = self.platform.fluidics
        assert fl.collection is not None
        seg.valve_closed_at = await self._switch(seg, fl.collection.waste)
        return seg.valve_closed_at

    def _flow_end(
        self, stops: Mapping[str, tuple[float, float]], fallback: float
    ) -> tuple[float, float]:
        """When the flow into the flask ended, and how uncertain that is (half the spread),
        from the pumps' stop commands: the flow-weighted mean of their middles (the pumps
        stop one by one; the volume delivered is as if all had stopped then). A pump
        without a confirmed stop counts as stopping at ``fallback``."""
        flows = self.plan.recipe.pump_flows_ml_min
        total = sum(flows.values())
        if total <= 0:
            return fallback, 0.0
        spans = [stops.get(pump, (fallback, fallback)) for pump in flows]
        end = sum(q * (a + b) / 2 for q, (a, b) in zip(flows.values(), spans, strict=True))
        half = (max(b for _, b in spans) - min(a for a, _ in spans)) / 2
        return end / total, half

    def _close_account(self, seg: _Segment, end_s: float) -> None:
        """The segment's collection ends at ``end_s``: volume and product (constant at the
        last NMR yield after the last check) are final."""
        assert seg.integrator is not None and seg.t_open is not None
        end_s = max(end_s, seg.t_open)
        seg.after_last_check_s = max(end_s - seg.integrator.t, 0.0)
        seg.collect_s = end_s - seg.t_open
        seg.collected_ml = self.plan.flow_ml_min * seg.collect_s / 60.0
        seg.product_mmol = seg.integrator.close(end_s)
        seg.closed = True

    async def _shutdown(self, seg: _Segment, why: str) -> Any:
        await self._phase(seg, "shutdown", why=why)
        await self._steps(seg, shutdown_steps(self.protocol, self.platform, self.plan))
        await self._phase(seg, "flushed")
        if why == "paused":
            return Outcome("interrupted", f"paused: {self.e.reason}")
        if why == "stopped":
            seg.ended = "stopped"
            return Outcome("done", "stopped by the operator")
        return None


def choose_experiment(database: Any, campaign_id: int, objective: str) -> Chosen:
    """The campaign's best done experiment for ``objective`` (``yield`` or ``throughput``),
    as the CLI and the dashboard define best (:mod:`robochem.storage.results`)."""
    from robochem.storage.results import best_results

    if objective not in ("yield", "throughput"):
        raise ValueError(f"objective must be 'yield' or 'throughput', got {objective!r}")
    with database.session() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise LookupError(f"no campaign {campaign_id}")
        if campaign.status != "completed":
            raise ValueError(
                f"campaign {campaign_id} is {campaign.status}: scale up a completed campaign"
            )
        best = best_results(session, [campaign_id])[campaign_id].measures[objective]
        exp = session.get(Experiment, best.experiment_id) if best.value is not None else None
        m = latest_accepted(exp) if exp is not None else None
        if exp is None or m is None or m.yield_percent is None or m.throughput_mmol_h is None:
            raise ValueError(f"campaign {campaign_id} has no done experiment with a yield")
        return Chosen(
            campaign_id=campaign_id,
            campaign_name=campaign.name,
            protocol_text=campaign.protocol_text,
            experiment_index=exp.index,
            conditions=dict(exp.conditions),
            yield_percent=float(m.yield_percent),
            throughput_mmol_h=float(m.throughput_mmol_h),
            inventory=dict((campaign.summary or {}).get("inventory") or {}),
        )

