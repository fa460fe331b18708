"""Replay benchmark on real data: Pd-catalysed direct arylation (Shields et al., Nature 2021).

    .venv/bin/python -m benchmarks.optimizer_arylation [--seeds 50] [--batch 5] [--budget 30]
        [--workers 1] [--encoding descriptors|raw|onehot] [--components 5] [--transform none]
        [--batch-method believer] [--initial N] [--ordinal descriptor|integer|numeric]
        [--compare skopt random]
    .venv/bin/python -m benchmarks.optimizer_arylation --latency

Every condition of the 12 ligand x 4 base x 4 solvent x 3 temperature x 3 concentration grid
was measured, so the optimiser's suggestions are answered by table look-up. Ligands, bases
and solvents are described by RDKit descriptors (``robochem.optimizer.structures``, reduced
to a few principal components per chemical type) unless ``--encoding onehot``. Prints the
mean and median best yield after 10, 20 and 30 experiments and how many runs reach >= 99 %,
next to the published EDBO, expert-chemist and random-search figures. Measured numbers:
docs/optimizer.md, "Direct arylation".
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from robochem.optimizer import Optimizer, structures

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "direct_arylation.csv"
# Mean best yield after 10 / 20 / 30 experiments (shared/data/README.md).
PUBLISHED = {"EDBO (published, 50 runs)": (74.1, 91.6, 97.5),
             "experts (50 chemists)": (79.8, 87.5, 92.2),
             "random (500 seeds)": (66.0, 78.1, 83.8)}
MARKS = (10, 20, 30)
TARGET = 99.0
COLUMNS = {"base": "Base_SMILES", "ligand": "Ligand_SMILES", "solvent": "Solvent_SMILES",
           "concentration": "Concentration", "temperature": "Temp_C"}


def load(path: Path = DATA) -> tuple[dict[tuple[Any, ...], float], dict[str, list[Any]]]:
    """Table (base, ligand, solvent, concentration, temperature) -> yield, and the levels."""
    table: dict[tuple[Any, ...], float] = {}
    levels: dict[str, list[Any]] = {k: [] for k in COLUMNS}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = []
            for name, col in COLUMNS.items():
                value: Any = row[col]
                if name in ("concentration", "temperature"):
                    value = float(value)
                if value not in levels[name]:
                    levels[name].append(value)
                key.append(value)
            table[tuple(key)] = float(row["yield"])
    return table, levels


ENCODINGS = ("descriptors", "raw", "onehot")
ORDINALS = ("descriptor", "integer", "categorical", "numeric")
STRATEGIES = ("robochem", "skopt", "random")
ORDERED = ("concentration", "temperature")
CHEMICALS = ("base", "ligand", "solvent")


def spec_for(levels: dict[str, list[Any]], seed: int, batch: int,
             overrides: dict[str, Any] | None = None, encoding: str = "descriptors",
             components: int | None = 5, ordinal: str = "descriptor") -> dict[str, Any]:
    """The optimiser spec. Temperature and concentration are ordered levels: categorical
    with their value as a 1-D descriptor (``ordinal="descriptor"``) or an integer level
    index 0, 1, 2 (``ordinal="integer"``; an ordinary numeric variable of the optimiser), or
    plain numbers between the lowest and highest level (``ordinal="numeric"``: what a
    protocol gives; each suggestion is snapped to the nearest level before it is measured).
    Chemicals: ``descriptors`` = RDKit descriptors of each ligand/base/solvent, standardised
    and reduced to at most ``components`` principal components per chemical type; ``raw`` =
    the standardised descriptors without projection; ``onehot`` = no descriptors."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    variables: dict[str, Any] = {}
    for name in COLUMNS:
        choices = sorted(levels[name])
        if name in ORDERED and ordinal == "numeric":
            variables[name] = {"low": min(choices), "high": max(choices)}
        elif name in ORDERED and ordinal == "integer":
            variables[name] = {"type": "integer", "low": 0, "high": len(choices) - 1}
        elif name in ORDERED and ordinal == "categorical":
            variables[name] = {"choices": [str(c) for c in choices]}
        elif name in ORDERED:
            # ordered levels: a descriptor keeps their order and spacing for the GP
            variables[name] = {"choices": [str(c) for c in choices],
                               "descriptors": {str(c): [c] for c in choices}}
        elif encoding == "onehot":
            variables[name] = {"choices": choices}
        elif encoding == "descriptors" and components == structures.DEFAULT_COMPONENTS:
            # what a protocol gives: each choice's structure, described by the optimiser
            variables[name] = {"choices": choices, "smiles": {c: c for c in choices}}
        else:
            vectors = structures.reduced_descriptors(
                choices, components if encoding == "descriptors" else None)
            variables[name] = {"choices": choices, "descriptors": vectors}
    spec = {"variables": variables, "objectives": {"yield": {"goal": "maximize"}},
            "initial_experiments": batch, "seed": seed,
            "surrogate": {"output_transform": "none"}}
    spec.update(overrides or {})
    return spec


def grid_key(point: dict[str, Any], levels: dict[str, list[Any]]) -> tuple[Any, ...]:
    """The table key of a suggestion: a level given by its text, by its index (integer
    levels) or by a number between the levels (snapped to the nearest)."""
    key: list[Any] = []
    for k in COLUMNS:
        value = point[k]
        if k in ORDERED:
            ordered = sorted(levels[k])
            if isinstance(value, str):
                value = float(value)
            elif isinstance(value, int):
                value = ordered[value]
            else:
                value = min(ordered, key=lambda level, v=float(value): abs(level - v))
        key.append(value)
    return tuple(key)


def measured_point(point: dict[str, Any], key: tuple[Any, ...], ordinal: str) -> dict[str, Any]:
    """What was run: with numeric levels, the snapped values (the optimiser is told those)."""
    if ordinal != "numeric":
        return point
    return {**point, **{k: key[list(COLUMNS).index(k)] for k in ORDERED}}


@dataclass(frozen=True)
class Settings:
    """One benchmark configuration (the defaults are the benchmark's default)."""

    batch: int = 5
    budget: int = 30
    encoding: str = "descriptors"
    components: int | None = 5
    ordinal: str = "descriptor"
    overrides: dict[str, Any] = field(default_factory=dict)
    strategy: str = "robochem"


def run(seed: int, settings: Settings = Settings(), path: Path = DATA) -> list[float]:
    """One campaign; the best yield so far after every experiment."""
    warnings.filterwarnings("ignore")
    threadpool_limits(1)
    table, levels = load(path)
    if settings.strategy == "random":
        keys = list(table)
        order = np.random.default_rng(seed).permutation(len(keys))[: settings.budget]
        return list(np.maximum.accumulate([table[keys[i]] for i in order]))
    ask, tell = _campaign(seed, settings, levels)
    # Numbers snapped to the levels can repeat a condition; then it is measured again and
    # costs an experiment. Levels given as choices never should.
    repeats_allowed = settings.ordinal == "numeric"
    best, trace = -np.inf, []
    seen: set[tuple[Any, ...]] = set()
    while len(trace) < settings.budget:
        points = ask(min(settings.batch, settings.budget - len(trace)))
        keys = [grid_key(p, levels) for p in points]
        if not repeats_allowed and (len(set(keys)) < len(keys) or set(keys) & seen):
            raise AssertionError("a condition was suggested twice")
        seen |= set(keys)
        ys = [table[key] for key in keys]
        tell([measured_point(p, k, settings.ordinal) for p, k in zip(points, keys, strict=True)],
             ys)
        for y in ys:
            best = max(best, y)
            trace.append(best)
    return trace


def _campaign(seed: int, settings: Settings, levels: dict[str, list[Any]]) -> tuple[Any, Any]:
    """ask(n) and tell(points, yields) of the strategy."""
    spec = spec_for(levels, seed, settings.batch, settings.overrides, settings.encoding,
                    settings.components, settings.ordinal)
    if settings.strategy == "robochem":
        opt = Optimizer.from_spec(spec)
        return opt.ask, opt.tell
    if settings.strategy != "skopt":
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {settings.strategy!r}")
    # Plain scikit-optimize on the same space, its defaults (GP, gp_hedge, 10 random
    # points; a batch by constant liar): what a chemist gets from the library alone.
    import skopt

    names = list(spec["variables"])
    dims = []
    for name in names:
        v = spec["variables"][name]
        if "choices" in v:
            dims.append(skopt.space.Categorical(v["choices"], name=name))
        elif v.get("type") == "integer":
            dims.append(skopt.space.Integer(v["low"], v["high"], name=name))
        else:
            dims.append(skopt.space.Real(v["low"], v["high"], name=name))
    opt_skopt = skopt.Optimizer(dims, random_state=seed)

    def ask(n: int) -> list[dict[str, Any]]:
        xs = opt_skopt.ask(n) if n > 1 else [opt_skopt.ask()]
        return [dict(zip(names, x, strict=True)) for x in xs]

    def tell(points: list[dict[str, Any]], ys: list[float]) -> None:
        opt_skopt.tell([[p[n] for n in names] for p in points], [-y for y in ys])

    return ask, tell


def _run_job(job: tuple[int, Settings]) -> list[float]:
    return run(*job)


def replay(seeds: Sequence[int], settings: Settings = Settings(), workers: int = 1,
           progress: bool = False) -> np.ndarray:
    """Traces of the given seeds, one row per seed (in seed order)."""
    jobs = [(s, settings) for s in seeds]
    if workers <= 1:
        rows = []
        for i, job in enumerate(jobs, 1):
            rows.append(_run_job(job))
            if progress:
                print(f"\r{i}/{len(jobs)} runs", end="", file=sys.stderr, flush=True)
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            rows = []
            for i, tr in enumerate(pool.imap(_run_job, jobs), 1):
                rows.append(tr)
                if progress:
                    print(f"\r{i}/{len(jobs)} runs", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return np.array(rows)


def summary(traces: np.ndarray, marks: Sequence[int] = MARKS) -> dict[str, Any]:
    """Mean and median best yield after each mark, and how many runs reach >= 99 %."""
    marks = [m for m in marks if m <= traces.shape[1]]
    return {"mean": [float(traces[:, m - 1].mean()) for m in marks],
            "median": [float(np.median(traces[:, m - 1])) for m in marks],
            "hits": int((traces[:, -1] >= TARGET).sum()), "runs": len(traces),
            "marks": marks}


def table_text(result: dict[str, Any], label: str = "robochem",
               others: dict[str, dict[str, Any]] | None = None) -> str:
    """The robochem row (and ``others``, label -> summary, measured in the same run) next
    to the published figures, as printed by the benchmark."""
    marks = result["marks"]
    budget = marks[-1] if marks else 0
    head = (f"{'strategy':<26}" + "".join(f"{'mean ' + str(m):>9}" for m in marks)
            + "".join(f"{'median ' + str(m):>11}" for m in marks) + f"{'>=99 %':>10}")
    lines = [head]
    for name, row in {label: result, **(others or {})}.items():
        hits = f"{row['hits']}/{row['runs']}"
        lines.append(f"{name:<26}" + "".join(f"{v:>9.1f}" for v in row["mean"])
                     + "".join(f"{v:>11.1f}" for v in row["median"]) + f"{hits:>10}")
    for name, vals in PUBLISHED.items():
        lines.append(f"{name:<26}" + "".join(f"{v:>9.1f}" for v in vals[: len(marks)])
                     + "".join(f"{'-':>11}" for _ in marks) + f"{'-':>10}")
    lines.append(f"(>=99 %: runs reaching {TARGET:g} % yield within {budget} experiments; "
                 "published medians and hit counts are not available)")
    return "\n".join(lines)


def tell_ask_seconds(observations: int = 100, repeats: int = 5) -> tuple[float, float]:
    """Median wall and CPU seconds of ``tell`` (one result) + ``ask(1)`` with
    ``observations`` results in the arylation space as a protocol gives it: three
    categoricals with structures (12 ligands, 4 bases, 4 solvents) and temperature and
    concentration as numbers. Figure to reach (issue 23): <= 1 s on 2 cores."""
    table, levels = load()
    spec = spec_for(levels, seed=0, batch=1, ordinal="numeric")
    opt = Optimizer.from_spec(spec)
    keys = list(table)
    rng = np.random.default_rng(0)
    names = list(COLUMNS)

    def point(key: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(names, key, strict=True))

    chosen = rng.permutation(len(keys))
    told = [keys[i] for i in chosen[:observations]]
    opt.tell([point(k) for k in told], [table[k] for k in told])
    wall, cpu = [], []
    for extra in chosen[observations : observations + repeats]:
        key = keys[extra]
        t0, c0 = time.perf_counter(), time.process_time()
        opt.tell([point(key)], [table[key]])
        opt.ask(1)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        opt.drop_pending()
    return float(np.median(wall)), float(np.median(cpu))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--encoding", default="descriptors", choices=ENCODINGS)
    parser.add_argument("--components", type=int, default=5,
                        help="principal components per chemical type (descriptors encoding)")
    parser.add_argument("--ordinal", default="descriptor", choices=ORDINALS,
                        help="temperature and concentration: 1-D descriptor or level index")
    parser.add_argument("--transform", default="none", choices=["none", "rank", "log"])
    parser.add_argument("--descriptor-prior", type=float, nargs=2, default=None,
                        metavar=("SHAPE", "RATE"),
                        help="Gamma prior on descriptor length scales")
    parser.add_argument("--acquisition", default="ei", choices=["ei", "pi", "lcb"])
    parser.add_argument("--xi", type=float, default=None)
    parser.add_argument("--batch-method", default="believer", choices=["believer", "liar"])
    parser.add_argument("--explore-xi", type=float, default=None,
                        help="EI xi for the 2nd..nth point of a batch")
    parser.add_argument("--liar", default="min", choices=["min", "mean", "max"])
    parser.add_argument("--initial", type=int, default=None,
                        help="initial design size (default: one batch)")
    parser.add_argument("--latency", action="store_true",
                        help="only time tell + ask at 100 observations (structured space)")
    parser.add_argument("--compare", nargs="*", default=[], choices=STRATEGIES[1:],
                        help="also run these strategies on the same seeds and space "
                             "(plain scikit-optimize with its defaults; random search)")
    args = parser.parse_args(argv)
    if args.latency:
        threadpool_limits(1)
        wall, cpu = tell_ask_seconds()
        print(f"tell + ask(1) at 100 observations, 3 structured categoricals (12/4/4) and 2 "
              f"numbers: median {wall:.2f} s wall, {cpu:.2f} s CPU (figure to reach: <= 1 s)")
        return
    acq: dict[str, Any] = {"function": args.acquisition}
    if args.xi is not None:
        acq["xi"] = args.xi
    surrogate: dict[str, Any] = {"output_transform": args.transform}
    if args.descriptor_prior is not None:
        surrogate["descriptor_prior"] = args.descriptor_prior
    overrides: dict[str, Any] = {"surrogate": surrogate,
                                 "acquisition": acq,
                                 "batch": {"method": args.batch_method, "liar": args.liar}}
    if args.explore_xi is not None:
        overrides["batch"]["explore_xi"] = args.explore_xi
    if args.initial is not None:
        overrides["initial_experiments"] = args.initial
    settings = Settings(batch=args.batch, budget=args.budget, encoding=args.encoding,
                        components=args.components, ordinal=args.ordinal, overrides=overrides)
    t0 = time.perf_counter()
    traces = replay(range(args.seeds), settings, args.workers, progress=True)
    others = {
        {"skopt": "scikit-optimize (plain)", "random": "random search"}[name]: summary(
            replay(range(args.seeds), replace(settings, strategy=name), args.workers))
        for name in args.compare
    }
    print(f"direct arylation replay: {args.seeds} seeds, batches of {args.batch}, "
          f"encoding={args.encoding}"
          + (f" ({args.components} PCs)" if args.encoding == "descriptors" else "")
          + f", ordinal={args.ordinal}, descriptor prior={args.descriptor_prior or 'default'}, "
          + f"transform={args.transform}, "
          + f"acquisition={args.acquisition}"
          + (f" xi={args.xi:g}" if args.xi is not None else "")
          + f", batch={args.batch_method}"
          + (f" explore_xi={args.explore_xi:g}" if args.explore_xi is not None else "")
          + (f"/{args.liar}" if args.batch_method == "liar" else "")
          + f", initial={args.initial or args.batch}, {time.perf_counter() - t0:.0f} s")
    print(table_text(summary(traces), others=others))


if __name__ == "__main__":
    main()
