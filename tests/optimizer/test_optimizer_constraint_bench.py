"""The constraint benchmark runs (so it cannot rot) and its independent checks bite."""

from __future__ import annotations

import pytest

from benchmarks.optimizer_constraints import PROBLEMS, _campaign


@pytest.mark.parametrize("index", range(len(PROBLEMS)), ids=[p.name for p in PROBLEMS])
def test_short_constrained_campaign_has_no_violation(index: int) -> None:
    record = _campaign((index, 0, 8))
    assert record["suggestions"] >= 8
    assert record["violations"] == 0, record["examples"]


def test_independent_checks_reject_infeasible_points() -> None:
    by_name = {p.name: p for p in PROBLEMS}
    assert not by_name["slug volume"].check({"substrate": 300, "reagent": 300, "catalyst": 100})
    assert not by_name["pump range"].check({"flow_a": 2.5, "flow_b": 1.0})
    assert not by_name["dye bleaching"].check({"catalyst": "EosinY", "light": 80,
                                               "loading": 0.01})
    assert not by_name["dose budget"].check({"tau": 10, "loading": 7, "temperature": 20})
