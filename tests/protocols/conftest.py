"""Fixtures of the protocol tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from engine_kit import Env
from protocol_helpers import SIMULATED

from robochem.clock import set_clock
from robochem.events import EventBus
from robochem.protocols.load import load_platform, parse_platform
from robochem.protocols.platform import Platform
from robochem.protocols.runtime.lab import connect_lab
from robochem.simulator.runner import SimulatedPlatform
from robochem.storage.db import Database


@pytest.fixture(scope="session")
def sim_platform() -> Platform:
    return load_platform(SIMULATED)


@pytest.fixture
async def env(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Env]:
    sim = SimulatedPlatform(speed=1000, data_root=tmp_path / "nmr", seed=3)
    await sim.start()
    set_clock(sim.clock)
    data = sim.platform()
    platform = parse_platform(yaml.safe_dump(data), "sim-platform.yaml")
    db = Database(sqlite_url)
    bus = EventBus(db, clock=sim.clock)
    lab = await connect_lab(platform)
    try:
        yield Env(sim, platform, db, bus, lab)
    finally:
        await lab.close()
        await sim.stop()
        db.dispose()
