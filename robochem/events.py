"""The event bus: every event is persisted first, then published to subscribers.

In-process asyncio publish/subscribe. ``publish`` writes the event to the events table
(so nothing shown was not stored) and then hands it to every subscriber whose filter
matches. Subscribers get their own bounded queue; a subscriber that falls behind loses
its oldest events and is told so (``lagged``), rather than stalling the lab. Streams can
start from the stored history (``history(after_id=...)``) and continue live.

Events are for watching the lab (dashboard, logs), not for commanding it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from robochem.clock import Clock, get_clock
from robochem.storage.db import Database
from robochem.storage.models import Event as EventRow

log = logging.getLogger("robochem.events")


@dataclass(frozen=True)
class Event:
    id: int
    time: dt.datetime
    source: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    campaign_id: int | None = None
    experiment_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "source": self.source,
            "kind": self.kind,
            "payload": self.payload,
            "campaign_id": self.campaign_id,
            "experiment_id": self.experiment_id,
        }

    @classmethod
    def from_row(cls, row: EventRow) -> Event:
        return cls(
            id=row.id,
            time=row.time,
            source=row.source,
            kind=row.kind,
            payload=dict(row.payload or {}),
            campaign_id=row.campaign_id,
            experiment_id=row.experiment_id,
        )


EventFilter = Callable[[Event], bool]


class Subscription:
    """An async iterator of events; ``lagged`` counts events dropped for slowness."""

    def __init__(self, bus: EventBus, where: EventFilter | None, maxsize: int) -> None:
        self._bus = bus
        self._where = where
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.lagged = 0

    def offer(self, event: Event) -> None:
        if self._where is not None and not self._where(event):
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.lagged += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    def close(self) -> None:
        self._bus._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self, database: Database, *, clock: Clock | None = None) -> None:
        self.database = database
        self.clock = clock or get_clock()
        self._subscribers: set[Subscription] = set()
        # One writer at a time keeps event ids in publish order.
        self._lock = asyncio.Lock()

    def subscribe(self, where: EventFilter | None = None, *, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, where, maxsize)
        self._subscribers.add(sub)
        return sub

    async def publish(
        self,
        source: str,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        campaign_id: int | None = None,
        experiment_id: int | None = None,
    ) -> Event:
        """Persist the event, then deliver it. Returns it with its database id."""
        when = dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        async with self._lock:
            event = await asyncio.to_thread(
                self._store, when, source, kind, dict(payload or {}), campaign_id, experiment_id
            )
            for sub in list(self._subscribers):
                sub.offer(event)
        return event

    def _store(
        self,
        when: dt.datetime,
        source: str,
        kind: str,
        payload: dict[str, Any],
        campaign_id: int | None,
        experiment_id: int | None,
    ) -> Event:
        with self.database.session() as session:
            row = EventRow(
                time=when,
                source=source,
                kind=kind,
                payload=payload,
                campaign_id=campaign_id,
                experiment_id=experiment_id,
            )
            session.add(row)
            session.flush()
            return Event.from_row(row)

    def history(
        self,
        *,
        after_id: int = 0,
        campaign_id: int | None = None,
        kinds: tuple[str, ...] | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Stored events with id > ``after_id``, oldest first."""
        stmt = select(EventRow).where(EventRow.id > after_id).order_by(EventRow.id).limit(limit)
        if campaign_id is not None:
            stmt = stmt.where(EventRow.campaign_id == campaign_id)
        if kinds:
            stmt = stmt.where(EventRow.kind.in_(kinds))
        with self.database.session() as session:
            return [Event.from_row(row) for row in session.scalars(stmt)]

    async def stream(
        self, *, after_id: int = 0, where: EventFilter | None = None
    ) -> AsyncIterator[Event]:
        """Stored events after ``after_id``, then live ones, with no gap and no repeat."""
        with self.subscribe(where) as sub:
            last = after_id
            while page := await asyncio.to_thread(self.history, after_id=last):
                for event in page:
                    if where is None or where(event):
                        yield event
                    last = event.id
            while True:
                event = await sub.get()
                if event.id > last:
                    last = event.id
                    yield event
