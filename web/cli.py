"""``robochem user add|token|list``: dashboard accounts and API tokens."""

from __future__ import annotations

import sys

import typer

user_app = typer.Typer(
    help="Dashboard users (viewer, operator, admin) and their API tokens.", no_args_is_help=True
)


def _database():
    from robochem.storage.db import open_database

    return open_database()


@user_app.command("add")
def add_command(
    name: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option("viewer", "--role", help="viewer, operator or admin."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
) -> None:
    """Create a user (the password is asked for twice unless --password-stdin)."""
    from robochem.web.auth import UserError, check_role, create_user

    try:
        check_role(role)
    except UserError as error:
        raise typer.BadParameter(str(error), param_hint="--role") from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    database = _database()
    try:
        with database.session() as session:
            user = create_user(session, name, role, password)
            typer.echo(f"added user {user.name} ({user.role})")
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        database.dispose()


@user_app.command("token")
def token_command(
    name: str = typer.Argument(..., help="The user the token acts as."),
    label: str = typer.Option("cli", "--name", help="A label to recognise the token by."),
) -> None:
    """Create an API token and print it once (it is stored only as a hash)."""
    from robochem.web.auth import UserError, get_user, new_api_token

    database = _database()
    try:
        with database.session() as session:
            user = get_user(session, name)
            _row, plain = new_api_token(session, user, label)
        typer.echo(plain)
        typer.echo(
            f"token {label!r} for {name} ({user.role}); it will not be shown again", err=True
        )
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        database.dispose()


@user_app.command("set")
def set_command(
    name: str = typer.Argument(..., help="The user to change."),
    role: str | None = typer.Option(None, "--role", help="viewer, operator or admin."),
    disabled: bool | None = typer.Option(
        None, "--disable/--enable", help="Lock the user out (sessions and tokens) or let back in."
    ),
    password: bool = typer.Option(False, "--password", help="Ask for a new password."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the new password from stdin."
    ),
) -> None:
    """Change a user's role, lock them out, or set a new password (ends their sessions)."""
    from robochem.web.auth import MIN_PASSWORD, UserError, check_role, get_user, hash_password

    new_password = None
    if password_stdin:
        new_password = sys.stdin.readline().rstrip("\r\n")
    elif password:
        new_password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    if new_password is not None and len(new_password) < MIN_PASSWORD:
        typer.echo(f"error: password too short: at least {MIN_PASSWORD} characters", err=True)
        raise typer.Exit(1)
    database = _database()
    try:
        with database.session() as session:
            user = get_user(session, name)
            if role is not None:
                user.role = check_role(role).value
            if disabled is not None:
                user.disabled = disabled
            if new_password is not None:
                user.password_hash = hash_password(new_password)
            state = "disabled" if user.disabled else "active"
            typer.echo(f"{user.name}: {user.role}, {state}")
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        database.dispose()


@user_app.command("list")
def list_command() -> None:
    """Users with their role, state and number of active tokens."""
    from rich.console import Console
    from rich.table import Table

    from robochem.web.auth import list_users

    database = _database()
    try:
        with database.session() as session:
            table = Table("name", "role", "state", "tokens", "created")
            for user in list_users(session):
                active = sum(1 for t in user.tokens if not t.revoked)
                state = "disabled" if user.disabled else "active"
                created = user.created_at.strftime("%Y-%m-%d %H:%M")
                table.add_row(user.name, user.role, state, str(active), created)
        Console().print(table)
    finally:
        database.dispose()
