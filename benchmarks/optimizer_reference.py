"""An outside reference for the optimiser benchmark: BoTorch with its documented defaults.

Random search and plain scikit-optimize say whether robochem's optimiser is better than doing
little; they cannot say whether a figure it misses is within reach at all. BoTorch (Meta's
Bayesian-optimisation library) is the usual state-of-the-art reference, so the benchmark can
run it on the same problems, with the same noise and the same metric:

    pip install botorch          # not a robochem dependency: ~200 MB of PyTorch
    .venv/bin/python -m benchmarks.optimizer_bench --methods robochem botorch random \\
        --problems cf3-trifluoromethylation --seeds 100 --no-latency

Settings, all BoTorch's defaults except the design size, which matches robochem's:
a scrambled Sobol design of 5 points on the unit cube (log variables on a log scale), then one
point at a time from ``SingleTaskGP`` (its default priors, input normalisation and outcome
standardisation) and ``qLogNoisyExpectedImprovement``, optimised with ``optimize_acqf``
(10 restarts from 512 raw samples). Continuous variables only: a categorical one needs a
mixed model whose settings would be ours, not BoTorch's defaults.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.optimizer_problems import Problem
from robochem.optimizer.space import parse_variable

INITIAL_POINTS = 5


def _to_point(problem: Problem, unit: list[float]) -> dict[str, Any]:
    """The unit cube's point in the problem's variables, mapped as robochem maps them."""
    point: dict[str, Any] = {}
    for (name, spec), u in zip(problem.spec["variables"].items(), unit, strict=True):
        variable = parse_variable(name, spec)
        point[name] = variable.native(variable.from_unit(np.array([u]))[0])
    return point


def unsupported(problems: list[Problem]) -> str | None:
    """Why the BoTorch reference cannot run on these problems (None if it can): asked for
    before a benchmark starts its workers, so the user gets one clear line."""
    try:
        import botorch  # noqa: F401
    except ImportError as exc:
        return f"the 'botorch' method needs BoTorch ({exc}): pip install botorch"
    for problem in problems:
        variables = problem.spec["variables"]
        discrete = [n for n, v in variables.items()
                    if "choices" in v or v.get("type") in ("integer", "int")]
        if discrete or problem.spec.get("constraints") or len(problem.spec["objectives"]) > 1:
            what = f"discrete variables {discrete}" if discrete else "constraints or two objectives"
            return (f"the 'botorch' reference runs unconstrained single-objective problems with "
                    f"continuous variables only; {problem.name} has {what}")
    return None


def run_botorch(problem: Problem, seed: int, budget: int) -> list[dict[str, Any]]:
    reason = unsupported([problem])
    if reason:
        raise RuntimeError(reason)
    import torch

    torch.set_num_threads(1)  # two benchmark workers on two cores, as for the other methods
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # BoTorch advises double precision for GP fits
    try:
        return _botorch_campaign(problem, seed, budget)
    finally:
        torch.set_default_dtype(before)


def _botorch_campaign(problem: Problem, seed: int, budget: int) -> list[dict[str, Any]]:
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    variables = problem.spec["variables"]
    torch.manual_seed(seed)
    dtype = torch.float64
    dim = len(variables)
    sign = problem.sign
    rng = np.random.default_rng([seed, 1])  # the same noise stream as the other methods
    x = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed).draw(INITIAL_POINTS)
    ys: list[float] = []
    history: list[dict[str, Any]] = []

    def evaluate(unit: list[float]) -> None:
        point = _to_point(problem, unit)
        value = problem.observe(point, rng)[problem.objective]
        ys.append(sign * float(value))  # type: ignore[arg-type]  # unconstrained: never None
        history.append({"point": point})

    for row in x[:budget]:
        evaluate(row.tolist())
    bounds = torch.stack([torch.zeros(dim, dtype=dtype), torch.ones(dim, dtype=dtype)])
    while len(history) < budget:
        model = SingleTaskGP(x, torch.tensor(ys, dtype=dtype).unsqueeze(-1))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acq = qLogNoisyExpectedImprovement(model, x, prune_baseline=True)
        cand, _ = optimize_acqf(acq, bounds, q=1, num_restarts=10, raw_samples=512)
        x = torch.cat([x, cand.detach()])
        evaluate(cand[0].tolist())
    return history
