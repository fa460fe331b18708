"""``robochem nmr``: analyse Spinsolve folders from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer

nmr_app = typer.Typer(
    help="NMR analysis: raw Spinsolve FID → yield against an internal standard.",
    no_args_is_help=True,
)


@nmr_app.callback()
def _group() -> None:
    """NMR analysis commands."""


@nmr_app.command("analyze")
def analyze(
    folder: Path = typer.Argument(..., help="Spinsolve experiment folder (or a .1d/.dx file)."),
    config: Path = typer.Option(
        ...,
        "--config",
        "-c",
        help="YAML with the analysis block (or a protocol file with an 'analysis:' key).",
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Write the spectrum to this PNG."),
    flow_rate: float | None = typer.Option(
        None, "--flow-rate", help="Flow rate in mL/min, for throughput in mmol/h."
    ),
    expected_is_integral: float | None = typer.Option(
        None, "--expected-is-integral", help="Expected internal-standard integral (QC)."
    ),
    with_spectrum: bool = typer.Option(
        False, "--with-spectrum", help="Include the decimated spectrum in the JSON."
    ),
    indent: int | None = typer.Option(None, "--indent", help="Pretty-print the JSON."),
) -> None:
    """Print the analysis result as one JSON object ("yield" in percent, null if rejected)."""
    from pydantic import ValidationError

    from robochem.analysis.config import AnalysisConfig
    from robochem.analysis.pipeline import analyze_folder

    try:
        cfg = AnalysisConfig.from_yaml(config)
    except (OSError, ValidationError, ValueError) as exc:
        typer.echo(f"error: invalid analysis config {config}: {exc}", err=True)
        raise typer.Exit(2) from None
    result = analyze_folder(
        folder, cfg, flow_rate_ml_min=flow_rate, expected_is_integral=expected_is_integral
    )
    if plot is not None:
        from robochem.analysis.plot import plot_result

        plot_result(result, plot)
    typer.echo(json.dumps(result.to_dict(include_plot=with_spectrum), indent=indent))
