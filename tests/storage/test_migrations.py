import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from robochem.storage.db import Database, database_info, head_revision, upgrade
from robochem.storage.models import Campaign, Event, Experiment

EXPECTED_TABLES = {
    "platforms",
    "devices",
    "campaigns",
    "experiments",
    "measurements",
    "events",
    "users",
    "api_tokens",
}


def test_upgrade_creates_every_table_on_a_fresh_database(db_url: str) -> None:
    upgrade(db_url)
    info = database_info(db_url)
    assert info.revision == head_revision() and info.up_to_date
    assert set(info.tables) >= EXPECTED_TABLES
    assert all(count == 0 for count in info.tables.values())


def test_upgrade_is_idempotent_and_keeps_data(db_url: str) -> None:
    db = Database(db_url)
    with db.session() as s:
        s.add(Campaign(name="c1", protocol_text="x", protocol_sha256="0" * 64))
    db.dispose()
    upgrade(db_url)
    assert database_info(db_url).tables["campaigns"] == 1


def test_downgrade_to_base_and_back(db_url: str) -> None:
    from alembic import command

    from robochem.storage.db import alembic_config

    upgrade(db_url)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        cfg = alembic_config(db_url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    with engine.connect() as conn:
        assert not EXPECTED_TABLES & set(inspect(conn).get_table_names())
    engine.dispose()
    upgrade(db_url)
    assert database_info(db_url).up_to_date


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    db.dispose()


def test_foreign_keys_are_enforced(db_url: str) -> None:
    db = Database(db_url)
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Experiment(campaign_id=12345, index=0, conditions={}))
    db.dispose()


def test_experiment_index_is_unique_within_a_campaign(db_url: str) -> None:
    db = Database(db_url)
    with db.session() as s:
        c = Campaign(name="c", protocol_text="x", protocol_sha256="0" * 64)
        s.add(c)
        s.flush()
        s.add(Experiment(campaign_id=c.id, index=0, conditions={"t": 1}))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Experiment(campaign_id=c.id, index=0, conditions={"t": 2}))
    db.dispose()


def test_events_cannot_be_changed_or_deleted(db_url: str) -> None:
    import datetime as dt

    db = Database(db_url)
    with db.session() as s:
        s.add(Event(time=dt.datetime.now(dt.UTC), source="test", kind="k", payload={"a": 1}))
    for statement in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    db.dispose()


def test_json_and_timezones_round_trip(db_url: str) -> None:
    import datetime as dt

    db = Database(db_url)
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with db.session() as s:
        c = Campaign(
            name="c",
            protocol_text="x",
            protocol_sha256="0" * 64,
            started_at=when,
            summary={"best": {"yield": 81.5}, "names": ["a", "b"]},
        )
        s.add(c)
    with db.session() as s:
        got = s.get(Campaign, c.id)
        assert got is not None
        assert got.started_at == when and got.started_at.tzinfo is not None
        assert got.summary == {"best": {"yield": 81.5}, "names": ["a", "b"]}
    db.dispose()
