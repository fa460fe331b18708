"""Background tasks of the dashboard never die unobserved.

asyncio only reports a task's exception when the task is garbage-collected ("Task exception
was never retrieved"), long after anyone could act on it, and it keeps only a weak
reference to tasks nobody holds. :func:`watch` logs a failure the moment the task ends and
hands it to a recorder (e.g. an event on the campaign); :func:`spawn` also keeps the task
alive until it is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["spawn", "watch"]

log = logging.getLogger("robochem.web.tasks")

T = TypeVar("T")
_running: set[asyncio.Task[Any]] = set()


def watch(
    task: asyncio.Task[T],
    what: str,
    on_failure: Callable[[BaseException], None] | None = None,
) -> asyncio.Task[T]:
    """Log ``task``'s exception (naming ``what``) as soon as it ends, then ``on_failure``."""

    def done(finished: asyncio.Task[T]) -> None:
        if finished.cancelled():
            log.info("%s: cancelled", what)
            return
        error = finished.exception()
        if error is None:
            return
        log.error("%s failed: %s", what, error, exc_info=error)
        if on_failure is not None:
            try:
                on_failure(error)
            except Exception:
                log.exception("recording the failure of %s failed", what)

    task.add_done_callback(done)
    return task


def spawn(
    coro: Coroutine[Any, Any, T],
    what: str,
    on_failure: Callable[[BaseException], None] | None = None,
) -> asyncio.Task[T]:
    """A watched task that is kept referenced until it is done."""
    task = watch(asyncio.create_task(coro, name=what), what, on_failure)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task
