"""A database that vanishes or changes under a process is noticed at the next commit."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from robochem.storage.db import Database, StorageError
from robochem.storage.models import Campaign


def _add_campaign(db: Database, name: str = "c") -> None:
    with db.session() as s:
        s.add(Campaign(name=name, protocol_text="x", protocol_sha256="0" * 64))


def test_sqlite_file_deleted_while_open_fails_the_next_commit(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    db = Database(f"sqlite:///{path}")
    _add_campaign(db)
    path.unlink()  # the open connection goes on writing into the unlinked inode
    with pytest.raises(StorageError, match=r"lab\.db was deleted while in use") as info:
        _add_campaign(db, "lost")
    assert str(path) in str(info.value)
    with pytest.raises(StorageError, match="deleted"):
        db.verify()
    db.dispose()


def test_sqlite_file_replaced_by_another_is_not_written_to_silently(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    db = Database(f"sqlite:///{path}")
    _add_campaign(db)
    other = tmp_path / "other.db"
    Database(f"sqlite:///{other}").dispose()
    shutil.copy(path, other)
    os.replace(other, path)  # same name, different file
    with pytest.raises(StorageError, match="replaced by another file"):
        _add_campaign(db, "where?")
    db.dispose()


def test_a_healthy_sqlite_database_verifies(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'lab.db'}")
    _add_campaign(db)
    db.verify()
    with db.session() as s:
        assert s.scalars(select(Campaign.name)).all() == ["c"]
    db.dispose()


def test_postgres_database_dropped_and_recreated_is_noticed(postgres_url: str) -> None:
    db = Database(postgres_url)
    db.verify()  # remembers the server and the database
    _add_campaign(db)
    db.dispose()  # let the drop go through without FORCE-killing our pool mid-test
    name = make_url(postgres_url).database
    admin = create_engine(
        make_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    with pytest.raises(StorageError, match="not the one opened"):
        db.verify()
    db.dispose()
