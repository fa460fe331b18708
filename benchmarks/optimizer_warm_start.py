"""Warm start across substrates: does an earlier campaign on one substrate shorten the next?

    .venv/bin/python -m benchmarks.optimizer_warm_start [--seeds 20] [--earlier 15]
        [--budget 30] [--workers 2] [--presets hat-alkylation ...] [--pooled]

For every virtual-lab preset with a substrate variant (``<preset>-b``, docs/virtual-lab.md,
"Substrate variants"), per seed: an earlier campaign of ``--earlier`` experiments on the
preset (robochem's defaults, the example protocol's search space, 1.5 % noise), then a
campaign on the variant from cold and one warm-started from the earlier campaign's results
as a related task (``Optimizer.warm_start(..., task=...)``, what ``optimizer.warm_start``
in a protocol gives). ``--pooled`` adds the earlier results taken as the variant's own.
Prints, per preset, the median experiments to 95 % of the variant's documented optimum
(true yield, not the noisy reading; a run that never gets there counts as budget + 1)
and the warm / cold ratio (figure to reach: <= 0.6).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import warnings
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.optimizer_problems import Problem, preset_problem
from robochem.optimizer import Optimizer

LEVEL = 0.95
TARGET_RATIO = 0.6
MODES = ("cold", "related", "pooled")


def variant_problem(name: str, budget: int) -> Problem:
    """The variant through the same oracle, in the original's search space (same example
    protocol, so the same scales)."""
    from robochem.simulator.reactions import get_preset, predict

    base = preset_problem(name, budget=budget)
    variant = get_preset(f"{name}-b")

    def func(p: dict[str, Any]) -> dict[str, float | None]:
        return {"yield": float(predict(variant, p)["yield"])}

    return Problem(f"{name}-b", base.spec, func, variant.optima["yield"].yield_percent,
                   0.0, budget, noise=base.noise, description=f"substrate variant of {name}")


def campaign(problem: Problem, seed: int, budget: int,
             prior: tuple[list[dict[str, Any]], list[Any]] | None = None,
             task: str | None = None) -> tuple[list[dict[str, Any]], list[Any], list[float]]:
    """(points, observed results, true yields) of one sequential campaign."""
    opt = Optimizer.from_spec({**problem.spec, "seed": seed})
    if prior is not None:
        opt.warm_start(*prior, task=task)
    rng = np.random.default_rng([seed, 1])
    points: list[dict[str, Any]] = []
    observed: list[Any] = []
    truth: list[float] = []
    while len(points) < budget:
        (point,) = opt.ask(1)
        result = problem.observe(point, rng)
        opt.tell([point], [result])
        points.append(point)
        observed.append(result)
        truth.append(float(problem.func(point)["yield"] or 0.0))
    return points, observed, truth


def to_level(truth: list[float], optimum: float, budget: int) -> int:
    for i, y in enumerate(truth):
        if y >= LEVEL * optimum:
            return i + 1
    return budget + 1


def _job(args: tuple[str, int, int, int, tuple[str, ...]]) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    threadpool_limits(1)
    name, seed, earlier, budget, modes = args
    original = preset_problem(name, budget=earlier)
    variant = variant_problem(name, budget)
    points, observed, _ = campaign(original, seed + 1000, earlier)
    out: dict[str, Any] = {"preset": name, "seed": seed}
    for mode in modes:
        prior = None if mode == "cold" else (points, observed)
        task = "earlier substrate" if mode == "related" else None
        _, _, truth = campaign(variant, seed, budget, prior, task)
        out[mode] = to_level(truth, variant.optimum, budget)
    return out


def main(argv: list[str] | None = None) -> None:
    from robochem.simulator.reactions import PRESETS, VARIANTS

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--earlier", type=int, default=15,
                        help="experiments of the earlier campaign")
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--presets", nargs="*",
                        default=[p for p in PRESETS if f"{p}-b" in VARIANTS])
    parser.add_argument("--pooled", action="store_true",
                        help="also pool the earlier results as the variant's own")
    args = parser.parse_args(argv)
    modes = MODES if args.pooled else MODES[:2]
    jobs = [(p, s, args.earlier, args.budget, modes)
            for p in args.presets for s in range(args.seeds)]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        records = pool.map(_job, jobs)
    print(f"warm start across substrates: {args.seeds} seeds, earlier campaign "
          f"{args.earlier} experiments, budget {args.budget}, one at a time, "
          f"{time.perf_counter() - t0:.0f} s")
    head = f"{'preset':<28}" + "".join(f"{m + ' median':>16}" for m in modes)
    print(head + f"{'related/cold':>14}")
    for name in args.presets:
        rows = [r for r in records if r["preset"] == name]
        medians = {m: float(np.median([r[m] for r in rows])) for m in modes}
        ratio = medians["related"] / medians["cold"]
        mark = "met" if ratio <= TARGET_RATIO else "not met"
        print(f"{name + '-b':<28}" + "".join(f"{medians[m]:>16.1f}" for m in modes)
              + f"{ratio:>10.2f} ({mark}, figure <= {TARGET_RATIO})")


if __name__ == "__main__":
    main()
