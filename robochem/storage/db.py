"""Engines, sessions and schema upgrades for SQLite and PostgreSQL.

SQLite runs in WAL mode (readers never block the engine's writer) with foreign keys on;
both are set on every new connection because SQLite does not remember them.

A database can vanish under a running process: an SQLite file deleted or replaced keeps
accepting commits into the unlinked inode, so a run "completes" and nothing is left. Every
session therefore checks, after its commit, that the SQLite file is still the one opened;
:meth:`Database.verify` also checks a PostgreSQL server's identity. Whatever goes wrong in
storage reaches the caller as one :class:`StorageError` line naming the database.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
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


class StorageError(RuntimeError):
    """The database cannot be trusted with more data: gone, replaced, full, unwritable or
    unreachable. ``str()`` is one line naming the database and the problem."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"database {url}: {problem}")
        self.url = url
        self.problem = problem


def storage_error(database: Database, exc: BaseException) -> StorageError:
    """``exc`` (from SQLAlchemy, the driver or the file system) as a :class:`StorageError`."""
    if isinstance(exc, StorageError):
        return exc
    detail = getattr(exc, "orig", None) or exc  # the DBAPI's own message, without the SQL
    first = str(detail).strip().splitlines()[0] if str(detail).strip() else type(exc).__name__
    return StorageError(database.display_url, first)


def is_storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the database failed (rather than a bug in the caller)."""
    return isinstance(exc, StorageError | SQLAlchemyError)


@dataclass(frozen=True)
class _SqliteFile:
    path: Path
    device: int
    inode: int


class Database:
    """An engine and a session factory; migrations are applied when it opens."""

    def __init__(self, url: str, *, upgrade_schema: bool = True) -> None:
        self.url = url
        self.display_url = make_url(url).render_as_string(hide_password=True)
        if upgrade_schema:
            upgrade(url)
        self.engine = create_db_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._file = self._sqlite_file()
        self._server: tuple[Any, ...] | None = None

    # -- identity -----------------------------------------------------------------------------
    def _sqlite_file(self) -> _SqliteFile | None:
        parsed = make_url(self.url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        path = Path(parsed.database).expanduser().resolve()
        with self.engine.connect():  # creates the file when the schema was not upgraded
            pass
        st = path.stat()
        return _SqliteFile(path, st.st_dev, st.st_ino)

    def _check_file(self) -> None:
        """Cheap (one stat): the SQLite file is still the one opened, and writable."""
        f = self._file
        if f is None:
            return
        try:
            st = f.path.stat()
        except FileNotFoundError:
            raise StorageError(
                self.display_url, f"the file {f.path} was deleted while in use"
            ) from None
        except OSError as exc:
            raise StorageError(self.display_url, f"cannot stat {f.path}: {exc}") from None
        if (st.st_dev, st.st_ino) != (f.device, f.inode):
            raise StorageError(
                self.display_url, f"the file {f.path} was replaced by another file while in use"
            )
        if not os.access(f.path, os.W_OK):
            raise StorageError(self.display_url, f"the file {f.path} is no longer writable")

    def _server_identity(self) -> tuple[Any, ...]:
        with self.engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT current_database(), (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                )
            ).one()
            try:
                system = connection.execute(
                    text("SELECT system_identifier FROM pg_control_system()")
                ).scalar_one()
            except SQLAlchemyError:  # a role without access: the database's oid must do
                system = None
        return (system, *row)

    def verify(self) -> None:
        """Raise :class:`StorageError` unless this is still the database that was opened
        (SQLite: same file, same inode, writable; PostgreSQL: same server and database)."""
        self._check_file()
        if make_url(self.url).get_backend_name() != "postgresql":
            return
        try:
            identity = self._server_identity()
        except SQLAlchemyError as exc:
            raise storage_error(self, exc) from None
        if self._server is None:
            self._server = identity
        elif identity != self._server:
            raise StorageError(
                self.display_url,
                "the server or database answering is not the one opened (system identifier, "
                f"database or its oid changed: {self._server} -> {identity})",
            )

    # -- sessions -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error. After the commit the
        SQLite file is checked: a commit into a deleted file raises :class:`StorageError`."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
        self._check_file()

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str | None = None, *, upgrade_schema: bool = True) -> Database:
    """The database named by ``url`` or by settings, migrated to the current schema."""
    if url is None:
        from robochem.settings import get_settings

        url = get_settings().database_url
    return Database(url, upgrade_schema=upgrade_schema)
