"""Known constraints are never violated: count violations over many optimiser suggestions.

    .venv/bin/python -m benchmarks.optimizer_constraints              # >= 10,000 suggestions
    .venv/bin/python -m benchmarks.optimizer_constraints --suggestions 2000

Each problem is a campaign on a constrained space typical of the lab (slug volumes that
must fit the slug, total flow within a pump's range, a catalyst that must not see strong
light, a residence-time x loading budget), run with batches, pending points and failed
experiments so that every path of ``ask()`` is used. Every suggestion is checked by a
plain-Python predicate written separately here, not by the optimiser's own constraint
evaluator, so a bug there cannot hide itself. Prints one table; exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from robochem.optimizer import Optimizer

Point = dict[str, Any]
# Cheap search settings: this benchmark is about where suggestions land, not their quality.
FAST = {"surrogate": {"restarts": 0}, "search": {"candidates": 300, "local": 1}}


@dataclass(frozen=True)
class ConstrainedProblem:
    name: str
    spec: dict[str, Any]
    check: Callable[[Point], bool]  # the independent predicate
    value: Callable[[Point], float | None]  # a made-up response; None = failed experiment


def _slug(p: Point) -> float | None:
    total = p["substrate"] + p["reagent"] + p["catalyst"]
    return 80 * math.exp(-((total - 480) / 150) ** 2) * (p["catalyst"] / 120) ** 0.3


def _flows(p: Point) -> float | None:
    if p["flow_a"] > 2.5 and p["flow_b"] > 0.8:
        return None  # over-pressure: an unknown constraint
    return 100 * (1 - math.exp(-(p["flow_a"] + 0.5 * p["flow_b"]))) - 10 * abs(p["flow_b"] - 0.6)


def _dye(p: Point) -> float | None:
    eff = {"TBADT": 1.0, "EosinY": 1.3, "4CzIPN": 0.9}[p["catalyst"]]
    return eff * 60 * (p["light"] / 100) ** 0.5 * math.exp(-((math.log10(p["loading"]) + 2) ** 2))


def _budget(p: Point) -> float | None:
    return 90 * (1 - math.exp(-p["tau"] * p["loading"] / 10)) - 0.5 * p["temperature"] / 10


PROBLEMS = [
    ConstrainedProblem(
        "slug volume",
        {"variables": {"substrate": {"low": 50, "high": 400}, "reagent": {"low": 50, "high": 400},
                       "catalyst": {"low": 10, "high": 200}},
         "constraints": ["substrate + reagent + catalyst <= 650",
                         "reagent >= 0.5 * substrate"]},
        lambda p: (p["substrate"] + p["reagent"] + p["catalyst"] <= 650
                   and p["reagent"] >= 0.5 * p["substrate"]),
        _slug),
    ConstrainedProblem(
        "pump range",
        {"variables": {"flow_a": {"low": 0.01, "high": 5, "log": True},
                       "flow_b": {"low": 0.01, "high": 2, "log": True}},
         "constraints": ["0.1 <= flow_a + flow_b <= 3"]},
        lambda p: 0.1 <= p["flow_a"] + p["flow_b"] <= 3,
        _flows),
    ConstrainedProblem(
        "dye bleaching",
        {"variables": {"catalyst": {"choices": ["TBADT", "EosinY", "4CzIPN"]},
                       "light": {"low": 5, "high": 100},
                       "loading": {"low": 0.001, "high": 0.1, "log": True}},
         "constraints": [{"expression": "catalyst != 'EosinY' or light < 50",
                          "name": "eosin_bleaching"}]},
        lambda p: p["catalyst"] != "EosinY" or p["light"] < 50,
        _dye),
    ConstrainedProblem(
        "dose budget",
        {"variables": {"tau": {"low": 1, "high": 60}, "loading": {"low": 0.1, "high": 10},
                       "temperature": {"type": "integer", "low": 10, "high": 60}},
         "constraints": ["tau * loading <= 60", "temperature <= 20 + tau"]},
        lambda p: p["tau"] * p["loading"] <= 60 and p["temperature"] <= 20 + p["tau"],
        _budget),
]


def _campaign(args: tuple[int, int, int]) -> dict[str, Any]:
    """One campaign: 30 experiments in batches of 1-4, some failures, pending points."""
    warnings.filterwarnings("ignore")
    threadpool_limits(1)
    index, seed, suggestions = args
    problem = PROBLEMS[index]
    spec = {**problem.spec, "objectives": {"y": {"goal": "maximize"}}, "seed": seed,
            "initial_experiments": 4, **FAST}
    opt = Optimizer.from_spec(spec)
    rng = np.random.default_rng([seed, index])
    asked = violations = 0
    examples: list[Point] = []
    while asked < suggestions:
        n = int(rng.integers(1, 5))
        points = opt.ask(n)
        asked += len(points)
        for p in points:
            if not problem.check(p):
                violations += 1
                examples.append(p)
        # tell all but (sometimes) one, which stays pending over the next ask
        keep_pending = len(points) > 1 and rng.random() < 0.3
        told = points[:-1] if keep_pending else points
        values = [problem.value(p) for p in told]
        opt.tell(told, [None if v is None else {"y": v + rng.normal(0, 1)} for v in values])
        if len(opt.observations) >= 30:  # a fresh campaign keeps ask() fast
            opt = Optimizer.from_spec({**spec, "seed": seed + 1000 * asked})
    return {"problem": problem.name, "suggestions": asked, "violations": violations,
            "examples": examples[:3]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suggestions", type=int, default=10000, help="in total")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    seeds = 5
    per = math.ceil(args.suggestions / (len(PROBLEMS) * seeds))
    jobs = [(i, s, per) for i in range(len(PROBLEMS)) for s in range(seeds)]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        records = pool.map(_campaign, jobs)
    print(f"{sum(r['suggestions'] for r in records)} suggestions in "
          f"{time.perf_counter() - t0:.0f} s\n")
    print(f"{'problem':<16} {'suggestions':>11} {'violations':>10}")
    total_v = 0
    for p in PROBLEMS:
        rs = [r for r in records if r["problem"] == p.name]
        v = sum(r["violations"] for r in rs)
        total_v += v
        print(f"{p.name:<16} {sum(r['suggestions'] for r in rs):>11} {v:>10}")
        for r in rs:
            for ex in r["examples"]:
                print(f"    violating: {ex}")
    print(f"{'total':<16} {sum(r['suggestions'] for r in records):>11} {total_v:>10}")
    return 1 if total_v else 0


if __name__ == "__main__":
    sys.exit(main())
