"""Shutting the dashboard down stops every campaign and logs what went wrong on the way,
instead of swallowing it (issue 30: no swallowed error)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from robochem.protocols.runtime.engine import IllegalTransition
from robochem.web.checker import Checker
from robochem.web.runtime import CampaignService
from robochem.web.tasks import watch


class _Engine:
    def __init__(self, abort_raises: BaseException | None) -> None:
        self.abort_raises = abort_raises
        self.aborted: list[str] = []
        self.abort_called = asyncio.Event()

    async def abort(self, reason: str) -> None:
        self.aborted.append(reason)
        self.abort_called.set()
        if self.abort_raises is not None:
            raise self.abort_raises


def _service(**tasks: tuple[_Engine, asyncio.Task[Any]]) -> CampaignService:
    service = CampaignService(None, None, None, checker=Checker(timeout_s=1.0))
    for key, (engine, task) in tasks.items():
        campaign_id = int(key.removeprefix("c"))
        service.engines[campaign_id] = engine
        service.tasks[campaign_id] = task
    return service


async def test_a_failed_abort_and_a_campaign_that_will_not_stop_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stuck = asyncio.create_task(asyncio.sleep(3600))
    engine = _Engine(OSError("database gone"))
    service = _service(c1=(engine, stuck))
    with caplog.at_level(logging.INFO, logger="robochem.web.runtime"):
        await service.close(stop_s=0.01)
    assert engine.aborted == ["dashboard shutting down"]
    assert stuck.cancelled()
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.ERROR, "aborting campaign 1 at shutdown failed") in messages
    assert (
        logging.ERROR,
        "campaign 1 did not stop within 0.01 s of the shutdown abort; cancelling it",
    ) in messages
    (failed,) = [r for r in caplog.records if r.getMessage().startswith("aborting")]
    assert failed.exc_info is not None and isinstance(failed.exc_info[1], OSError)


async def test_every_campaign_is_stopped_even_when_one_abort_fails() -> None:
    async def ends_after_abort(engine: _Engine) -> None:
        await engine.abort_called.wait()
        raise RuntimeError("the campaign's own failure (its watcher logs it)")

    first = _Engine(RuntimeError("a bug in abort"))
    second = _Engine(IllegalTransition("aborting", "aborting"))  # type: ignore[arg-type]
    third = _Engine(None)
    tasks = [
        watch(asyncio.create_task(ends_after_abort(e)), f"campaign {i}")  # as start() does
        for i, e in enumerate((first, second, third), 1)
    ]
    service = _service(c1=(first, tasks[0]), c2=(second, tasks[1]), c3=(third, tasks[2]))
    await service.close(stop_s=5.0)  # the tasks' own failures are not raised here
    assert all(task.done() and not task.cancelled() for task in tasks)
    assert [e.aborted for e in (first, second, third)] == [["dashboard shutting down"]] * 3


async def test_cancelling_the_shutdown_itself_is_not_swallowed() -> None:
    stuck = asyncio.create_task(asyncio.sleep(3600))
    engine = _Engine(None)
    service = _service(c1=(engine, stuck))
    closing = asyncio.create_task(service.close(stop_s=3600))
    await engine.abort_called.wait()  # close() now waits (an hour) for the campaign to stop
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    stuck.cancel()
