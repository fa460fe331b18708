"""One clock for the engine, the drivers' waits and the simulators.

Simulated campaigns run faster than real time by a *speed factor*: with speed 100,
``await clock.sleep(100)`` returns after one wall second and ``clock.now()`` advances a
hundred seconds per wall second. Several processes (the simulator servers, the engine,
the dashboard) agree on simulated time because they share the same epoch and speed
through settings (``ROBOCHEM_CLOCK_SPEED`` and ``ROBOCHEM_CLOCK_EPOCH``).

Real hardware runs with speed 1, where ``now()`` is wall time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClockConfig:
    speed: float = 1.0
    # Wall-clock instant (time.time()) at which simulated time equals ``epoch``.
    epoch: float | None = None


@dataclass
class Clock:
    """Simulated time = epoch + (wall - epoch) * speed.

    ``speed`` must be positive. ``epoch`` anchors the mapping so that independent
    processes constructed with the same values read the same simulated time.
    """

    speed: float = 1.0
    epoch: float = field(default_factory=time.time)
    _wall: object = field(default=time.time, repr=False)

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"clock speed must be > 0, got {self.speed!r}")

    def now(self) -> float:
        """Simulated seconds since the Unix epoch."""
        wall = self._wall()  # type: ignore[operator]
        return self.epoch + (wall - self.epoch) * self.speed

    def wall_seconds(self, simulated_seconds: float) -> float:
        """Wall seconds that pass while ``simulated_seconds`` of simulated time pass."""
        return simulated_seconds / self.speed

    def simulated_seconds(self, wall_seconds: float) -> float:
        return wall_seconds * self.speed

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of simulated time (0 or negative yields once)."""
        await asyncio.sleep(max(0.0, self.wall_seconds(seconds)))

    def sleep_blocking(self, seconds: float) -> None:
        """For threads that cannot await (e.g. a serial reader thread)."""
        time.sleep(max(0.0, self.wall_seconds(seconds)))

    async def wait_for(self, awaitable, timeout_s: float):  # type: ignore[no-untyped-def]
        """``asyncio.wait_for`` with a timeout in simulated seconds."""
        return await asyncio.wait_for(awaitable, self.wall_seconds(timeout_s))


_default: Clock | None = None


def get_clock() -> Clock:
    """The process-wide clock, built from settings on first use."""
    global _default
    if _default is None:
        from robochem.settings import get_settings

        s = get_settings()
        _default = Clock(speed=s.clock_speed, epoch=s.clock_epoch or time.time())
    return _default


def set_clock(clock: Clock | None) -> None:
    """Install a clock for this process (tests, ``robochem sim --speed``)."""
    global _default
    _default = clock
