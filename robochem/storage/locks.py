"""One controller per campaign: a lock that its process holds while it runs the campaign.

Two processes driving the same campaign would drive the same lab twice (a ``--resume``
typed while the first run is still alive, a dashboard starting a campaign a headless run
holds). The lock is released by the operating system or the database server when the
holding process dies, however it dies, so a crash never leaves a campaign locked:

* SQLite: an exclusive lock on a file beside the database (``filelock``: ``flock`` on
  POSIX, ``LockFileEx`` on Windows);
* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection
  kept for the run; the server drops it when the connection goes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from robochem.storage.db import Database

__all__ = ["CampaignBusy", "campaign_lock"]

log = logging.getLogger("robochem.storage.locks")

#: advisory-lock class id for campaigns ("RC" + 1); the object id is the campaign id
_PG_CLASS = 0x5243_0001
#: in-memory SQLite databases live in one process: a process-wide set is enough
_memory_held: set[tuple[int, int]] = set()
_memory_guard = threading.Lock()


class CampaignBusy(RuntimeError):
    """Another live process runs the campaign."""


def _busy(campaign_id: int, database: Database) -> CampaignBusy:
    return CampaignBusy(
        f"campaign {campaign_id} is being run by another process on {database.display_url}; "
        "stop that run (Ctrl-C, or the dashboard's Abort) or wait for it to end, then try again"
    )


@contextlib.contextmanager
def campaign_lock(database: Database, campaign_id: int) -> Iterator[None]:
    """Hold the campaign for this process; :class:`CampaignBusy` at once if another has it."""
    url = make_url(database.url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        with database.engine.connect() as connection:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:c, :o)"), {"c": _PG_CLASS, "o": campaign_id}
            ).scalar_one()
            connection.commit()
            if not got:
                raise _busy(campaign_id, database)
            try:
                yield
            finally:
                try:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:c, :o)"),
                        {"c": _PG_CLASS, "o": campaign_id},
                    )
                    connection.commit()
                except DBAPIError as exc:  # a lost server has dropped the lock anyway
                    log.warning("campaign %s: releasing its lock failed: %s", campaign_id, exc)
        return
    if url.database in (None, "", ":memory:"):
        key = (id(database), campaign_id)
        with _memory_guard:
            if key in _memory_held:
                raise _busy(campaign_id, database)
            _memory_held.add(key)
        try:
            yield
        finally:
            with _memory_guard:
                _memory_held.discard(key)
        return
    path = Path(url.database).expanduser().resolve()
    lock = FileLock(path.with_name(f"{path.name}.campaign-{campaign_id}.lock"), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise _busy(campaign_id, database) from None
    try:
        yield
    finally:
        lock.release()
