"""Shared helpers for the optimiser tests: small, fast specs."""

from __future__ import annotations

import math
from typing import Any

import pytest

# Cheap search settings keep each ask() to a few milliseconds in tests.
FAST = {"surrogate": {"restarts": 0}, "search": {"candidates": 300, "local": 1}}


def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


@pytest.fixture
def fast() -> dict[str, Any]:
    return dict(FAST)


@pytest.fixture
def branin_fn() -> Any:
    return branin


@pytest.fixture
def branin_spec() -> dict[str, Any]:
    return {
        "variables": {"x1": {"low": -5.0, "high": 10.0}, "x2": {"low": 0.0, "high": 15.0}},
        "objectives": {"f": {"goal": "minimize"}},
        "seed": 3,
        **FAST,
    }


@pytest.fixture
def issue_spec() -> dict[str, Any]:
    return {
        "variables": {
            "residence_time": {"low": 60, "high": 1200},
            "light": {"low": 10, "high": 100},
            "loading": {"low": 0.001, "high": 0.05, "log": True},
            "catalyst": {"choices": ["TBADT", "NaDT"]},
        },
        "objectives": {"yield": {"goal": "maximize"}, "throughput": {"goal": "maximize"}},
        "initial_experiments": 5,
        "seed": 0,
    }
