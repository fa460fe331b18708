"""Fixtures of the protocol tests."""

from __future__ import annotations

import pytest
from protocol_helpers import SIMULATED

from robochem.protocols.load import load_platform
from robochem.protocols.platform import Platform


@pytest.fixture(scope="session")
def sim_platform() -> Platform:
    return load_platform(SIMULATED)
