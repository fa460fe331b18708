"""Fixtures shared by driver tests: a hand-driven clock and a simulator runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from robochem.clock import Clock, set_clock


class ManualClock(Clock):
    """Simulated time that moves only when a test advances it or someone sleeps on it.

    ``sleep`` advances the time instead of waiting, so closed-loop polling in drivers
    (and simulators integrating on the clock) run instantly and deterministically.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        super().__init__(speed=1.0, epoch=start)
        self.t = start
        self._wall = lambda: self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


@pytest.fixture
def manual_clock() -> Iterator[ManualClock]:
    """A ManualClock installed as the process clock for the test's duration."""
    clock = ManualClock()
    set_clock(clock)
    yield clock
    set_clock(None)


@pytest.fixture
async def running() -> AsyncIterator[list]:
    """Append simulators (``stop()``) and transports (``close()``) to shut them after the test."""
    started: list = []
    yield started
    for thing in reversed(started):
        await (thing.stop() if hasattr(thing, "stop") else thing.close())


def record_raw(sim: object) -> list[bytes]:
    """Wrap ``sim.split`` to record each request's exact bytes, terminator included."""
    raw: list[bytes] = []
    split = sim.split  # type: ignore[attr-defined]

    def recording(buffer: bytes) -> tuple[bytes | None, bytes]:
        request, rest = split(buffer)
        if request is not None:
            raw.append(buffer[: len(buffer) - len(rest)])
        return request, rest

    sim.split = recording  # type: ignore[attr-defined]
    return raw


@pytest.fixture
def raw_requests() -> object:
    """``raw_requests(sim)`` -> list that fills with the exact bytes of each request."""
    return record_raw
