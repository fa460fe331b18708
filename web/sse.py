"""Server-sent events: the event bus (resumable by id) merged with device snapshots.

Bus events carry ``id:`` lines, so a browser that reconnects sends ``Last-Event-ID`` and
continues exactly after the last event it saw (``EventBus.stream`` replays the gap from
the database). Device snapshots carry no id: they are state, not history, and the next
one supersedes them. They are sent whenever ``lab.devices()`` changes, polled every
``device_poll_s`` wall seconds (a UI refresh rate, so wall time rather than the clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from robochem.events import Event
from robochem.web.context import WebContext
from robochem.web.tasks import watch

log = logging.getLogger("robochem.web.sse")


def device_dicts(ctx: WebContext) -> list[dict[str, Any]]:
    from robochem.web.api import device_out

    assert ctx.lab is not None
    return [device_out(d).model_dump(mode="json") for d in ctx.lab.devices()]


def _frame(data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


async def event_stream(
    ctx: WebContext,
    *,
    after_id: int,
    campaign_id: int | None = None,
    devices: bool = False,
) -> AsyncIterator[str]:
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)

    async def from_bus() -> None:
        def where(event: Event) -> bool:
            return campaign_id is None or event.campaign_id == campaign_id

        async for event in ctx.bus.stream(after_id=after_id, where=where):
            await queue.put(_frame({"type": "event", "event": event.to_dict()}, event.id))

    async def from_lab() -> None:
        last = None
        while True:
            try:
                text = json.dumps(device_dicts(ctx), separators=(",", ":"), default=str)
            except Exception:  # a broken device layer must not end the event stream
                log.exception("lab.devices() failed")
                text = None
            if text is not None and text != last:
                last = text
                await queue.put(f'data: {{"type":"devices","devices":{text}}}\n\n')
            await asyncio.sleep(ctx.device_poll_s)

    tasks = [watch(asyncio.create_task(from_bus()), "event stream: bus")]
    if devices and ctx.lab is not None:
        tasks.append(watch(asyncio.create_task(from_lab()), "event stream: devices"))
    try:
        yield "retry: 2000\n\n"
        while True:
            try:
                yield await asyncio.wait_for(queue.get(), ctx.heartbeat_s)
            except TimeoutError:
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        raise RuntimeError("event source failed") from task.exception()
                yield ": keep-alive\n\n"
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
