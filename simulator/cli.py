"""``robochem reactions``: the virtual lab's chemistry as an oracle.

``list [--json] [--variants]`` shows the presets (and their substrate variants) with their
variables and documented optima;
``predict NAME --conditions JSON`` prints one JSON object with the noise-free outcome;
``optimum NAME`` reruns the dense search that produced the documented optima.
"""

from __future__ import annotations

import json
from typing import Any

import typer

reactions_app = typer.Typer(
    name="reactions",
    help="Reaction presets of the virtual lab: list them, predict outcomes, find optima.",
    no_args_is_help=True,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 10)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@reactions_app.command("list")
def list_presets(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    variants: bool = typer.Option(
        False, "--variants", help="Also list the substrate variants (<preset>-b)."
    ),
) -> None:
    """List the presets with their variables and documented optima."""
    from robochem.simulator.reactions import PRESETS, VARIANTS

    presets = [*PRESETS.values(), *(VARIANTS.values() if variants else ())]
    if as_json:
        typer.echo(json.dumps([p.describe() for p in presets], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for preset in presets:
        table = Table(title=f"{preset.name}: {preset.title}", title_justify="left")
        table.add_column("variable")
        table.add_column("unit")
        table.add_column("range / choices")
        for opt in ("yield", "throughput"):
            table.add_column(f"best {opt}")
        for var in preset.variables:
            rng = ", ".join(var.choices) if var.categorical else f"{var.low:g} - {var.high:g}"
            best = [
                str(preset.optima[o].conditions.get(var.name, "")) if o in preset.optima else ""
                for o in ("yield", "throughput")
            ]
            table.add_row(var.name, var.unit, rng, *best)
        for label, key in (
            ("yield %", "yield_percent"),
            ("throughput mmol/h", "throughput_mmol_h"),
        ):
            vals = [
                f"{getattr(preset.optima[o], key):.4g}" if o in preset.optima else ""
                for o in ("yield", "throughput")
            ]
            table.add_row(label, "", "", *vals)
        console.print(table)
        console.print(f"  read by {preset.nucleus} NMR; fixed: {dict(preset.fixed)}\n")


@reactions_app.command("predict")
def predict_cmd(
    name: str = typer.Argument(..., help="Preset name (see `robochem reactions list`)."),
    conditions: str = typer.Option(
        ..., "--conditions", "-c", help="JSON object, e.g. '{\"residence_time\": 10, ...}'"
    ),
    with_concentrations: bool = typer.Option(
        True, "--concentrations/--no-concentrations", help="Include outlet concentrations."
    ),
) -> None:
    """Print the model's noise-free outcome for CONDITIONS as one JSON object."""
    from robochem.simulator.reactions import ConditionsError, predict

    try:
        parsed = json.loads(conditions)
    except json.JSONDecodeError as exc:
        _fail(f"--conditions is not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        _fail("--conditions must be a JSON object of variable names to values")
    try:
        result = predict(name, parsed)
    except ConditionsError as exc:
        _fail(str(exc))
    if not with_concentrations:
        result.pop("concentrations")
    typer.echo(json.dumps(_jsonable(result)))


@reactions_app.command("optimum")
def optimum_cmd(
    name: str = typer.Argument(..., help="Preset name."),
    objective: str = typer.Option("both", help="yield, throughput or both."),
    samples: int = typer.Option(4096, help="Sobol points per categorical choice."),
    polish: int = typer.Option(6, help="Local searches from the best points."),
    seed: int = typer.Option(0, help="Seed of the scrambled Sobol design."),
) -> None:
    """Dense search (Sobol + Nelder-Mead) for the true optima; prints JSON."""
    from robochem.simulator.reactions import ConditionsError, find_optimum, get_preset

    if objective not in ("yield", "throughput", "both"):
        _fail(f"--objective must be yield, throughput or both, got {objective!r}")
    try:
        preset = get_preset(name)
    except ConditionsError as exc:
        _fail(str(exc))
    objectives = ["yield", "throughput"] if objective == "both" else [objective]
    out = {}
    for obj in objectives:
        opt = find_optimum(preset, obj, n_samples=samples, n_polish=polish, seed=seed)
        out[obj] = opt.describe()
    typer.echo(json.dumps(out, indent=2))
