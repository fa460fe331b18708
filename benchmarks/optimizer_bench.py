"""Sample-efficiency and latency benchmark of robochem.optimizer.

    .venv/bin/python -m benchmarks.optimizer_bench            # 20 seeds, every problem
    .venv/bin/python -m benchmarks.optimizer_bench --quick    # 5 seeds, smaller budgets
    .venv/bin/python -m benchmarks.optimizer_bench --problems branin reaction --seeds 20
    .venv/bin/python -m benchmarks.optimizer_bench --seeds 80 --first-seed 20   # fresh seeds

For each problem and method it reports the median [IQR] number of experiments needed
for the best *true* (noiseless) value among the evaluated points to reach 90, 95 and 99 %
of the way from the baseline (domain mean, or 0 yield) to the optimum. A run that never
gets there counts as budget + 1 (shown as ">B" when the median is censored). With both
``robochem`` and ``random`` in the run, it also prints how many times fewer experiments the
optimiser needs to 95 %, with a bootstrap interval over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.optimizer_problems import PROBLEM_NAMES, Problem, problems
from benchmarks.optimizer_reference import run_botorch
from benchmarks.optimizer_reference import unsupported as reference_unsupported
from robochem.optimizer import Optimizer, hypervolume

LEVELS = (0.90, 0.95, 0.99)
OURS = "robochem"


# -- methods --------------------------------------------------------------------------------
def _ours(overrides: dict[str, Any]) -> Callable[[Problem, int, int], list[dict[str, Any]]]:
    """This optimiser with spec overrides (keys starting with '_' are harness options)."""
    spec_overrides = {k: v for k, v in overrides.items() if not k.startswith("_")}
    batch = overrides.get("_batch", 1)

    def wrapped(problem: Problem, seed: int, budget: int) -> list[dict[str, Any]]:
        spec = {**problem.spec, "seed": seed, **spec_overrides}
        opt = Optimizer.from_spec(spec)
        rng = np.random.default_rng([seed, 1])
        history: list[dict[str, Any]] = []
        while len(history) < budget:
            points = opt.ask(min(batch, budget - len(history)))
            results = [problem.observe(p, rng) for p in points]
            opt.tell(points, results)
            history.extend({"point": p} for p in points)
        return history

    return wrapped


def _feasible(problem: Problem, point: dict[str, Any]) -> bool:
    if not problem.spec.get("constraints"):
        return True
    opt = _checker(problem)
    return opt.feasible(point)


_CHECKERS: dict[str, Optimizer] = {}


def _checker(problem: Problem) -> Optimizer:
    if problem.name not in _CHECKERS:
        _CHECKERS[problem.name] = Optimizer.from_spec(problem.spec)
    # from_spec of a constrained problem is cheap; the checker only evaluates constraints
    return _CHECKERS[problem.name]


def _skopt_dims(problem: Problem) -> list[Any]:
    from skopt.space import Categorical, Integer, Real

    dims = []
    for name, v in problem.spec["variables"].items():
        if "choices" in v:
            dims.append(Categorical(v["choices"], name=name))
        elif v.get("type") in ("integer", "int"):
            dims.append(Integer(v["low"], v["high"], name=name))
        else:
            prior = "log-uniform" if v.get("log") else "uniform"
            dims.append(Real(v["low"], v["high"], prior=prior, name=name))
    return dims


def _to_point(problem: Problem, x: list[Any]) -> dict[str, Any]:
    out = {}
    for name, value in zip(problem.spec["variables"], x, strict=True):
        out[name] = value.item() if hasattr(value, "item") else value
    return out


def run_random(problem: Problem, seed: int, budget: int) -> list[dict[str, Any]]:
    from skopt.space import Space

    space = Space(_skopt_dims(problem))
    rng = np.random.default_rng([seed, 2])
    out: list[dict[str, Any]] = []
    while len(out) < budget:
        x = space.rvs(n_samples=1, random_state=int(rng.integers(2**31 - 1)))[0]
        p = _to_point(problem, x)
        if _feasible(problem, p):  # a random planner would also skip impossible points
            out.append({"point": p})
    return out


def run_lhs(problem: Problem, seed: int, budget: int) -> list[dict[str, Any]]:
    from skopt.sampler import Lhs

    dims = _skopt_dims(problem)
    xs = Lhs(criterion="maximin", iterations=200).generate(dims, budget, random_state=seed)
    pts = [_to_point(problem, x) for x in xs]
    feas = [p for p in pts if _feasible(problem, p)]
    extra = run_random(problem, seed, budget - len(feas)) if len(feas) < budget else []
    return [{"point": p} for p in feas] + extra


def run_skopt(problem: Problem, seed: int, budget: int) -> list[dict[str, Any]]:
    """Plain scikit-optimize defaults (GP, gp_hedge, 10 random initial points)."""
    from skopt import Optimizer as SkOptimizer

    obj = problem.objective
    sign = problem.sign
    opt = SkOptimizer(_skopt_dims(problem), random_state=seed)
    rng = np.random.default_rng([seed, 1])
    out: list[dict[str, Any]] = []
    worst = None
    while len(out) < budget:
        x = opt.ask()
        p = _to_point(problem, x)
        r = problem.observe(p, rng) if _feasible(problem, p) else {obj: None}
        v = r.get(obj)
        if v is None:
            # skopt has no notion of failure: report the worst value seen so far.
            v = worst if worst is not None else 0.0
        else:
            worst = v if worst is None else min(worst, v * sign) * sign
        opt.tell(x, -sign * float(v))
        out.append({"point": p})
    return out


METHODS: dict[str, Callable[[Problem, int, int], list[dict[str, Any]]]] = {
    OURS: _ours({}),
    "random": run_random,
    "lhs": run_lhs,
    "skopt": run_skopt,
    # variants, for choosing defaults from data (not run unless asked for)
    "ours-lcb": _ours({"acquisition": {"function": "lcb"}}),
    "ours-pi": _ours({"acquisition": {"function": "pi"}}),
    "ours-ei0": _ours({"acquisition": {"function": "ei", "xi": 0.0}}),
    "ours-ei1": _ours({"acquisition": {"function": "ei", "xi": 0.1}}),
    "ours-init10": _ours({"initial_experiments": 10}),
    "ours-sobol": _ours({"initial_design": "sobol"}),
    "ours-plainlhs": _ours({"initial_design": "plain_lhs"}),
    "ours-maximin": _ours({"initial_design": "lhs"}),
    # the defaults before 25 Nov 2026 (Matern-5/2 kernel, maximin design)
    "ours-old": _ours({"initial_design": "lhs", "surrogate": {"kernel": "matern52"}}),
    "ours-rbf": _ours({"surrogate": {"kernel": "rbf"}}),
    "ours-batch4": _ours({"_batch": 4}),
    "ours-liar4": _ours({"_batch": 4, "batch": {"method": "liar"}}),
    "ours-parego": _ours({"strategy": "parego"}),
    "ours-mle": _ours({"surrogate": {"length_scale_prior": None}}),
    "ours-ehvi": _ours({"strategy": "ehvi"}),
    # an outside reference (needs `pip install botorch`; see benchmarks/optimizer_reference.py)
    "botorch": run_botorch,
}
DEFAULT_METHODS = [OURS, "random", "lhs", "skopt"]


# -- evaluation -----------------------------------------------------------------------------
def _job(args: tuple[str, str, int, int]) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    # Two worker processes on two cores: one BLAS thread each, or they fight.
    threadpool_limits(1)
    pname, method, seed, budget = args
    problem = problems([pname])[pname]
    t0 = time.perf_counter()
    history = METHODS[method](problem, seed, budget)
    elapsed = time.perf_counter() - t0
    truth = [problem.func(h["point"]) for h in history]
    violations = sum(not _feasible(problem, h["point"]) for h in history)
    rec: dict[str, Any] = {"problem": pname, "method": method, "seed": seed,
                           "seconds": elapsed, "violations": violations}
    best, fracs = -math.inf, []
    for t in truth:
        v = t.get(problem.objective)
        if v is not None:
            best = max(best, problem.sign * v)
        fracs.append(problem.fraction(problem.sign * best) if best > -math.inf else 0.0)
    rec["fractions"] = fracs
    if problem.true_hypervolume is not None:
        names = list(problem.spec["objectives"])
        f = [[t[k] for k in names] for t in truth if all(t.get(k) is not None for k in names)]
        ref = np.array([problem.hv_reference[k] for k in names])
        hv = [hypervolume(np.array(f[: i + 1]), ref) if f else 0.0 for i in range(len(f))]
        rec["hv_fraction"] = [h / problem.true_hypervolume for h in hv]
    return rec


def experiments_to_reach(fracs: list[float], level: float) -> int:
    for i, f in enumerate(fracs):
        if f >= level:
            return i + 1
    return len(fracs) + 1


def _stat(values: list[float], budget: int) -> str:
    med = float(np.median(values))
    q1, q3 = np.percentile(values, [25, 75])
    if med > budget:
        return f">{budget}"
    return f"{med:g} [{q1:g}-{q3:g}]"


def summarise(records: list[dict[str, Any]], budgets: dict[str, int]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r["problem"], r["method"]) for r in records},
                  key=lambda k: (k[0], list(METHODS).index(k[1])))
    for pname, method in keys:
        recs = [r for r in records if r["problem"] == pname and r["method"] == method]
        b = budgets[pname]
        row: dict[str, Any] = {"problem": pname, "method": method, "seeds": len(recs),
                               "budget": b}
        for level in LEVELS:
            vals = [experiments_to_reach(r["fractions"], level) for r in recs]
            row[f"n{int(level * 100)}"] = vals
        row["final"] = [r["fractions"][-1] for r in recs]
        row["violations"] = sum(r["violations"] for r in recs)
        row["seconds"] = float(np.mean([r["seconds"] for r in recs]))
        if "hv_fraction" in recs[0]:
            row["hv30"] = [r["hv_fraction"][min(29, len(r["hv_fraction"]) - 1)]
                           if r["hv_fraction"] else 0.0 for r in recs]
        rows.append(row)
    return rows


def ratio_to_random(ours: list[int], rand: list[int], budget: int, n_boot: int = 4000,
                    seed: int = 0) -> tuple[float, float, float, bool]:
    """How many times fewer experiments than random search (ratio of the medians to a
    level), with a 90 % bootstrap interval over seeds, and whether random's median is
    censored (never reached within the budget: the ratio is then a lower bound).

    A 20-seed median moves by one or two experiments between seed sets, so a point ratio
    alone cannot say whether a "2x" figure is met; the interval can."""
    a, b = np.asarray(ours, float), np.asarray(rand, float)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), (n_boot, len(a)))
    ib = rng.integers(0, len(b), (n_boot, len(b)))
    boot = np.median(b[ib], axis=1) / np.median(a[ia], axis=1)
    lo, hi = np.percentile(boot, [5, 95])
    return (float(np.median(b) / np.median(a)), float(lo), float(hi),
            bool(np.median(b) > budget))


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'problem':<26} {'method':<12} {'seeds':>5} {'to 90 %':>14} {'to 95 %':>14} "
            f"{'to 99 %':>14} {'final %':>8} {'viol':>4} {'s/run':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        b = r["budget"]
        print(f"{r['problem']:<26} {r['method']:<12} {r['seeds']:>5} {_stat(r['n90'], b):>14} "
              f"{_stat(r['n95'], b):>14} {_stat(r['n99'], b):>14} "
              f"{100 * float(np.median(r['final'])):>8.1f} {r['violations']:>4} "
              f"{r['seconds']:>6.1f}")
    pairs = [(r, q) for r in rows for q in rows if r["method"] != "random"
             and q["method"] == "random" and q["problem"] == r["problem"]]
    if pairs:
        print()
        print(f"{'problem':<26} {'method':<12} times fewer experiments to 95 % than random, "
              "[90 % bootstrap interval over seeds]")
        for r, q in pairs:
            ratio, lo, hi, censored = ratio_to_random(r["n95"], q["n95"], r["budget"])
            bound = "at least " if censored else ""
            print(f"{r['problem']:<26} {r['method']:<12} {bound}{ratio:.2f}x [{lo:.2f}-{hi:.2f}]")
    mo = [r for r in rows if "hv30" in r]
    if mo:
        print()
        print(f"{'problem':<18} {'method':<12} hypervolume after 30 / true front, median [IQR]")
        for r in mo:
            q1, med, q3 = np.percentile(r["hv30"], [25, 50, 75])
            print(f"{r['problem']:<18} {r['method']:<12} {100 * med:.1f} % "
                  f"[{100 * q1:.1f}-{100 * q3:.1f}]")


def latency(sizes: tuple[int, ...] = (10, 50, 100, 200), dims: int = 5, repeats: int = 5
            ) -> list[tuple[int, float, float, float]]:
    """Median and max wall time of ``ask()`` and its median CPU time (what it costs on an
    idle machine; wall time also counts waiting for a shared CPU), with n observations in
    ``dims`` continuous variables."""
    out = []
    spec = {"variables": {f"x{i}": {"low": 0.0, "high": 1.0} for i in range(dims)},
            "objectives": {"y": {"goal": "minimize"}}, "seed": 0}
    for n in sizes:
        opt = Optimizer.from_spec(spec)
        rng = np.random.default_rng(n)
        pts = [{f"x{i}": float(rng.random()) for i in range(dims)} for _ in range(n)]
        x6 = [np.array([p[f"x{i}"] for i in range(dims)] + [0.5] * (6 - dims)) for p in pts]
        from benchmarks.optimizer_problems import hartmann6

        opt.tell(pts, [hartmann6(x[:6]) + 0.05 * float(rng.normal()) for x in x6])
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            opt.ask(1)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            opt.drop_pending()
        out.append((n, float(np.median(times)), float(np.max(times)), float(np.median(cpu))))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run from here (fresh seeds confirm a choice made on others)")
    parser.add_argument("--problems", nargs="*", default=None)
    parser.add_argument("--methods", nargs="*", default=None,
                        help=f"default {DEFAULT_METHODS}; variants: {list(METHODS)}")
    parser.add_argument("--quick", action="store_true", help="5 seeds (unless --seeds given)")
    parser.add_argument("--budget", type=int, default=None, help="override every budget")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument("--json", default=None, help="append raw records here (JSON lines)")
    parser.add_argument("--report", default=None,
                        help="only print the table of records saved earlier with --json")
    args = parser.parse_args(argv)
    if args.report:
        with open(args.report) as fh:
            saved = [json.loads(line) for line in fh if line.strip()]
        budgets = {r["problem"]: len(r["fractions"]) for r in saved}
        print_table(summarise(saved, budgets))
        return
    seeds = 5 if args.quick and "--seeds" not in (argv or []) and args.seeds == 20 else args.seeds
    if args.latency_only:
        _print_latency()
        return
    names = args.problems or list(PROBLEM_NAMES)
    allp = problems(names)
    methods = args.methods or DEFAULT_METHODS
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; choose from {list(METHODS)}")
    if "botorch" in methods and (reason := reference_unsupported(list(allp.values()))):
        parser.error(reason)
    budgets = {n: args.budget or allp[n].budget for n in names}
    jobs = []
    for n in names:
        ms = methods
        if allp[n].true_hypervolume is not None:
            ms = [m for m in methods if m != "skopt"]  # skopt has no multi-objective mode
        jobs += [(n, m, s, budgets[n]) for m in ms
                 for s in range(args.first_seed, args.first_seed + seeds)]
    t0 = time.perf_counter()
    records = []
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for i, rec in enumerate(pool.imap_unordered(_job, jobs), 1):
            records.append(rec)
            if args.json:  # keep partial results if a long run is interrupted
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            print(f"\r{i}/{len(jobs)} runs", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"{len(jobs)} runs in {time.perf_counter() - t0:.0f} s, {seeds} seeds each\n")
    print_table(summarise(records, budgets))
    if not args.no_latency:
        _print_latency()


def _print_latency() -> None:
    print("\nask() latency, 5 continuous variables, 1 suggestion")
    print(f"{'observations':>12} {'median s':>9} {'max s':>7} {'median CPU s':>13}")
    for n, med, mx, cpu in latency():
        print(f"{n:>12} {med:>9.3f} {mx:>7.3f} {cpu:>13.3f}")


if __name__ == "__main__":
    main()
