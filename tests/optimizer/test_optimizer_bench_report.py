"""The sample-efficiency benchmark reports the "times fewer than random" figure with its
uncertainty over seeds, so a small difference between two 20-seed medians is not read as a
result."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from benchmarks.optimizer_bench import main, ratio_to_random


def test_clear_difference_gives_a_tight_interval_around_the_ratio() -> None:
    ratio, lo, hi, censored = ratio_to_random([10] * 20, [25] * 20, budget=30)
    assert (ratio, lo, hi, censored) == (2.5, 2.5, 2.5, False)


def test_spread_out_runs_give_an_interval_that_can_include_two() -> None:
    rng = np.random.default_rng(0)
    ours = list(rng.integers(4, 25, 20))
    rand = list(np.minimum(rng.integers(8, 45, 20), 31))
    ratio, lo, hi, _ = ratio_to_random(ours, rand, budget=30)
    assert lo < ratio < hi
    assert hi - lo > 0.5  # 20 seeds of this spread cannot pin the ratio down


def test_more_seeds_narrow_the_interval() -> None:
    rng = np.random.default_rng(1)

    def width(n: int) -> float:
        ours = list(rng.integers(4, 25, n))
        rand = list(rng.integers(8, 45, n))
        _, lo, hi, _ = ratio_to_random(ours, rand, budget=60)
        return hi - lo

    assert width(400) < 0.5 * width(20)


def test_random_never_reaching_the_level_is_a_lower_bound() -> None:
    *_, censored = ratio_to_random([12] * 10, [31] * 10, budget=30)
    assert censored


def _record(problem: str, method: str, seed: int, reach: int) -> dict[str, object]:
    fractions = [0.5] * (reach - 1) + [0.96] * (30 - reach + 1)
    return {"problem": problem, "method": method, "seed": seed, "seconds": 0.1,
            "violations": 0, "fractions": fractions[:30]}


def test_report_prints_the_ratio_for_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "runs.jsonl"
    records = [_record("cf3", "robochem", s, 10) for s in range(5)]
    records += [_record("cf3", "random", s, 24) for s in range(5)]
    records += [_record("cf3", "lhs", s, 20) for s in range(5)]
    saved.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    main(["--report", str(saved)])
    out = capsys.readouterr().out
    assert "times fewer experiments to 95 % than random" in out
    ratios = out.splitlines()[-2:]
    # every method, not only robochem, is compared with random (an outside reference too)
    assert ratios[0].split()[:2] == ["cf3", "robochem"] and "2.40x [2.40-2.40]" in ratios[0]
    assert ratios[1].split()[:2] == ["cf3", "lhs"] and "1.20x [1.20-1.20]" in ratios[1]


def test_the_botorch_reference_says_what_it_needs_before_any_run_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "botorch", None)  # not installed
    with pytest.raises(SystemExit):
        main(["--methods", "botorch", "--problems", "branin", "--seeds", "1", "--no-latency"])
    assert "pip install botorch" in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "botorch", types.ModuleType("botorch"))  # installed
    with pytest.raises(SystemExit):
        main(["--methods", "botorch", "--problems", "reaction", "--seeds", "1", "--no-latency"])
    err = capsys.readouterr().err
    assert "continuous variables only" in err and "reaction has discrete variables" in err
