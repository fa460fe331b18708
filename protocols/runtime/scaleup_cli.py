"""``robochem scale-up CAMPAIGN_ID --amount "5 mmol"``: write a scale-up protocol.

The protocol is the campaign's own, with a ``scale_up`` section for its best experiment
(by ``--objective``), validated against the platform like any protocol: exit 0 with a summary
on stderr, or exit 1 with every problem as ``FILE:LINE:COLUMN: field: message`` (the file is
still written with ``--out``, to be edited and checked with ``robochem validate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

__all__ = ["scale_up_command", "scale_up_summary"]

SIMULATED_PLATFORM = Path(__file__).resolve().parent.parent / "platforms" / "simulated.yaml"


def _platform_for(database: Any, campaign_id: int, given: Path | None) -> Path:
    if given is not None:
        return given
    from robochem.storage.models import Campaign

    with database.session() as session:
        campaign = session.get(Campaign, campaign_id)
        name = (campaign.summary or {}).get("platform") if campaign is not None else None
    if name == "simulated-lab":
        return SIMULATED_PLATFORM
    raise typer.BadParameter(
        f"campaign {campaign_id} ran on platform {name!r}: give its file with --platform",
        param_hint="--platform",
    )


def scale_up_command(
    campaign_id: int = typer.Argument(..., help="A completed campaign (robochem campaigns list)."),
    amount: str = typer.Option(..., "--amount", "-a", help="Product to make, e.g. '5 mmol'."),
    objective: str = typer.Option(
        "yield", "--objective", help="Which best experiment to run: 'yield' or 'throughput'."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write here (default: stdout)."),
    platform: Path | None = typer.Option(
        None,
        "--platform",
        "-p",
        help="Platform file to validate against (default for campaigns of the simulated lab: "
        "protocols/platforms/simulated.yaml).",
    ),
    check_every: str | None = typer.Option(
        None, "--check-every", help="NMR check interval (default: the residence time, >= 5 min)."
    ),
    on_drift: str = typer.Option(
        "pause", "--on-drift", help="When the yield drifts: 'pause' or 'stop' the run."
    ),
    database: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
) -> None:
    """Write a scale-up protocol: a campaign's best conditions run continuously."""
    from robochem.storage.db import open_database

    from ..errors import ProtocolError
    from ..load import load_platform, parse_protocol
    from ..scaleup import scale_up_protocol_text
    from ..units import UnitError, parse_quantity
    from .scaleup import choose_experiment

    if objective not in ("yield", "throughput"):
        raise typer.BadParameter("must be 'yield' or 'throughput'", param_hint="--objective")
    if on_drift not in ("pause", "stop"):
        raise typer.BadParameter("must be 'pause' or 'stop'", param_hint="--on-drift")
    try:
        amount_mmol = parse_quantity(amount, "amount")
        check_s = parse_quantity(check_every, "time") if check_every is not None else None
    except UnitError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not amount_mmol > 0:
        raise typer.BadParameter(f"{amount!r} must be more than 0 mmol", param_hint="--amount")
    db = open_database(database)
    try:
        try:
            chosen = choose_experiment(db, campaign_id, objective)
        except (LookupError, ValueError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        platform_file = _platform_for(db, campaign_id, platform)
    finally:
        db.dispose()
    try:
        plat = load_platform(platform_file)
        text = scale_up_protocol_text(
            chosen, amount_mmol, plat, objective=objective, check_every_s=check_s,
            on_drift=on_drift,
        )  # fmt: skip
    except ProtocolError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    name = str(out) if out is not None else "<scale-up>"
    if out is not None:
        out.write_text(text, encoding="utf-8")
    try:
        protocol = parse_protocol(text, name, plat)
    except ProtocolError as exc:
        if out is None:
            typer.echo(text, nl=False)
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        typer.echo(
            f"{len(exc.issues)} problem(s): the scale-up cannot run as written"
            + (f"; edit {out} and check it with robochem validate" if out else ""),
            err=True,
        )
        raise typer.Exit(1) from None
    if out is None:
        typer.echo(text, nl=False)
    for line in scale_up_summary(protocol, plat):
        typer.echo(line, err=True)


def scale_up_summary(protocol: Any, platform: Any) -> list[str]:
    """What the operator checks before starting: conditions, times, flows, reagents."""
    from ..scaleup import plan_scale_up

    su = protocol.scale_up
    plan = plan_scale_up(protocol, platform)
    pumps = platform.fluidics.pumps
    dead = {n: pumps[s.pump].dead_volume.value for n, s in protocol.stocks.items()}
    dead[protocol.solvent.name] = pumps[protocol.solvent.pump].dead_volume.value
    needs = plan.needs_ml(dead)
    segments = plan.segments_needed()
    needs[protocol.solvent.name] = needs.get(protocol.solvent.name, 0.0) + segments * plan.flush_ml
    conditions = ", ".join(f"{k} {v}" for k, v in su.conditions.items())
    lines = [
        f"scale-up {protocol.metadata.name!r}: OK",
        f"  conditions: {conditions}",
        f"  {su.amount.text} at {su.expected_yield.text} yield, {su.expected_throughput.text}: "
        f"{plan.run_time_s / 3600:.2f} h of collection "
        f"(at most {plan.max_run_time_s / 3600:.2f} h)",
        f"  total flow {plan.flow_ml_min:.4g} mL/min; start-up to waste {plan.min_wait_s / 60:.0f}"
        f"..{plan.startup_max_s / 60:.0f} min (steady state: {plan.agree} NMR yields within "
        f"{plan.agree_tolerance:g} %)",
        f"  NMR check every {plan.check_every_s / 60:.0f} min; yield drift beyond "
        f"{plan.drift_tolerance:g} % -> {plan.on_drift}",
    ]
    if segments > 1:
        syringes = ", ".join(f"{p} ({c:g} mL)" for p, (_, c) in sorted(plan.syringes.items()))
        lines.append(f"  syringe refills: {segments - 1} (the run pauses for them: {syringes})")
    lines.append("  reagents (worst case, priming included):")
    for name, need in needs.items():
        given = (
            protocol.stocks[name].available
            if name in protocol.stocks
            else protocol.solvent.available
        )
        lines.append(f"    {name}: up to {need:.4g} mL of {given.value:.4g} mL")
    return lines
