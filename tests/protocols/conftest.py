"""Fixtures of the protocol tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine_kit import Env, simulated_env
from protocol_helpers import SIMULATED

from robochem.protocols.load import load_platform
from robochem.protocols.platform import Platform


@pytest.fixture(scope="session")
def sim_platform() -> Platform:
    return load_platform(SIMULATED)


@pytest.fixture
async def env(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Env]:
    async with simulated_env(Env, tmp_path, sqlite_url) as env:
        yield env
