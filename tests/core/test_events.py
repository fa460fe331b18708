import asyncio

import pytest
from sqlalchemy import select
from wire import WAIT_S, wait_until

from robochem.clock import Clock
from robochem.events import EventBus
from robochem.storage.db import Database
from robochem.storage.models import Campaign
from robochem.storage.models import Event as EventRow


@pytest.fixture
def database(db_url: str):
    db = Database(db_url)
    yield db
    db.dispose()


async def test_events_are_persisted_in_publish_order(database: Database) -> None:
    bus = EventBus(database, clock=Clock(speed=1))
    published = await asyncio.gather(
        *(bus.publish("pump-a", "reading", {"n": i}) for i in range(30))
    )
    with database.session() as s:
        rows = s.scalars(select(EventRow).order_by(EventRow.id)).all()
    assert [r.payload["n"] for r in rows] == [e.payload["n"] for e in published]
    assert [r.id for r in rows] == sorted(e.id for e in published)
    times = [r.time for r in rows]
    assert times == sorted(times)


async def test_a_subscriber_sees_only_stored_events_in_order(database: Database) -> None:
    bus = EventBus(database)
    seen: list[int] = []
    with bus.subscribe(lambda e: e.kind == "state") as sub:
        for i in range(5):
            await bus.publish("engine", "state", {"i": i})
            await bus.publish("pump", "reading", {"i": i})
        for _ in range(5):
            event = await asyncio.wait_for(sub.get(), 1)
            with database.session() as s:  # already in the database when delivered
                assert s.get(EventRow, event.id) is not None
            seen.append(event.payload["i"])
    assert seen == [0, 1, 2, 3, 4]


async def test_stream_replays_history_then_continues_live(database: Database) -> None:
    bus = EventBus(database)
    with database.session() as s:
        campaign = Campaign(name="c", protocol_text="x", protocol_sha256="0" * 64)
        s.add(campaign)
    first = await bus.publish("engine", "started", campaign_id=campaign.id)
    await bus.publish("engine", "step", {"n": 1}, campaign_id=campaign.id)

    received: list[str] = []

    async def consume() -> None:
        async for event in bus.stream(after_id=first.id - 1):
            received.append(event.kind)
            if len(received) == 3:
                return

    task = asyncio.create_task(consume())
    await wait_until(lambda: len(received) == 2)  # the stored ones: the stream is live now
    await bus.publish("engine", "finished", campaign_id=campaign.id)
    await asyncio.wait_for(task, WAIT_S)
    assert received == ["started", "step", "finished"]
    assert [e.kind for e in bus.history(campaign_id=campaign.id)] == received


async def test_slow_subscriber_loses_oldest_events_and_is_told(database: Database) -> None:
    bus = EventBus(database)
    with bus.subscribe(maxsize=3) as sub:
        for i in range(5):
            await bus.publish("sensor", "reading", {"i": i})
        assert sub.lagged == 2
        assert [(await sub.get()).payload["i"] for _ in range(3)] == [2, 3, 4]
