"""Fixtures shared by every test: isolated settings, a fresh database on each backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from robochem import clock as clock_module
from robochem.settings import reset_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test reads the developer's settings file, database or environment."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith("ROBOCHEM_") and not name.startswith("ROBOCHEM_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    reset_settings()
    clock_module.set_clock(None)
    yield
    reset_settings()
    clock_module.set_clock(None)


def _postgres_admin_url() -> str | None:
    return os.environ.get("ROBOCHEM_TEST_POSTGRES_URL")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'robochem.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    admin = _postgres_admin_url()
    if not admin:
        message = "ROBOCHEM_TEST_POSTGRES_URL is not set (scripts/test sets it)"
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests must run in CI: {message}")
        pytest.skip(message)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"robochem_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")
