import asyncio
import time

import pytest

from robochem.clock import Clock, get_clock, set_clock


class FakeWall:
    def __init__(self, start: float) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def test_simulated_time_runs_speed_times_faster_than_wall_time() -> None:
    wall = FakeWall(1000.0)
    clock = Clock(speed=100, epoch=1000.0, _wall=wall)
    assert clock.now() == 1000.0
    wall.t += 2.5
    assert clock.now() == pytest.approx(1250.0)
    assert clock.wall_seconds(600) == pytest.approx(6.0)
    assert clock.simulated_seconds(6.0) == pytest.approx(600)


def test_real_time_clock_reads_wall_time() -> None:
    clock = Clock(speed=1)
    before = time.time()
    now = clock.now()
    after = time.time()
    assert before - 1e-6 <= now <= after + 1e-6


def test_processes_sharing_epoch_and_speed_agree_on_simulated_time() -> None:
    wall = FakeWall(5000.0)
    a = Clock(speed=50, epoch=4000.0, _wall=wall)
    b = Clock(speed=50, epoch=4000.0, _wall=wall)
    assert a.now() == b.now() == pytest.approx(4000.0 + 1000.0 * 50)


@pytest.mark.parametrize("speed", [0, -1])
def test_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        Clock(speed=speed)


async def test_sleep_takes_simulated_seconds() -> None:
    # Simulated time read on the event loop's own clock, the one its timers fire on.
    loop = asyncio.get_running_loop()
    clock = Clock(speed=200, epoch=loop.time(), _wall=loop.time)
    start = clock.now()
    await clock.sleep(40)  # 0.2 wall seconds
    slept = clock.now() - start
    # A timer never fires early, whatever the load: the lower bound is exact.
    assert slept >= 40 - 200 * 1e-3
    # The upper bound only says "wall seconds, not simulated ones" (40 wall s): a one-sided
    # bound, generous for a loaded machine.
    assert slept < 200 * 5


async def test_wait_for_times_out_in_simulated_seconds() -> None:
    clock = Clock(speed=100)
    with pytest.raises(TimeoutError):
        await clock.wait_for(asyncio.sleep(10), timeout_s=10)  # 0.1 wall seconds


def test_process_clock_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOCHEM_CLOCK_SPEED", "25")
    monkeypatch.setenv("ROBOCHEM_CLOCK_EPOCH", "1700000000")
    from robochem.settings import reset_settings

    reset_settings()
    set_clock(None)
    clock = get_clock()
    assert clock.speed == 25 and clock.epoch == 1_700_000_000
