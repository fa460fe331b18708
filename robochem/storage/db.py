"""Engines, sessions and schema upgrades for SQLite and PostgreSQL.

SQLite runs in WAL mode (readers never block the engine's writer) with foreign keys on;
both are set on every new connection because SQLite does not remember them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; creates the folder of an SQLite file if needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)}: "
        "use sqlite:///FILE or postgresql+psycopg://USER:PASSWORD@HOST/DB"
    )


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # '%' is alembic's interpolation character; a password may contain it.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    from alembic import command

    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return heads[0]


@dataclass(frozen=True)
class DatabaseInfo:
    url: str  # password hidden
    backend: str
    revision: str | None
    head: str
    tables: dict[str, int]

    @property
    def up_to_date(self) -> bool:
        return self.revision == self.head


def database_info(url: str) -> DatabaseInfo:
    from alembic.runtime.migration import MigrationContext

    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
            from robochem.storage.models import Base

            present = set(inspect(connection).get_table_names())
            counts = {
                name: connection.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one()
                for name in sorted(Base.metadata.tables)
                if name in present
            }
    finally:
        engine.dispose()
    parsed = make_url(url)
    return DatabaseInfo(
        url=parsed.render_as_string(hide_password=True),
        backend=parsed.get_backend_name(),
        revision=revision,
        head=head_revision(),
        tables=counts,
    )


class Database:
    """An engine and a session factory; migrations are applied when it opens."""

    def __init__(self, url: str, *, upgrade_schema: bool = True) -> None:
        self.url = url
        if upgrade_schema:
            upgrade(url)
        self.engine = create_db_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str | None = None, *, upgrade_schema: bool = True) -> Database:
    """The database named by ``url`` or by settings, migrated to the current schema."""
    if url is None:
        from robochem.settings import get_settings

        url = get_settings().database_url
    return Database(url, upgrade_schema=upgrade_schema)
