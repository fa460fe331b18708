"""Known constraints are never violated; failed experiments steer suggestions away."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from robochem.optimizer import Optimizer

CONSTRAINED = [
    # stock volumes of a slug add up to at most its volume
    ({"a": {"low": 0.0, "high": 300.0}, "b": {"low": 0.0, "high": 300.0},
      "c": {"low": 10.0, "high": 300.0}},
     ["a + b + c <= 400", "a >= 2 * b or c < 50"]),
    # total flow within the pump's range, with a log variable and a categorical
    ({"q1": {"low": 0.01, "high": 5.0, "log": True}, "q2": {"low": 0.01, "high": 5.0},
      "cat": {"choices": ["TBADT", "NaDT", "EosinY"]}},
     ["0.1 <= q1 + q2 <= 3", "cat != 'EosinY' or q2 < 0.5"]),
    # integers and a narrow feasible band
    ({"n": {"type": "integer", "low": 1, "high": 20}, "t": {"low": 0.0, "high": 1.0}},
     ["abs(t - n / 20) <= 0.1", "n % 2 == 0"]),
]


def _violates(point: dict[str, Any], exprs: list[str]) -> bool:
    # Independent check with plain Python on the returned values.
    env = {"abs": abs, "min": min, "max": max, "sqrt": math.sqrt, **point}
    return not all(eval(e, {"__builtins__": {}}, env) for e in exprs)


@pytest.mark.parametrize(("variables", "constraints"), CONSTRAINED)
def test_no_suggestion_ever_violates_a_known_constraint(
    variables: dict[str, Any], constraints: list[str], fast: dict[str, Any]
) -> None:
    spec = {"variables": variables, "objectives": {"y": {"goal": "maximize"}},
            "constraints": constraints, "initial_experiments": 60, "seed": 1, **fast}
    opt = Optimizer.from_spec(spec)
    names = list(variables)
    suggested = opt.ask(60)  # the whole space-filling design
    rng = np.random.default_rng(0)

    def y(p: dict[str, Any]) -> float:
        return -sum((float(p[n]) if n != "cat" else 0.0) for n in names) + rng.normal()

    opt.tell(suggested, [y(p) for p in suggested])
    for _ in range(5):
        batch = opt.ask(8)
        opt.tell(batch, [y(p) for p in batch])
        suggested += batch
    assert len(suggested) == 100
    bad = [p for p in suggested if _violates(p, constraints)]
    assert bad == []
    assert all(opt.feasible(p) for p in suggested)


@pytest.mark.parametrize(("variables", "constraints"), CONSTRAINED)
def test_candidate_sampler_respects_constraints(
    variables: dict[str, Any], constraints: list[str]
) -> None:
    # Every suggestion is drawn from this sampler (or the grid / design built from it).
    spec = {"variables": variables, "objectives": {"y": {}}, "constraints": constraints}
    opt = Optimizer.from_spec(spec)
    z = opt._feasible_sample(4000, np.random.default_rng(5))
    points = opt.space.to_points(z)
    assert len(points) == 4000
    assert not any(_violates(p, constraints) for p in points)


def test_failed_region_is_avoided_and_yield_model_not_poisoned(fast: dict[str, Any]) -> None:
    # Experiments with x > 0.6 fail (e.g. clogging); the yield optimum is at x = 0.55, y = 0.3.
    def run(p: dict[str, float]) -> dict[str, float | None]:
        if p["x"] > 0.6:
            return {"yield": None}
        return {"yield": 100 * math.exp(-((p["x"] - 0.55) ** 2 + (p["y"] - 0.3) ** 2) / 0.05)}

    spec = {"variables": {"x": {"low": 0.0, "high": 1.0}, "y": {"low": 0.0, "high": 1.0}},
            "objectives": {"yield": {"goal": "maximize"}}, "initial_experiments": 8,
            "seed": 2, **fast}
    opt = Optimizer.from_spec(spec)
    later = []
    for i in range(30):
        p = opt.ask(1)
        opt.tell(p, [run(p[0])])
        if i >= 8:
            later.append(p[0])
    failed_late = sum(q["x"] > 0.6 for q in later)
    # random search would fail 40 % of the time
    assert failed_late <= 0.2 * len(later)
    assert opt.best()["result"]["yield"] > 90
    # failures are not fed to the yield GP as zeros
    assert all(o["result"] is None for o in opt.observations if o["point"]["x"] > 0.6)


def test_discrete_space_does_not_repeat_experiments(fast: dict[str, Any]) -> None:
    spec = {"variables": {"a": {"choices": ["p", "q", "r"]},
                          "n": {"type": "integer", "low": 0, "high": 3}},
            "objectives": {"y": {}}, "initial_experiments": 3, "seed": 0, **fast}
    opt = Optimizer.from_spec(spec)
    seen = []
    for _ in range(4):
        batch = opt.ask(3)
        opt.tell(batch, [float(p["n"]) + (p["a"] == "q") for p in batch])
        seen += [(p["a"], p["n"]) for p in batch]
    assert len(set(seen)) == len(seen) == 12
