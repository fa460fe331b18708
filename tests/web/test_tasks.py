"""Background tasks of the dashboard are observed: a failure is logged when it happens and
handed to its recorder, instead of "Task exception was never retrieved" at collection."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from robochem.web.tasks import spawn, watch


async def _fail() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("the lab caught fire")


async def test_a_failing_task_is_logged_and_recorded_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorded: list[BaseException] = []
    with caplog.at_level(logging.ERROR, logger="robochem.web.tasks"):
        task = watch(asyncio.create_task(_fail()), "campaign 7", recorded.append)
        await asyncio.wait([task])
        await asyncio.sleep(0)  # done-callbacks run on the next loop iteration
    assert [str(e) for e in recorded] == ["the lab caught fire"]
    (record,) = caplog.records
    assert record.getMessage() == "campaign 7 failed: the lab caught fire"
    assert record.exc_info is not None


async def test_a_recorder_that_fails_is_logged_too(caplog: pytest.LogCaptureFixture) -> None:
    def broken(_: BaseException) -> None:
        raise OSError("database gone")

    with caplog.at_level(logging.ERROR, logger="robochem.web.tasks"):
        task = watch(asyncio.create_task(_fail()), "campaign 8", broken)
        await asyncio.wait([task])
        await asyncio.sleep(0)
    assert [r.getMessage() for r in caplog.records] == [
        "campaign 8 failed: the lab caught fire",
        "recording the failure of campaign 8 failed",
    ]


async def test_a_spawned_task_lives_until_it_is_done_though_nobody_holds_it() -> None:
    finished = asyncio.Event()

    async def slow() -> None:
        await asyncio.sleep(0.05)
        finished.set()

    spawn(slow(), "recording an event")
    gc.collect()  # asyncio itself keeps only a weak reference to tasks
    await asyncio.wait_for(finished.wait(), 5)
