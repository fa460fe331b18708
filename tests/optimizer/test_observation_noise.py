"""Per-observation noise (issue 23, item 3): a result may carry its reading's standard
deviation, ``{"yield": 71.2, "yield_sd": 0.8}``; the model uses it as that point's noise
instead of one learned level, and a failure stays a failure."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from robochem.optimizer import Optimizer, SpecError, StateError
from robochem.optimizer.surrogate import (
    NOISE_BOUNDS,
    GPModel,
    transform_noise,
    transform_output,
)


def _trend(x: np.ndarray) -> np.ndarray:
    return 50.0 + 20.0 * np.sin(3.0 * x)


def _rough(x: np.ndarray) -> np.ndarray:
    """Varies on a scale of about a fifth of the range: neighbours share little."""
    return 50.0 + 20.0 * np.sin(5.0 * x)


def _spec(**extra: Any) -> dict[str, Any]:
    spec = {
        "variables": {"x": {"low": 0.0, "high": 1.0}},
        "objectives": {"yield": {"goal": "maximize"}},
        "seed": 0,
        "surrogate": {"restarts": 0},
        "search": {"candidates": 300, "local": 1},
    }
    spec.update(extra)
    return spec


# -- the model --------------------------------------------------------------------------------


def test_a_reading_with_a_large_sd_pulls_the_mean_much_less() -> None:
    x = np.linspace(0, 1, 7)[:, None]
    y = _trend(x[:, 0])
    y[3] += 15.0  # one high reading among six quiet ones
    pull = {}
    for sd in (0.3, 10.0):
        variance = np.full(7, 0.3**2)
        variance[3] = sd**2
        mu, _ = GPModel(2, 4.0, 0).fit(x, y, variance).predict(x[3:4])
        pull[sd] = float(mu[0] - _trend(x[3, 0]))
    assert pull[0.3] > 4.0  # measured: 6.2 of the 15
    assert abs(pull[10.0]) < 0.1 * pull[0.3]  # measured: 0.12


@pytest.mark.parametrize("sd", [0.5, 2.0])
def test_the_posterior_sd_at_a_reading_is_about_its_reported_sd(sd: float) -> None:
    x = np.linspace(0, 1, 6)[:, None]
    y = _rough(x[:, 0]) + np.random.default_rng(0).normal(0, sd, 6)
    model = GPModel(2, 4.0, 0).fit(x, y, np.full(6, sd**2))
    _, post = model.predict(x)
    # neighbours share a little information: somewhat below the report, never far below
    assert np.all((post > 0.7 * sd) & (post < 1.1 * sd)), post  # measured: 0.83-1.04 sd
    # the reports explain the scatter: the learned extra noise sits at its floor
    assert model.noise_variance <= 1.01 * NOISE_BOUNDS[0] * model.std**2
    # without reports the model trusts its own fitted level (here the floor, far too small)
    _, without = GPModel(2, 4.0, 0).fit(x, y).predict(x)
    assert np.all(without < 0.2), without  # measured: 0.14 for both


def test_readings_in_a_noisy_region_are_trusted_less() -> None:
    x = np.r_[np.linspace(0, 0.4, 5), np.linspace(0.6, 1, 5)][:, None]
    sd = np.r_[np.full(5, 0.3), np.full(5, 4.0)]
    y = _rough(x[:, 0]) + np.random.default_rng(1).normal(0, sd)
    _, post = GPModel(2, 4.0, 0).fit(x, y, sd**2).predict(x)
    assert post[5:].min() > 3 * post[:5].max()  # measured: 1.35 against 0.32
    _, one_level = GPModel(2, 4.0, 0).fit(x, y).predict(x)
    assert one_level[5:].min() < 1.5 * one_level[:5].max()


def test_unreported_points_use_the_learned_noise_only() -> None:
    x = np.linspace(0, 1, 8)[:, None]
    y = _trend(x[:, 0]) + np.random.default_rng(0).normal(0, 1.0, 8)
    nan = np.full(8, np.nan)
    plain = GPModel(2, 4.0, 0).fit(x, y)
    unreported = GPModel(2, 4.0, 0).fit(x, y, nan)
    np.testing.assert_allclose(unreported.predict(x)[0], plain.predict(x)[0])
    mixed = nan.copy()
    mixed[2] = 25.0**2  # one reading said to be very uncertain
    model = GPModel(2, 4.0, 0).fit(x, y, mixed)
    assert model.alpha[2] > 100 * model.alpha[3]


def test_a_reading_is_an_outlier_only_beyond_its_own_reported_spread() -> None:
    x = np.linspace(0, 1, 11)[:, None]
    y = _trend(x[:, 0])
    y[5] += 25.0
    variance = np.full(11, 0.3**2)
    assert GPModel(2, 4.0, 0).fit(x, y, variance).outliers[5]
    variance[5] = 10.0**2  # 2.5 reported sds off: no surprise, and it barely pulls
    model = GPModel(2, 4.0, 0).fit(x, y, variance)
    assert not model.outliers.any()
    assert abs(model.predict(x[5:6])[0][0] - _trend(x[5, 0])) < 1.0


def test_conditioning_keeps_the_reports_and_fantasies_get_none() -> None:
    x = np.linspace(0, 1, 6)[:, None]
    y = _trend(x[:, 0])
    model = GPModel(0, 4.0, 0).fit(x, y, np.full(6, 1.0))
    believed = model.condition(np.array([[0.55]]), np.array([60.0]))
    assert len(believed.alpha) == 7
    np.testing.assert_allclose(believed.alpha[:6], model.alpha)
    assert believed.alpha[6] < 1e-6
    assert believed.predict(np.array([[0.55]]))[1][0] < model.predict(np.array([[0.55]]))[1][0]


def test_log_warping_carries_the_sd_by_the_delta_method() -> None:
    y = np.array([0.5, 3.0, 20.0, 70.0])
    variance = np.full(4, 0.2**2)
    carried = transform_noise(y, variance, "log")
    assert carried is not None
    # log warping takes log(y + 0.5) here (the shift lifts the smallest value to 1);
    # d/dy log(y + 0.5) = 1 / (y + 0.5)
    np.testing.assert_allclose(np.exp(transform_output(y, "log")), y + 0.5)
    np.testing.assert_allclose(carried, variance / (y + 0.5) ** 2)
    assert transform_noise(y, variance, "none") is variance
    assert transform_noise(y, variance, "rank") is None  # no honest image: learned noise


# -- the optimiser ----------------------------------------------------------------------------


def test_a_failure_stays_a_failure_whatever_its_sd() -> None:
    opt = Optimizer.from_spec(_spec())
    opt.tell(
        [{"x": 0.1}, {"x": 0.2}],
        [{"yield": None, "yield_sd": 1.0}, {"yield": float("nan"), "yield_sd": 0.5}],
    )
    assert [o["result"] for o in opt.observations] == [None, None]
    assert all("sd" not in o for o in opt.observations)


@pytest.mark.parametrize(
    ("result", "message"),
    [({"yield": 50, "yield_sd": -1}, "'yield_sd': expected a finite number >= 0"),
     ({"yield": 50, "yield_sd": float("nan")}, "'yield_sd': expected a finite number"),
     ({"yield": 50, "yield_sd": "0.8"}, "'yield_sd': expected a finite number"),
     ({"yield": 50, "yield_sd": True}, "'yield_sd': expected a finite number"),
     ({"yield": 50, "other_sd": 1}, r"unknown objective\(s\) \['other_sd'\]"),
     ({"yield_sd": 1.0}, "lacks")],
)  # fmt: skip
def test_bad_sds_are_refused_naming_the_key(result: dict[str, Any], message: str) -> None:
    opt = Optimizer.from_spec(_spec())
    with pytest.raises(StateError, match=message):
        opt.tell([{"x": 0.5}], [result])
    assert opt.observations == []


def test_an_unknown_sd_is_none_and_only_reported_sds_are_kept() -> None:
    spec = _spec(objectives={"yield": {}, "throughput": {}})
    opt = Optimizer.from_spec(spec)
    opt.tell(
        [{"x": 0.1}], [{"yield": 50, "yield_sd": 0.8, "throughput": 2.0, "throughput_sd": None}]
    )
    opt.tell([{"x": 0.2}], [{"yield": 40, "throughput": 1.0}])
    assert [o.get("sd") for o in opt.observations] == [{"yield": 0.8}, None]


def test_an_objective_named_like_another_ones_sd_is_refused() -> None:
    with pytest.raises(SpecError, match="'yield' and 'yield_sd' clash"):
        Optimizer.from_spec(_spec(objectives={"yield": {}, "yield_sd": {}}))


def _told(opt: Optimizer) -> None:
    xs = np.linspace(0, 1, 6)
    sds = [0.5, 8.0, 0.5, 0.5, 3.0, 0.5]
    opt.tell(
        [{"x": float(v)} for v in xs],
        [{"yield": float(y), "yield_sd": s} for y, s in zip(_trend(xs), sds, strict=True)],
    )


def test_state_round_trip_keeps_the_sds_and_old_states_still_load() -> None:
    opt = Optimizer.from_spec(_spec())
    _told(opt)
    opt.warm_start([{"x": 0.95}], [{"yield": 55.0, "yield_sd": 2.0}])
    state = json.loads(json.dumps(opt.state()))
    assert state["observations"][1]["sd"] == {"yield": 8.0}
    assert state["observations"][-1] == {
        "point": {"x": 0.95},
        "result": {"yield": 55.0},
        "sd": {"yield": 2.0},
        "source": "prior",
    }
    clone = Optimizer.from_state(state)
    assert clone.observations == opt.observations
    assert clone.ask(1) == opt.ask(1)
    # a state written before per-observation noise (no "sd") loads as unreported readings
    for item in state["observations"]:
        item.pop("sd", None)
    old = Optimizer.from_state(state)
    assert all("sd" not in o for o in old.observations)
    bad = json.loads(json.dumps(opt.state()))
    bad["observations"][0]["sd"] = {"yield": -2.0}
    with pytest.raises(StateError, match="'yield_sd'"):
        Optimizer.from_state(bad)


def test_history_items_carry_sds_in_their_results() -> None:
    experiments = [
        {"point": {"x": 0.2}, "result": {"yield": 60.0, "yield_sd": 0.7}},
        {"point": {"x": 0.6}, "result": None},
    ]
    opt = Optimizer.from_history(_spec(), experiments)
    assert [o.get("sd") for o in opt.observations] == [{"yield": 0.7}, None]


def test_the_reports_steer_the_model_only_where_they_can_be_carried() -> None:
    """Sds change the next suggestion with the identity transform; with the rank
    transform (no image for a reading's spread) and under ParEGO they are not used."""

    def next_ask(with_sd: bool, **extra: Any) -> dict[str, Any]:
        opt = Optimizer.from_spec(_spec(initial_experiments=0, **extra))
        _told(opt)
        if not with_sd:
            opt = Optimizer.from_history(
                _spec(initial_experiments=0, **extra),
                [{"point": o["point"], "result": o["result"]} for o in opt.observations],
            )
        return opt.ask(1)[0]

    assert next_ask(True) != next_ask(False)
    rank = {"surrogate": {"restarts": 0, "output_transform": "rank"}}
    assert next_ask(True, **rank) == next_ask(False, **rank)
    assert next_ask(True, surrogate={"restarts": 0, "output_transform": "log"}) != next_ask(
        False, surrogate={"restarts": 0, "output_transform": "log"}
    )


def test_two_objectives_keep_their_own_reports() -> None:
    objectives = {"yield": {}, "throughput": {}}
    results = [
        {"yield": float(50 + 30 * x), "yield_sd": 1.0 + 5 * x, "throughput": float(3 - 2 * x)}
        for x in np.linspace(0, 1, 6)
    ]
    points = [{"x": float(x)} for x in np.linspace(0, 1, 6)]
    for strategy in ("ehvi", "parego"):
        opt = Optimizer.from_spec(_spec(objectives=objectives, strategy=strategy))
        opt.tell(points, results)
        (p,) = opt.ask(1)
        assert 0.0 <= p["x"] <= 1.0
