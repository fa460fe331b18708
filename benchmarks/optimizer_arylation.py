"""Replay benchmark on real data: Pd-catalysed direct arylation (Shields et al., Nature 2021).

    .venv/bin/python -m benchmarks.optimizer_arylation [--seeds 50] [--batch 5] [--budget 30]

Every condition of the 12 ligand x 4 base x 4 solvent x 3 temperature x 3 concentration grid
was measured, so the optimiser's suggestions are answered by table look-up. Reports the mean
best yield after 10, 20 and 30 experiments and how many runs reach >= 99 %, next to the
published EDBO and random-search figures.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from robochem.optimizer import Optimizer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "direct_arylation.csv"
PUBLISHED = {"EDBO (50 runs)": (74.1, 91.6, 97.5), "random (500 seeds)": (66.0, 78.1, 83.8)}
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


def spec_for(levels: dict[str, list[Any]], seed: int, batch: int,
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The optimiser spec: chemical choices one-hot, numeric levels as 1-D descriptors."""
    variables: dict[str, Any] = {}
    for name in COLUMNS:
        choices = sorted(levels[name])
        if name in ("concentration", "temperature"):
            # ordered levels: a descriptor keeps their order and spacing for the GP
            variables[name] = {"choices": [str(c) for c in choices],
                               "descriptors": {str(c): [c] for c in choices}}
        else:
            variables[name] = {"choices": choices}
    spec = {"variables": variables, "objectives": {"yield": {"goal": "maximize"}},
            "initial_experiments": batch, "seed": seed,
            "surrogate": {"output_transform": "none"}}
    spec.update(overrides or {})
    return spec


def run(args: tuple[int, int, int, dict[str, Any]]) -> list[float]:
    warnings.filterwarnings("ignore")
    threadpool_limits(1)
    seed, batch, budget, overrides = args
    table, levels = load()
    opt = Optimizer.from_spec(spec_for(levels, seed, batch, overrides))
    best, trace = -np.inf, []
    seen: set[tuple[Any, ...]] = set()
    while len(trace) < budget:
        points = opt.ask(min(batch, budget - len(trace)))
        keys = {tuple(p.values()) for p in points}
        if len(keys) < len(points) or keys & seen:
            raise AssertionError("a condition was suggested twice")
        seen |= keys
        ys = [table[tuple(float(p[k]) if k in ("concentration", "temperature") else p[k]
                          for k in COLUMNS)] for p in points]
        opt.tell(points, ys)
        for y in ys:
            best = max(best, y)
            trace.append(best)
    return trace


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--transform", default="none", choices=["none", "rank", "log"])
    parser.add_argument("--acquisition", default="ei", choices=["ei", "pi", "lcb"])
    args = parser.parse_args(argv)
    overrides = {"surrogate": {"output_transform": args.transform},
                 "acquisition": {"function": args.acquisition}}
    jobs = [(s, args.batch, args.budget, overrides) for s in range(args.seeds)]
    t0 = time.perf_counter()
    traces = []
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for i, tr in enumerate(pool.imap_unordered(run, jobs), 1):
            traces.append(tr)
            print(f"\r{i}/{len(jobs)} runs", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    t = np.array(traces)
    print(f"direct arylation replay: {args.seeds} seeds, batches of {args.batch}, "
          f"transform={args.transform}, acquisition={args.acquisition}, "
          f"{time.perf_counter() - t0:.0f} s")
    marks = [m for m in (10, 20, 30) if m <= args.budget]
    print(f"{'strategy':<22}" + "".join(f"{'after ' + str(m):>10}" for m in marks)
          + f"{'>=99 % by ' + str(args.budget):>14}")
    print(f"{'robochem':<22}" + "".join(f"{t[:, m - 1].mean():>10.1f}" for m in marks)
          + f"{int((t[:, -1] >= 99).sum()):>11}/{len(t)}")
    for name, vals in PUBLISHED.items():
        print(f"{name:<22}" + "".join(f"{v:>10.1f}" for v in vals[: len(marks)]))


if __name__ == "__main__":
    main()
