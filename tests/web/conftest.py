"""Fixtures for the dashboard tests (helpers live in dashboard_kit)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from dashboard_kit import World, client_for, make_world

from robochem.storage.db import upgrade


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (migrating takes most of a second)."""
    path = tmp_path_factory.mktemp("template") / "robochem.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def fast_sqlite_url(migrated_sqlite: Path, tmp_path: Path) -> str:
    target = tmp_path / "web.db"
    shutil.copyfile(migrated_sqlite, target)
    return f"sqlite:///{target}"


@pytest.fixture
def world(fast_sqlite_url: str) -> Iterator[World]:
    w = make_world(fast_sqlite_url, upgrade_schema=False)
    yield w
    w.database.dispose()


@pytest.fixture
def bare_world(fast_sqlite_url: str) -> Iterator[World]:
    """No lab and no engine attached."""
    w = make_world(fast_sqlite_url, lab=False, engine=False, upgrade_schema=False)
    yield w
    w.database.dispose()


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(world.app) as c:
        yield c
