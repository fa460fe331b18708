"""Pareto front, hypervolume, ParEGO and the Chimera-like priority mode; stopping rules."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from robochem.optimizer import Optimizer, hypervolume, pareto_mask


def _tradeoff(p: dict[str, float]) -> dict[str, float]:
    # yield rises with residence time, throughput falls: a classic front
    t = p["t"]
    y = 95 * (1 - math.exp(-4 * t)) * math.exp(-((p["c"] - 0.6) ** 2) / 0.1)
    return {"yield": y, "throughput": y * (1.2 - t)}


SPEC = {"variables": {"t": {"low": 0.05, "high": 1.0}, "c": {"low": 0.0, "high": 1.0}},
        "objectives": {"yield": {"goal": "maximize", "reference": 0.0},
                       "throughput": {"goal": "maximize", "reference": 0.0}},
        "seed": 1, "surrogate": {"restarts": 0}, "search": {"candidates": 300, "local": 1}}


def test_hypervolume_and_front_exact() -> None:
    f = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [1.0, 1.0]])
    assert hypervolume(f, np.zeros(2)) == pytest.approx(6.0)
    assert pareto_mask(f).tolist() == [True, True, True, False]
    cube = np.array([[1.0, 2.0, 1.0], [2.0, 1.0, 1.0], [1.0, 1.0, 2.0]])
    assert hypervolume(cube, np.zeros(3)) == pytest.approx(4.0)


@pytest.mark.parametrize("strategy", ["parego", "ehvi"])
def test_strategies_grow_the_hypervolume_and_beat_random(strategy: str) -> None:
    opt = Optimizer.from_spec({**SPEC, "strategy": strategy})
    for _ in range(20):
        p = opt.ask(1)
        opt.tell(p, [_tradeoff(p[0])])
    trace = opt.hypervolume_trace()
    assert len(trace) == 20
    assert all(b >= a for a, b in itertools.pairwise(trace))
    assert opt.hypervolume() == pytest.approx(trace[-1])
    front = opt.pareto_front()
    assert len(front) >= 4
    rng = np.random.default_rng(1)
    rnd = [_tradeoff({"t": rng.uniform(0.05, 1), "c": rng.uniform(0, 1)}) for _ in range(20)]
    hv_rnd = hypervolume(np.array([[r["yield"], r["throughput"]] for r in rnd]), np.zeros(2))
    assert trace[-1] > hv_rnd


def test_two_objectives_default_to_ehvi_and_batches_spread() -> None:
    opt = Optimizer.from_spec({**SPEC, "initial_experiments": 6})
    assert opt.strategy == "ehvi"
    first = opt.ask(6)
    opt.tell(first, [_tradeoff(p) for p in first])
    batch = opt.ask(3)
    assert len({(p["t"], p["c"]) for p in batch}) == 3
    opt.tell(batch, [_tradeoff(p) for p in batch])
    assert len(opt.hypervolume_trace()) == 9


def test_hypervolume_improvement_matches_exact_difference() -> None:
    from robochem.optimizer.objectives import hypervolume_improvement_2d

    rng = np.random.default_rng(0)
    ref = np.array([0.1, 0.2])
    for _ in range(50):
        front = rng.random((int(rng.integers(0, 7)), 2))
        pts = rng.random((10, 2))
        base = hypervolume(front, ref)
        exact = [hypervolume(np.vstack([front, p[None]]), ref) - base for p in pts]
        assert np.allclose(hypervolume_improvement_2d(pts, front, ref), exact)


def test_priority_mode_maximises_throughput_within_yield_tolerance() -> None:
    spec = {**SPEC, "objectives": {
        "yield": {"goal": "maximize", "priority": 1, "tolerance": 5.0},
        "throughput": {"goal": "maximize", "priority": 2}}}
    opt = Optimizer.from_spec(spec)
    assert opt.strategy == "priority"
    for _ in range(25):
        p = opt.ask(1)
        opt.tell(p, [_tradeoff(p[0])])
    ok = [o["result"] for o in opt.observations if o["result"]]
    top_yield = max(r["yield"] for r in ok)
    best = opt.best()["result"]
    assert best["yield"] >= top_yield - 5.0
    within = [r for r in ok if r["yield"] >= top_yield - 5.0]
    assert best["throughput"] == max(r["throughput"] for r in within)
    assert top_yield > 85


def test_stopping_rules() -> None:
    base = {"variables": {"x": {"low": 0.0, "high": 1.0}}, "objectives": {"y": {}},
            "initial_experiments": 3, "seed": 0, "surrogate": {"restarts": 0}}
    opt = Optimizer.from_spec({**base, "stopping": {"budget": 4}})
    for i in range(4):
        assert opt.should_stop() == (False, "")
        opt.tell(opt.ask(1), [float(i)])
    assert opt.should_stop()[0] and "budget" in opt.should_stop()[1]

    opt = Optimizer.from_spec({**base, "stopping": {"target": {"y": 0.9}}})
    opt.tell([{"x": 0.5}], [0.5])
    assert not opt.should_stop()[0]
    opt.tell([{"x": 0.9}], [0.95])
    assert "target" in opt.should_stop()[1]

    opt = Optimizer.from_spec({**base, "stopping": {"patience": 3}})
    for x, y in [(0.1, 5.0), (0.2, 6.0), (0.3, 7.0), (0.4, 1.0), (0.5, 2.0)]:
        opt.tell([{"x": x}], [y])
    assert not opt.should_stop()[0]
    opt.tell([{"x": 0.6}], [3.0])
    assert "no improvement" in opt.should_stop()[1]

    # a smooth 1-D bump, densely sampled: nothing left to gain
    opt = Optimizer.from_spec({**base, "stopping": {"ei_threshold": 0.01}})
    xs = np.linspace(0, 1, 15)
    opt.tell([{"x": float(x)} for x in xs], [float(-((x - 0.5) ** 2)) for x in xs])
    stop, reason = opt.should_stop()
    assert stop and "expected improvement" in reason
    assert opt.expected_improvement() < 0.01
