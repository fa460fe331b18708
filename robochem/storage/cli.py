"""``robochem db upgrade`` and ``robochem db info``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

db_app = typer.Typer(help="Create, upgrade and inspect the database.", no_args_is_help=True)
console = Console()


def _url(url: str | None) -> str:
    if url:
        return url
    from robochem.settings import get_settings

    return get_settings().database_url


@db_app.command("upgrade")
def upgrade_command(
    url: str | None = typer.Option(None, "--url", help="Database URL (default: settings)."),
) -> None:
    """Apply all migrations (creates the database if it does not exist)."""
    from robochem.storage.db import database_info, upgrade

    target = _url(url)
    upgrade(target)
    info = database_info(target)
    console.print(f"[green]database at revision {info.revision}[/green] ({info.url})")


@db_app.command("info")
def info_command(
    url: str | None = typer.Option(None, "--url", help="Database URL (default: settings)."),
) -> None:
    """Show where the database is, its schema revision and row counts."""
    from robochem.storage.db import database_info

    info = database_info(_url(url))
    console.print(f"database: {info.url}")
    console.print(f"backend:  {info.backend}")
    state = "[green]up to date[/green]" if info.up_to_date else "[yellow]needs upgrade[/yellow]"
    console.print(f"revision: {info.revision or '(empty)'} (head {info.head}) {state}")
    if info.tables:
        table = Table("table", "rows")
        for name, count in info.tables.items():
            table.add_row(name, str(count))
        console.print(table)
    if not info.up_to_date:
        raise typer.Exit(1)
