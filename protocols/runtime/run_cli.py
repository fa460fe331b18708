"""``robochem run``, ``robochem campaigns list`` and ``robochem export``.

``run`` is headless: it prints the campaign id first, shows a progress bar and a live table of
results, and ends with an exit code that says how the campaign ended:

====  =====================================================================
0     completed
1     invalid input, or the engine failed
3     paused (interlock, low stock, rejected spectra): fix, then ``--resume``
4     aborted (Ctrl-C or SIGTERM: the lab is put in its safe state first)
5     the controller lost its supervisor: it made the lab safe, paused: ``--resume``
6     the controller died: the supervisor made the lab safe: ``--resume``
====  =====================================================================

The command is two processes (docs/engine.md, "Safe state"): this one becomes the
supervisor (:mod:`.supervisor`) and runs the campaign in a child, the controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from ..measures import measured

__all__ = ["campaigns_app", "export_command", "run_command"]

campaigns_app = typer.Typer(help="List campaigns.", no_args_is_help=True)

EXIT_PAUSED = 3
EXIT_ABORTED = 4
EXIT_SUPERVISOR_LOST = 5  # = supervisor.EXIT_SUPERVISOR_LOST
#: Wall seconds the engine has to pause after the supervisor died before the controller
#: makes the lab safe and leaves as after a crash.
LOST_PAUSE_BOUND_S = 15.0
#: Wall seconds between the safe states held while the engine pauses (see _hold_safe).
HOLD_S = 0.1


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def _load(protocol: Path | None, platform: Path) -> tuple[Any, Any]:
    from ..errors import ProtocolError
    from ..load import load_platform, load_protocol

    try:
        plat = load_platform(platform)
        proto = load_protocol(protocol, plat) if protocol is not None else None
    except ProtocolError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1) from None
    return proto, plat


def _install_clock(platform: Any, speed: float | None) -> Any:
    """The run's clock: --speed, else the one ``robochem sim`` wrote into the platform file
    (same speed and epoch, so the drivers' waits agree with the simulator's time)."""
    import time

    from robochem.clock import Clock, set_clock

    given = platform.clock or {}
    clock = Clock(
        speed=speed if speed is not None else float(given.get("speed", 1.0)),
        epoch=float(given["epoch"]) if "epoch" in given else time.time(),
    )
    set_clock(clock)
    return clock


def run_command(
    protocol: Path | None = typer.Argument(
        None, help="Protocol file (YAML). Not needed with --resume."
    ),
    platform: Path = typer.Option(
        ..., "--platform", "-p", help="Platform file (e.g. written by `robochem sim`)."
    ),
    speed: float | None = typer.Option(
        None, "--speed", min=0.001, help="Clock factor (default: the platform file's clock)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="No devices: estimate duration and reagent use, then exit."
    ),
    resume: int | None = typer.Option(
        None, "--resume", help="Continue campaign ID (after a crash, a pause or a kill)."
    ),
    refill: list[str] = typer.Option(
        [], "--refill", help="STOCK=VOLUME now on hand, e.g. donor=50mL (repeatable)."
    ),
    on_rejected: str = typer.Option(
        "pause",
        "--on-rejected",
        help="When a spectrum stays rejected after re-measuring and one repeat: "
        "'pause' the campaign or 'fail' the experiment and go on.",
    ),
    database: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
) -> None:
    """Run a campaign headless: progress bar, live results, campaign id printed first."""
    from .link import SupervisorLink

    link = SupervisorLink.from_env()  # first: it arms the parent-death signal
    if on_rejected not in ("pause", "fail"):
        raise typer.BadParameter("--on-rejected must be 'pause' or 'fail'")
    if resume is None and protocol is None:
        raise _fail("give a PROTOCOL file, or --resume CAMPAIGN_ID")
    proto, plat = _load(protocol if resume is None else None, platform)
    if dry_run:
        if proto is None:
            raise _fail("--dry-run needs the PROTOCOL file")
        if proto.scale_up is not None:
            from .scaleup_cli import scale_up_summary

            for line in scale_up_summary(proto, plat):
                typer.echo(line)
            return
        _print_dry_run(proto, plat)
        return
    refills = [_parse_refill(item) for item in refill]
    from .supervisor import supervise, supervision_wanted

    if link is None and supervision_wanted():
        argv = ["run", *([str(protocol)] if resume is None else []), "--platform", str(platform)]
        argv += ["--speed", repr(speed)] if speed is not None else []
        argv += ["--resume", str(resume)] if resume is not None else []
        argv += [arg for item in refill for arg in ("--refill", item)]
        argv += ["--on-rejected", on_rejected] + (["--db", database] if database else [])
        code = supervise(
            argv,
            plat,
            database_url=database,
            resume_hint=lambda cid: _resume_hint(cid, platform),
        )
        raise typer.Exit(code)
    clock = _install_clock(plat, speed)
    from robochem.storage.db import open_database

    db = open_database(database)
    try:
        if resume is None:
            from .engine import create_campaign

            assert protocol is not None
            campaign_id = create_campaign(
                db, protocol.read_text(encoding="utf-8"), file=str(protocol), platform=plat
            )
        else:
            campaign_id = resume
        typer.echo(f"campaign {campaign_id}")
        sys.stdout.flush()
        code = asyncio.run(
            _run(
                db,
                plat,
                campaign_id,
                clock,
                refills,
                on_rejected,
                link,
                _resume_hint(campaign_id, platform),
            )
        )
    finally:
        db.dispose()
        if link is not None:
            link.close()
    raise typer.Exit(code)


def _resume_hint(campaign_id: int, platform: Path) -> str:
    return f"continue with: robochem run --resume {campaign_id} --platform {platform}"


def _parse_refill(text: str) -> tuple[str, float]:
    from ..units import UnitError, parse_quantity

    stock, sep, volume = text.partition("=")
    if not sep:
        raise typer.BadParameter(f"--refill {text!r}: expected STOCK=VOLUME, e.g. donor=50mL")
    try:
        return stock.strip(), parse_quantity(volume.strip(), "volume")
    except UnitError as exc:
        raise typer.BadParameter(f"--refill {text!r}: {exc}") from None


async def _run(
    db: Any,
    plat: Any,
    campaign_id: int,
    clock: Any,
    refills: list[tuple[str, float]],
    on_rejected: str,
    link: Any = None,
    resume_hint: str = "",
) -> int:
    from rich.console import Console
    from rich.markup import escape

    from robochem.events import EventBus

    from .lab import connect_lab

    console = Console(stderr=True)
    bus = EventBus(db, clock=clock)
    guard = _SupervisorLoss(campaign_id, resume_hint, link)
    if link is not None:
        link.send("campaign", id=campaign_id)
        link.start()  # heartbeats; a death noticed now is acted on once the lab is open
    from robochem.drivers.errors import DeviceError

    try:
        lab = await connect_lab(plat)
    except (DeviceError, OSError, ValueError, TypeError) as exc:
        # a device that does not answer (DeviceError, OSError: refused, timed out), a URL or
        # options its driver refuses (ValueError, TypeError); anything else is a bug and
        # propagates with its traceback
        console.print(f"[red]cannot connect the lab:[/] {escape(str(exc))}", soft_wrap=True)
        return 1
    guard.lab = lab
    if link is not None:
        link.send("armed")
        link.set_on_lost(guard.lost)
    code = await _drive(lab, db, bus, campaign_id, clock, refills, on_rejected, console, guard)
    if link is not None:
        await link.stop()
        link.send("clean")  # the lab is safe and its devices are closed
    return code


async def _drive(
    lab: Any,
    db: Any,
    bus: Any,
    campaign_id: int,
    clock: Any,
    refills: list[tuple[str, float]],
    on_rejected: str,
    console: Any,
    guard: _SupervisorLoss,
) -> int:
    from rich.live import Live
    from rich.markup import escape

    from .engine import Engine, EngineState, Policy

    async with lab:
        try:
            engine = Engine(
                db,
                bus,
                lab,
                campaign_id,
                clock=clock,
                policy=Policy(on_rejected=on_rejected),
                exit_on_pause=True,
            )
            for stock, ml in refills:
                engine.refill(stock, ml)
        except (LookupError, KeyError, ValueError) as exc:
            console.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)  # one line
            return 1
        view = _LiveView(engine)
        engine.listeners.append(view.on_event)
        guard.engine = engine
        engine.listeners.append(guard.on_event)
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()

        def _abort(signame: str) -> None:
            if engine.state.value not in ("aborting", "aborted", "completed", "failed"):
                task = loop.create_task(engine.abort(f"{signame} received"))
                pending.add(task)
                task.add_done_callback(pending.discard)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _abort, sig.name)
        # `kill -USR1 PID` prints where every task of the engine waits (a hung device).
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
        try:
            with Live(view.render(), console=console, refresh_per_second=4) as live:
                view.live = live
                try:
                    state = await engine.run()
                except RuntimeError as exc:
                    console.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)  # one line
                    return 1
                live.update(view.render())
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
                loop.remove_signal_handler(sig)
    if guard.reason is not None and state is EngineState.PAUSED:
        guard.say("paused")
        return EXIT_SUPERVISOR_LOST
    reason = f": {engine.reason}" if engine.reason else ""
    console.print(f"campaign {campaign_id} {state}{escape(reason)}", soft_wrap=True)
    if engine.protocol.scale_up is not None:
        for line in _scale_up_lines(db, campaign_id):
            console.print(line)
    if state is EngineState.COMPLETED:
        return 0
    if state is EngineState.PAUSED:
        console.print(
            f"fix the cause, then continue with: robochem run --resume {campaign_id} "
            "--platform PLATFORM"
        )
        return EXIT_PAUSED
    if state is EngineState.ABORTED:
        return EXIT_ABORTED
    return 1


class _SupervisorLoss:
    """What the controller does when its supervisor dies: the lab safe at once, the
    running campaign paused (its experiment interrupted, repeated on ``--resume``); if the
    engine cannot pause (starting, stopping) or does not within ``LOST_PAUSE_BOUND_S``,
    safe state and leave as after a crash (``--resume`` recovers that too)."""

    def __init__(self, campaign_id: int, resume_hint: str, link: Any) -> None:
        self.campaign_id = campaign_id
        self.resume_hint = resume_hint
        self.link = link
        self.lab: Any = None
        self.engine: Any = None
        self.reason: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def say(self, what: str) -> None:
        """The one line a user sees (never wrapped: scripts grep it)."""
        from rich.console import Console

        text = (
            f"campaign {self.campaign_id} {what}: {self.reason}; the lab is in its safe "
            f"state; {self.resume_hint}"
        )
        Console(stderr=True).print(text, soft_wrap=True, markup=False, highlight=False)
        sys.stderr.flush()

    def on_event(self, kind: str, payload: dict[str, Any]) -> None:
        """Tell the supervisor what the controller is doing (recorded if it dies)."""
        if self.link is not None and kind == "step" and self.engine is not None:
            self.link.send("step", text=self.engine.progress.step or payload.get("type"))

    def lost(self, reason: str) -> None:
        if self.reason is not None:
            return
        self.reason = reason
        task = asyncio.get_running_loop().create_task(self._react(reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _react(self, reason: str) -> None:
        from .engine import EngineState, IllegalTransition

        loop = asyncio.get_running_loop()
        safe = loop.create_task(self.lab.safe_state(temperature=True))  # now, not after a DB write
        self._tasks.add(safe)
        engine = self.engine
        if engine is not None and engine.state in (EngineState.RUNNING, EngineState.PAUSING):
            with contextlib.suppress(IllegalTransition):
                await engine.request_pause(immediate=True, reason=f"{reason}, paused at once")
                loop.call_later(LOST_PAUSE_BOUND_S, self._bound)
                await self._hold_safe()
                return
        if engine is not None and engine.state is EngineState.ABORTING:
            loop.call_later(LOST_PAUSE_BOUND_S, self._bound)
            return  # already on its way to safe state
        await self.leave_now(reason)

    async def _hold_safe(self) -> None:
        """Until the engine has paused, safe state again every HOLD_S: a step being
        cancelled can still send its command after the first safe state (a syringe pump's
        start is several exchanges), which ran a pump for a second more."""
        from .engine import EngineState

        while self.engine.state in (EngineState.RUNNING, EngineState.PAUSING):
            await asyncio.sleep(HOLD_S)
            await self.lab.safe_state(temperature=True)

    def _bound(self) -> None:
        task = asyncio.get_running_loop().create_task(self.leave_now(self.reason or "lost"))
        self._tasks.add(task)

    async def leave_now(self, reason: str) -> None:
        """Safe state, one line, exit: the campaign stays as stored (resumable)."""
        self.reason = reason
        if self.lab is not None:
            await self.lab.safe_state(temperature=True)
        self.say("interrupted")
        os._exit(EXIT_SUPERVISOR_LOST)


def _scale_up_lines(db: Any, campaign_id: int) -> list[str]:
    """The scale-up report (docs/scale-up.md) in a few lines."""
    from robochem.storage.models import Campaign

    from ..scaleup import scale_up_report

    with db.session() as session:
        row = session.get(Campaign, campaign_id)
        summary = dict(row.summary or {}) if row is not None else {}
    if "scale_up" not in summary:
        return []
    r = scale_up_report(summary)

    def fmt(value: Any, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}g}"

    return [
        f"scale-up {r.get('status')}: {fmt(r.get('product_mmol'))} of "
        f"{fmt(r.get('target_mmol'))} mmol (from the NMR yields), "
        f"{fmt(r.get('collected_ml'))} mL collected in {r.get('collection_s', 0) / 60:.1f} min",
        f"mean yield {fmt(r['mean_yield_percent'], 3)} %, productivity "
        f"{fmt(r['productivity_mmol_h'])} mmol/h, space-time yield "
        f"{fmt(r['space_time_yield_mmol_l_h'])} mmol/(L h), {r.get('checks', 0)} NMR checks, "
        f"{len(r.get('segments', []))} segment(s)",
    ]


def _dump_tasks() -> None:
    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()}", file=sys.stderr)
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


class _LiveView:
    """Progress bar and results table, fed by the engine's events."""

    def __init__(self, engine: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.engine = engine
        self.live: Any = None
        self.rows: dict[int, dict[str, Any]] = {}
        self.step = ""
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[step]}"),
        )  # fmt: skip
        budget = engine.protocol.optimizer.budget
        if engine.protocol.scale_up is not None:
            budget = 1  # one scale-up run (its segments are repeats)
        self.task = self.progress.add_task("experiments", total=budget, step="")

    def on_event(self, kind: str, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        if kind == "experiment.running" and index is not None:
            self.rows[index] = {"status": "running", "conditions": payload["conditions"]}
        elif kind == "measurement":
            current = self.engine.progress.experiment_index
            if current in self.rows:
                self.rows[current].update(
                    qc=payload.get("status"),
                    **{m: payload.get(m) for m in measured()},
                )
        elif kind.startswith("experiment.") and index is not None:
            row = self.rows.setdefault(index, {"conditions": payload.get("conditions", {})})
            row["status"] = payload.get("status", kind.split(".", 1)[1])
            if "told" in payload:
                self.progress.update(self.task, completed=payload["told"])
        elif kind == "step":
            self.step = self.engine.progress.step or ""
        elif kind == "scaleup.check" and payload.get("yield") is not None:
            self.step = (
                f"{payload.get('phase')}: NMR yield {payload['yield']:.1f} %, "
                f"{payload.get('product_mmol', 0.0):.3g} mmol collected"
            )
        elif kind == "scaleup.report":
            self.step = (
                f"scale-up {payload.get('status')}: {payload.get('product_mmol', 0.0):.3g} mmol"
            )
            self.progress.update(self.task, completed=1)
        self.progress.update(self.task, step=self.step)
        if self.live is not None:
            self.live.update(self.render())

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table("#", "status", *self.engine.protocol.variables, "yield %", "QC")
        for index in sorted(self.rows)[-15:]:
            row = self.rows[index]
            values = [_fmt(row["conditions"].get(v)) for v in self.engine.protocol.variables]
            table.add_row(
                str(index), row.get("status", ""), *values, _fmt(row.get("yield")),
                row.get("qc") or "",
            )  # fmt: skip
        return Group(self.progress, table)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_dry_run(protocol: Any, platform: Any) -> None:
    """Plan the whole budget (the optimiser's space-filling design) on the timing model."""
    from rich.console import Console
    from rich.table import Table

    from robochem.optimizer import Optimizer

    from ..steps import InfeasibleConditions, plan_experiment, timing_model

    spec = protocol.to_optimizer_spec()
    budget = protocol.optimizer.budget
    spec["initial_experiments"] = budget
    points = Optimizer.from_spec(spec).ask(budget)
    total_s = 0.0
    use: dict[str, float] = {}
    skipped = 0
    for point in points:
        try:
            plan = plan_experiment(protocol, platform, point)
        except InfeasibleConditions:
            skipped += 1
            continue
        timing = timing_model(plan.steps, use_ml=plan.use_ml)
        total_s += timing.duration_s
        for stock, ml in timing.use_ml.items():
            use[stock] = use.get(stock, 0.0) + ml
    from ..checks import reagent_needs

    pumps = platform.fluidics.pumps
    bound = reagent_needs(protocol, platform)
    available = {name: pair[1] for name, pair in bound.items()}
    priming = {n: pumps[s.pump].dead_volume.value for n, s in protocol.stocks.items()}
    priming[protocol.solvent.name] = pumps[protocol.solvent.pump].dead_volume.value
    console = Console()
    planned = len(points) - skipped
    console.print(
        f"dry run of {protocol.metadata.name!r}: {planned} experiments "
        f"(space-filling design over the budget of {budget}"
        + (f"; {skipped} infeasible points skipped" if skipped else "")
        + ")"
    )
    hours = total_s / 3600
    mean_min = total_s / max(planned, 1) / 60
    console.print(f"estimated duration: {hours:.2f} h ({mean_min:.1f} min per experiment)")
    table = Table(
        "stock", "design use (mL)", "priming (mL)", "upper bound (mL)", "available (mL)",
        "left at worst (mL)",
    )  # fmt: skip
    for stock in available:
        need = use.get(stock, 0.0)
        upper = bound[stock][0]
        left = available[stock] - upper
        style = "red" if left < 0 else ""
        table.add_row(
            stock, f"{need:.3g}", f"{priming[stock]:.3g}", f"{upper:.4g}",
            f"{available[stock]:.4g}", f"[{style}]{left:.4g}[/]" if style else f"{left:.4g}",
        )  # fmt: skip
    console.print(table)
    console.print(
        "design use: the space-filling design over the whole budget; upper bound: every "
        f"experiment at the worst allowed conditions for that stock (constraints included), "
        f"x{budget}, plus priming and cleaning (repeats of rejected or interrupted experiments "
        "come on top)"
    )


# -- campaigns list ----------------------------------------------------------------------------


def campaign_rows(database: Any) -> list[dict[str, Any]]:
    """Campaigns newest first, with experiments done and the best value per objective
    (honouring each objective's goal: :mod:`robochem.storage.results`)."""
    from sqlalchemy import select

    from robochem.storage.models import Campaign
    from robochem.storage.results import best_results

    with database.session() as session:
        campaigns = session.scalars(
            select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())
        ).all()
        results = best_results(session, [c.id for c in campaigns])
        return [
            {
                "id": c.id,
                "name": c.name,
                "status": c.status,
                "experiments_done": results[c.id].experiments_done,
                "best": {name: b.value for name, b in results[c.id].objectives.items()},
                "best_experiment": {
                    name: b.experiment_index for name, b in results[c.id].objectives.items()
                },
                "best_problem": results[c.id].problem,
                "created_at": c.created_at.isoformat() if c.created_at else None,
                "reason": c.status_reason,
            }
            for c in campaigns
        ]


@campaigns_app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="One JSON array on stdout."),
    database: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
) -> None:
    """Campaigns, newest first: id, name, status, experiments done, best objective values."""
    from rich.console import Console
    from rich.table import Table

    from robochem.storage.db import open_database

    db = open_database(database)
    try:
        rows = campaign_rows(db)
    finally:
        db.dispose()
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("id", "name", "status", "done", "best")
    for r in rows:
        best = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) and math.isfinite(v) else f"{k} -"
            for k, v in r["best"].items()
        )
        table.add_row(str(r["id"]), r["name"], r["status"], str(r["experiments_done"]), best)
    console = Console()
    console.print(table)
    for r in rows:
        if r["best_problem"]:
            console.print(f"campaign {r['id']}: no best values: {r['best_problem']}", markup=False)


# -- export ------------------------------------------------------------------------------------


def export_rows(database: Any, campaign_id: int) -> tuple[list[str], list[list[Any]]]:
    """Header and one row per experiment: index, status, variables, measures, QC."""
    from sqlalchemy import select

    from robochem.storage.models import Campaign, Experiment

    from ..load import parse_protocol
    from ..model import Categorical
    from ..scaleup import VARIABLE_KINDS
    from ..units import KINDS

    with database.session() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise LookupError(f"no campaign {campaign_id}")
        protocol = parse_protocol(campaign.protocol_text, f"campaign {campaign_id}")
        variables = list(protocol.variables.items())
        header = ["index", "status"]
        for name, var in variables:
            kind = None if isinstance(var, Categorical) else VARIABLE_KINDS.get(var.type)
            header.append(f"{name} ({KINDS[kind].symbol})" if kind else name)
        columns = [m.column for m in measured().values() if m.column is not None]
        header += [m.header for m in measured().values()] + ["qc_status", "repeat_of", "reason"]
        experiments = session.scalars(
            select(Experiment)
            .where(Experiment.campaign_id == campaign_id)
            .order_by(Experiment.index)
        ).all()
        by_id = {e.id: e.index for e in experiments}
        rows = []
        for e in experiments:
            latest = max(e.measurements, key=lambda m: m.id) if e.measurements else None
            row: list[Any] = [e.index, e.status]
            row += [e.conditions.get(name) for name, _ in variables]
            row += [getattr(latest, col) if latest else None for col in columns]
            row += [
                latest.qc_status if latest else None,
                by_id.get(e.repeat_of_id) if e.repeat_of_id else None,
                e.status_reason,
            ]
            rows.append(row)
    return header, rows


def export_command(
    campaign_id: int = typer.Argument(..., help="Campaign id (robochem campaigns list)."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or xlsx."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output file (default: stdout for csv)."
    ),
    database: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
) -> None:
    """Export a campaign: one row per experiment (variables in canonical units, measures)."""
    if fmt not in ("csv", "xlsx"):
        raise typer.BadParameter("--format must be csv or xlsx")
    from robochem.storage.db import open_database

    db = open_database(database)
    try:
        header, rows = export_rows(db, campaign_id)
    except LookupError as exc:
        raise _fail(str(exc)) from None
    finally:
        db.dispose()
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        if out is None:
            typer.echo(buffer.getvalue(), nl=False)
        else:
            out.write_text(buffer.getvalue(), encoding="utf-8")
        return
    import pandas as pd

    target = out or Path(f"campaign-{campaign_id}.xlsx")
    pd.DataFrame(rows, columns=header).to_excel(target, index=False, sheet_name="experiments")
    typer.echo(str(target))
