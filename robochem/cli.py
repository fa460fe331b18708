"""The ``robochem`` command line.

Sub-commands live next to the code they drive and are registered here, so this file
stays a table of contents. Each issue adds its own commands (``nmr``, ``sim``, ...).
"""

from __future__ import annotations

from pathlib import Path

import typer

from robochem import __version__

app = typer.Typer(
    name="robochem",
    help="A self-driving photochemistry lab: simulate, run, analyse and watch campaigns.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"robochem {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
    log_level: str | None = typer.Option(
        None, "--log-level", help="DEBUG, INFO, WARNING or ERROR (overrides ROBOCHEM_LOG_LEVEL)."
    ),
) -> None:
    from robochem.logs import configure_logging

    configure_logging(log_level)
    if log_level:  # a supervised controller (a child process) logs at the same level
        import os

        os.environ["ROBOCHEM_LOG_LEVEL"] = log_level


@app.command("sim")
def sim(
    as_json: bool = typer.Option(
        False, "--json", help="Print device name -> {driver, url} as the first line of stdout."
    ),
    platform_out: Path | None = typer.Option(
        None, "--platform-out", help="Write the platform file pointing the drivers here."
    ),
    speed: float = typer.Option(
        1.0, "--speed", min=0.001, help="Clock factor: simulated seconds per wall second."
    ),
    reaction: str = typer.Option(
        "hat-alkylation", "--reaction", help="The reaction preset (robochem reactions list)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for noise, phase errors and drift."),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        help="Schedule a fault: KIND@SECONDS[:key=value,...], e.g. "
        "lamp_degradation@600:percent_per_hour=30 or blockage@1800:segment=transfer. "
        "Repeatable.",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where the simulated NMR writes its data folders."
    ),
    until_stdin_closes: bool = typer.Option(
        False, "--until-stdin-closes", hidden=True, help="Stop 10 s after stdin closes."
    ),
) -> None:
    """Start the reference simulated lab on localhost until Ctrl-C or SIGTERM."""
    from robochem.simulator.reactions import ConditionsError, get_preset
    from robochem.simulator.runner import sim_command
    from robochem.simulator.world import parse_fault

    try:
        get_preset(reaction)
        faults = [parse_fault(text) for text in fault]
    except (ConditionsError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    sim_command(
        as_json=as_json,
        platform_out=platform_out,
        speed=speed,
        data_dir=data_dir,
        reaction=reaction,
        seed=seed,
        faults=faults,
        until_stdin_closes=until_stdin_closes,
    )


@app.command("demo")
def demo(
    speed: float = typer.Option(
        300.0, "--speed", min=0.001, help="Clock factor of the simulated lab."
    ),
    reaction: str = typer.Option("hat-alkylation", "--reaction", help="Reaction preset."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated lab."),
    host: str | None = typer.Option(None, "--host", help="Bind address (ROBOCHEM_HOST)."),
    port: int | None = typer.Option(None, "--port", help="Port (ROBOCHEM_PORT)."),
) -> None:
    """The simulated lab, the engine running an example campaign, and the dashboard."""
    from robochem.settings import get_settings
    from robochem.web.serve import demo_command

    settings = get_settings()
    code = demo_command(
        host=host or settings.host,
        port=port or settings.port,
        speed=speed,
        reaction=reaction,
        seed=seed,
    )
    raise typer.Exit(code)


@app.command("serve")
def serve(
    platform: Path = typer.Option(..., "--platform", help="Platform file (devices, fluidics)."),
    host: str | None = typer.Option(None, "--host", help="Bind address (ROBOCHEM_HOST)."),
    port: int | None = typer.Option(None, "--port", help="Port (ROBOCHEM_PORT)."),
) -> None:
    """Connect a platform's devices and serve the dashboard (campaigns run from it)."""
    from robochem.settings import get_settings
    from robochem.web.serve import serve_command

    settings = get_settings()
    code = serve_command(platform, host=host or settings.host, port=port or settings.port)
    raise typer.Exit(code)


def _register_subcommands() -> None:
    """Attach the sub-command groups. Imports stay lazy inside each group's callbacks."""
    from robochem.storage.cli import db_app

    app.add_typer(db_app, name="db")
    from robochem.simulator.cli import reactions_app

    app.add_typer(reactions_app, name="reactions")
    from robochem.web.cli import user_app

    app.add_typer(user_app, name="user")
    # -- further groups are registered below by the issues that build them --
    from robochem.protocols.cli import schema_command, validate_command

    app.command("validate")(validate_command)
    app.command("schema")(schema_command)
    from robochem.analysis.cli import nmr_app

    app.add_typer(nmr_app, name="nmr")
    from robochem.protocols.runtime.run_cli import campaigns_app, export_command, run_command

    app.command("run")(run_command)
    app.command("export")(export_command)
    app.add_typer(campaigns_app, name="campaigns")
    from robochem.protocols.runtime.scaleup_cli import scale_up_command

    app.command("scale-up")(scale_up_command)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
