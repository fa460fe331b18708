"""Persistence: state() round-trips exactly; history rebuilds; warm start and replicate."""

from __future__ import annotations

import json
from typing import Any

import pytest

from robochem.optimizer import Optimizer, StateError


def _drive(opt: Optimizer, fn: Any, n: int, batch: int = 1) -> None:
    for _ in range(n):
        points = opt.ask(batch)
        opt.tell(points, [fn(p) for p in points])


def test_state_round_trip_gives_identical_next_ask(
    branin_spec: dict[str, Any], branin_fn: Any
) -> None:
    opt = Optimizer.from_spec(branin_spec)
    _drive(opt, lambda p: {"f": branin_fn(p)}, 9)
    opt.ask(2)  # leave two pending experiments
    state = json.loads(json.dumps(opt.state()))
    clone = Optimizer.from_state(state)
    assert clone.state() == opt.state()
    assert clone.pending == opt.pending
    assert clone.ask(3) == opt.ask(3)


def test_state_round_trip_mixed_space_with_failures(issue_spec: dict[str, Any]) -> None:
    spec = {**issue_spec, "surrogate": {"restarts": 0}, "search": {"candidates": 200}}
    opt = Optimizer.from_spec(spec)
    for i in range(8):
        p = opt.ask(1)[0]
        res = None if i % 3 == 2 else {"yield": p["light"] / 2, "throughput": p["light"] / 9}
        opt.tell([p], [res])
    clone = Optimizer.from_state(json.loads(json.dumps(opt.state())))
    assert clone.ask(2) == opt.ask(2)


def test_from_history_rebuilds_the_same_data(
    branin_spec: dict[str, Any], branin_fn: Any
) -> None:
    opt = Optimizer.from_spec(branin_spec)
    _drive(opt, lambda p: {"f": branin_fn(p)}, 7)
    experiments = [{"point": o["point"], "result": o["result"]} for o in opt.observations]
    rebuilt = Optimizer.from_history(branin_spec, experiments)
    assert rebuilt.observations == opt.observations
    assert rebuilt.best() == opt.best()
    assert len(rebuilt.ask(1)) == 1  # design already complete: goes straight to the model


def test_from_state_rejects_foreign_data() -> None:
    with pytest.raises(StateError):
        Optimizer.from_state({"format": "something else"})


def test_warm_start_skips_design_and_unknown_points(
    branin_spec: dict[str, Any], branin_fn: Any
) -> None:
    earlier = Optimizer.from_spec({**branin_spec, "seed": 11})
    _drive(earlier, lambda p: {"f": branin_fn(p)}, 8)
    prior = [{"point": o["point"], "result": o["result"]} for o in earlier.observations]
    prior.append({"point": {"x1": 50.0, "x2": 1.0}, "result": {"f": 1.0}})  # out of bounds
    opt = Optimizer.from_spec({**branin_spec, "warm_start": prior})
    assert len(opt.observations) == 8
    assert opt.n_experiments == 0  # priors do not eat the budget
    point = opt.ask(1)[0]
    assert point not in opt._design()  # model-based straight away
    state = json.loads(json.dumps(opt.state()))
    assert Optimizer.from_state(state).observations == opt.observations


def test_replicate_best_returns_the_best_point(
    branin_spec: dict[str, Any], branin_fn: Any
) -> None:
    opt = Optimizer.from_spec(branin_spec)
    _drive(opt, lambda p: {"f": branin_fn(p)}, 8)
    rep = opt.replicate_best()
    measured = [o["point"] for o in opt.observations]
    assert rep in measured
    assert rep in opt.pending
    assert branin_fn(rep) <= sorted(branin_fn(p) for p in measured)[2]
    opt.tell([rep], [{"f": branin_fn(rep)}])
    assert opt.pending == []
