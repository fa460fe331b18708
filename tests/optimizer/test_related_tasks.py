"""Warm start from a related earlier campaign (another substrate): the model learns how far
its results carry over, instead of taking them as this reaction's own."""

from __future__ import annotations

import numpy as np
import pytest

from robochem.optimizer import Optimizer, StateError

SPEC = {
    "variables": {"a": {"low": 0.0, "high": 1.0}, "b": {"low": 0.0, "high": 1.0}},
    "objectives": {"yield": {"goal": "maximize"}},
    "initial_experiments": 5,
}


def response(a: float, b: float, shift: float) -> float:
    """One peak of 100 %, moved by ``shift`` for the second substrate."""
    return float(100 * np.exp(-((a - 0.3 - shift) ** 2 + (b - 0.6 + shift / 2) ** 2) / 0.05))


def earlier_campaign(seed: int) -> tuple[list[dict[str, float]], list[float]]:
    """25 results on the first substrate: a spread and a line through its optimum."""
    rng = np.random.default_rng(100 + seed)
    points = [{"a": float(a), "b": float(b)} for a, b in rng.random((20, 2))]
    points += [{"a": 0.3 + 0.05 * i, "b": 0.6} for i in range(-2, 3)]
    return points, [response(p["a"], p["b"], 0.0) for p in points]


def experiments_to_95(seed: int, task: str | None, warm: bool) -> int:
    opt = Optimizer.from_spec({**SPEC, "seed": seed})
    if warm:
        opt.warm_start(*earlier_campaign(seed), task=task)
    for n in range(1, 26):
        (point,) = opt.ask(1)
        y = response(point["a"], point["b"], 0.15)
        opt.tell([point], [y])
        if y >= 95:
            return n
    return 26


@pytest.mark.slow
def test_a_related_campaign_saves_experiments_where_pooling_it_would_mislead() -> None:
    """The optimum moved: taken as this reaction's own, the earlier results hold the search
    at the old optimum; as a related task they shorten it (toy: median 5.5 against 10
    cold over six seeds, docs/optimizer.md)."""
    seeds = range(3)
    cold = [experiments_to_95(s, None, warm=False) for s in seeds]
    related = [experiments_to_95(s, "substrate A", warm=True) for s in seeds]
    pooled = [experiments_to_95(s, None, warm=True) for s in seeds]
    assert np.median(related) < np.median(cold) < np.median(pooled), (related, cold, pooled)


def test_a_related_task_never_counts_as_this_campaigns_result() -> None:
    opt = Optimizer.from_spec({**SPEC, "stopping": {"target": {"yield": 90.0}}})
    opt.warm_start([{"a": 0.3, "b": 0.6}], [99.0], task="substrate A")
    assert opt.best() is None
    assert opt.should_stop() == (False, "")
    opt.tell([{"a": 0.9, "b": 0.1}], [12.0])
    assert opt.best()["result"] == {"yield": 12.0}
    same = Optimizer.from_spec({**SPEC, "stopping": {"target": {"yield": 90.0}}})
    same.warm_start([{"a": 0.3, "b": 0.6}], [99.0])  # the same reaction: its own result
    assert same.should_stop()[0]


def test_tasks_survive_a_saved_state_and_the_spec() -> None:
    opt = Optimizer.from_spec(
        {**SPEC, "warm_start": [{"point": {"a": 0.3, "b": 0.6}, "result": 80.0,
                                 "task": "substrate A"}]}
    )  # fmt: skip
    again = Optimizer.from_state(opt.state())
    assert [o.get("task") for o in again.observations] == ["substrate A"]
    assert len(again.ask(2)) == 2
    with pytest.raises(StateError, match="task"):
        opt.warm_start([{"a": 0.1, "b": 0.1}], [1.0], task="")
