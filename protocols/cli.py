"""``robochem validate`` and ``robochem schema``.

``validate`` exits 0 and prints a short summary, or exits 1 with one
``FILE:LINE:COLUMN: field.path: message`` line per problem on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["schema_command", "validate_command"]


def validate_command(
    protocol: Path = typer.Argument(..., help="Protocol file (YAML) to check."),
    platform: Path | None = typer.Option(
        None,
        "--platform",
        "-p",
        help="Platform file to check the protocol against (devices, limits, reagents). "
        "Without it only the protocol itself is checked.",
    ),
) -> None:
    """Check a protocol (against a platform) before anything moves."""
    from .errors import ProtocolError
    from .load import load_platform, load_protocol

    try:
        plat = load_platform(platform) if platform is not None else None
        proto = load_protocol(protocol, plat)
    except ProtocolError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        count = len(exc.issues)
        typer.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)
        raise typer.Exit(1) from None
    for line in summary_lines(proto, plat):
        typer.echo(line)


def schema_command(
    platform: bool = typer.Option(
        False, "--platform", help="Print the schema of platform files instead."
    ),
) -> None:
    """Print the JSON Schema of protocol files (for editor completion)."""
    from .schema import platform_json_schema, protocol_json_schema

    schema = platform_json_schema() if platform else protocol_json_schema()
    typer.echo(json.dumps(schema, indent=2, ensure_ascii=False))


def summary_lines(proto: object, plat: object | None) -> list[str]:
    """What a chemist checks at a glance: variables, budget, flows, reagent use."""
    from .checks import feasible_corners, reagent_needs
    from .model import Categorical, Protocol, SlugMode
    from .platform import Platform
    from .recipe import expand

    assert isinstance(proto, Protocol)
    mode = proto.execution
    mode_text = (
        f"slug of {mode.volume.text}"
        if isinstance(mode, SlugMode)
        else (f"steady state after {mode.reactor_volumes:g} reactor volumes")
    )
    lines = [f"protocol {proto.metadata.name!r}: OK ({mode_text})"]
    lines.append("variables:")
    for name, var in proto.variables.items():
        if isinstance(var, Categorical):
            lines.append(f"  {name}: one of {', '.join(map(str, var.choices))}")
        else:
            log = ", log scale" if var.log else ""
            lines.append(f"  {name} ({var.type}): {var.low.text} .. {var.high.text}{log}")
    opt = proto.optimizer
    lines.append(
        f"objectives: {', '.join(f'{n} ({o.canonical_goal})' for n, o in proto.objectives.items())}"
    )
    lines.append(
        f"budget: {opt.budget} experiments ({opt.initial_experiments} initial, "
        f"batches of {opt.batch_size})"
    )
    if plat is None:
        lines.append("no --platform given: devices, flow rates and reagents not checked")
        return lines
    assert isinstance(plat, Platform)
    recipes = [expand(proto, plat, c, check=False) for c in feasible_corners(proto)]
    if recipes:
        totals = [r.total_flow_ml_min for r in recipes]
        lines.append(
            f"platform {plat.name!r}: total flow {min(totals):.4g} .. {max(totals):.4g} mL/min"
        )
        pumps = sorted({p for r in recipes for p in r.pump_flows_ml_min})
        for pump in pumps:
            rates = [r.pump_flows_ml_min.get(pump, 0.0) for r in recipes]
            lines.append(f"  {pump}: {min(rates):.4g} .. {max(rates):.4g} mL/min")
        carriers = [r.carrier_flow_ml_min for r in recipes if r.carrier_flow_ml_min is not None]
        if carriers:
            lines.append(
                f"  {proto.solvent.pump} pushing the slug: {min(carriers):.4g} .. "
                f"{max(carriers):.4g} mL/min"
            )
    lines.append(
        "reagents for the budget (upper bound: every experiment at the worst allowed "
        "conditions for that stock, cleaning and priming included):"
    )
    for name, (needed, available) in reagent_needs(proto, plat).items():
        lines.append(f"  {name}: up to {needed:.4g} mL of {available:.4g} mL")
    return lines
