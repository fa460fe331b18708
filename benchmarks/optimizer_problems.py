"""Benchmark problems for the optimiser behind one small interface, so virtual-lab presets
(``reactions predict``) can be plugged in later next to the standard functions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Point = dict[str, Any]
Result = dict[str, float | None]


@dataclass
class Problem:
    """A benchmark problem.

    ``func`` is the noiseless truth (objective name -> value, ``None`` for a failed run);
    ``noise`` is the standard deviation added to what the optimiser sees. Progress is
    ``(best true value so far - baseline) / (optimum - baseline)`` on the first objective.
    """

    name: str
    spec: dict[str, Any]
    func: Callable[[Point], Result]
    optimum: float
    baseline: float
    budget: int
    noise: float = 0.0
    description: str = ""
    # two-objective problems: hypervolume of the true front for this reference
    hv_reference: dict[str, float] | None = None
    true_hypervolume: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def objective(self) -> str:
        return next(iter(self.spec["objectives"]))

    @property
    def sign(self) -> float:
        goal = self.spec["objectives"][self.objective].get("goal", "maximize")
        return 1.0 if goal == "maximize" else -1.0

    def observe(self, point: Point, rng: np.random.Generator) -> Result:
        """What the lab reports: the truth plus measurement noise."""
        truth = self.func(point)
        if self.noise <= 0:
            return truth
        return {k: (None if v is None else v + self.noise * float(rng.normal()))
                for k, v in truth.items()}

    def fraction(self, true_value: float) -> float:
        return (true_value - self.baseline) / (self.optimum - self.baseline)


# -- standard functions ---------------------------------------------------------------------
def branin(x1: float, x2: float) -> float:
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x: np.ndarray) -> float:
    inner = (_H6_A * (x[None, :] - _H6_P) ** 2).sum(axis=1)
    return float(-(_H6_ALPHA * np.exp(-inner)).sum())


def _mean_over_domain(fn: Callable[[np.random.Generator], float], n: int = 20000) -> float:
    rng = np.random.default_rng(2024)
    return float(np.mean([fn(rng) for _ in range(n)]))


# -- synthetic photochemistry -----------------------------------------------------------------
_CATALYST = {"TBADT": (1.0, 0.0), "NaDT": (0.93, 0.25), "EosinY": (0.55, -0.3),
             "4CzIPN": (0.75, 0.4)}


def reaction_yield(p: Point) -> float:
    """A plausible photochemical yield surface with an interior optimum (about 89 %).

    Conversion rises with residence time x photon dose, catalyst loading has an optimum on a
    log scale (too much absorbs the light), over-irradiation degrades the product, and the
    catalysts differ in efficiency and in their best loading.
    """
    eff, shift = _CATALYST[p["catalyst"]]
    tau = p["residence_time"] / 60.0  # min
    light = p["light"] / 100.0
    logc = math.log10(p["loading"])
    best_logc = -2.0 + shift
    k = 0.35 * light * math.exp(-((logc - best_logc) ** 2) / 0.5)
    conversion = 1.0 - math.exp(-k * tau)
    degradation = math.exp(-0.0009 * (light * tau) ** 2)
    return 100.0 * eff * conversion * degradation


def reaction_throughput(p: Point) -> float:
    """Product per unit time: yield / residence time (scaled)."""
    return reaction_yield(p) * 60.0 / p["residence_time"]


_REACTION_VARS = {
    "residence_time": {"low": 60, "high": 1800},
    "light": {"low": 5, "high": 100},
    "loading": {"low": 0.001, "high": 0.1, "log": True},
    "catalyst": {"choices": list(_CATALYST)},
}


def _grid_optimum(fn: Callable[[Point], float]) -> float:
    best = -math.inf
    for cat in _CATALYST:
        for t in np.linspace(60, 1800, 120):
            for light in np.linspace(5, 100, 60):
                for lc in np.linspace(-3, -1, 60):
                    best = max(best, fn({"residence_time": t, "light": light,
                                         "loading": 10**lc, "catalyst": cat}))
    return best


def _reaction_optimum() -> float:
    # refine the grid optimum with a local search
    from scipy.optimize import minimize

    best = -math.inf
    for cat in _CATALYST:
        def neg(v: np.ndarray, cat: str = cat) -> float:
            t, light, lc = v
            if not (60 <= t <= 1800 and 5 <= light <= 100 and -3 <= lc <= -1):
                return 1e9
            return -reaction_yield({"residence_time": t, "light": light, "loading": 10**lc,
                                    "catalyst": cat})
        for t0 in (200, 600, 1200):
            for l0 in (30, 70, 100):
                r = minimize(neg, np.array([t0, l0, -2.0]), method="Nelder-Mead",
                             options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
                best = max(best, -r.fun)
    return best


def _pareto_hv(ref: tuple[float, float], n: int = 200000) -> float:
    """Hypervolume of the true yield/throughput front, from a dense random sample."""
    from robochem.optimizer import hypervolume

    rng = np.random.default_rng(7)
    pts = []
    for _ in range(n):
        p = {"residence_time": rng.uniform(60, 1800), "light": rng.uniform(5, 100),
             "loading": 10 ** rng.uniform(-3, -1), "catalyst": "TBADT"}
        pts.append((reaction_yield(p), reaction_throughput(p)))
    f = np.array(pts)
    # keep only the candidate front to make the exact computation cheap
    order = np.argsort(-f[:, 0])
    front, top = [], -math.inf
    for i in order:
        if f[i, 1] > top:
            front.append(f[i])
            top = f[i, 1]
    return hypervolume(np.array(front), np.array(ref))


_CACHE: dict[str, float] = {}


def _cached(key: str, fn: Callable[[], float]) -> float:
    if key not in _CACHE:
        _CACHE[key] = fn()
    return _CACHE[key]


def _preset_names() -> tuple[str, ...]:
    try:
        from robochem.simulator.reactions import PRESETS
    except ImportError:  # the virtual lab is optional for this benchmark
        return ()
    return tuple(PRESETS)


PRESET_NAMES = _preset_names()
TWO_OBJECTIVE_PRESET = "hat-alkylation"
_TWO_OBJECTIVE_PRESETS = ((f"{TWO_OBJECTIVE_PRESET}_2obj",)
                          if TWO_OBJECTIVE_PRESET in PRESET_NAMES else ())
PROBLEM_NAMES = ("branin", "branin_noisy", "hartmann6", "hartmann6_noisy", "reaction",
                 "reaction_failures", "reaction_2obj", *PRESET_NAMES, *_TWO_OBJECTIVE_PRESETS)


def _example_log_variables(name: str) -> set[str]:
    """Variables the shipped example protocol of a preset searches on a log scale: the
    benchmark searches the space a chemist running that example would (the preset's own
    units and bounds, the protocol's scales)."""
    from pathlib import Path

    import yaml

    import robochem.protocols

    path = Path(robochem.protocols.__file__).parent / "examples" / f"{name}.yaml"
    if not path.exists():
        return set()
    data = yaml.safe_load(path.read_text())
    return {k for k, v in (data.get("variables") or {}).items()
            if isinstance(v, dict) and v.get("log")}


def preset_problem(name: str, noise: float = 1.5, budget: int = 30) -> Problem:
    """A virtual-lab preset through the ``reactions predict`` oracle, yield objective,
    with ``noise`` % (absolute) added; the optimum is the preset's documented one."""
    from robochem.simulator.reactions import PRESETS, predict

    preset = PRESETS[name]
    log_scale = _example_log_variables(name)
    variables: dict[str, Any] = {}
    for v in preset.variables:
        if v.categorical:
            variables[v.name] = {"choices": list(v.choices)}
        else:
            variables[v.name] = {"low": float(v.low), "high": float(v.high)}  # type: ignore[arg-type]
            if v.name in log_scale:
                variables[v.name]["log"] = True

    def func(p: Point) -> Result:
        return {"yield": float(predict(preset, p)["yield"])}

    return Problem(name, {"variables": variables, "objectives": {"yield": {"goal": "maximize"}}},
                   func, preset.optima["yield"].yield_percent, 0.0, budget, noise=noise,
                   description=f"virtual-lab preset {name} (reactions predict), yield")


def _preset_front_hv(name: str, spec: dict[str, Any], ref: tuple[float, float],
                     n: int = 12000, polish: int = 24) -> float:
    """Hypervolume of a preset's true yield/throughput front: the non-dominated points of a
    random sample of the search space (log variables sampled on their log scale), each of
    ``polish`` spread-out front points then pushed outwards by a Nelder-Mead search on the
    augmented Chebyshev scalarisation that it already optimises best."""
    from scipy.optimize import minimize

    from robochem.optimizer import hypervolume
    from robochem.simulator.reactions import PRESETS, predict

    preset = PRESETS[name]
    names = list(spec["variables"])
    lo = np.array([spec["variables"][k]["low"] for k in names], dtype=float)
    hi = np.array([spec["variables"][k]["high"] for k in names], dtype=float)
    log = np.array([bool(spec["variables"][k].get("log")) for k in names])

    def point(u: np.ndarray) -> Point:
        u = np.clip(u, 0.0, 1.0)
        x = np.where(log, np.exp(np.log(np.where(log, lo, 1.0)) + u * (
            np.log(np.where(log, hi, 2.0)) - np.log(np.where(log, lo, 1.0)))), lo + u * (hi - lo))
        return dict(zip(names, x.tolist(), strict=True))

    def outcome(u: np.ndarray) -> np.ndarray:
        r = predict(preset, point(u))
        return np.array([r["yield"], r["throughput"]])

    rng = np.random.default_rng(11)
    us = rng.random((n, len(names)))
    f = np.array([outcome(u) for u in us])
    ideal, r = f.max(axis=0), np.asarray(ref, dtype=float)
    scale = np.maximum(ideal - r, 1e-9)
    front = [i for i in range(n)
             if not np.any(np.all(f >= f[i], axis=1) & np.any(f > f[i], axis=1))]
    chosen = [front[int(k)] for k in np.linspace(0, len(front) - 1, min(polish, len(front)))]
    found = [f[i] for i in front]
    for i in chosen:
        w = 1.0 / np.maximum((ideal - f[i]) / scale, 1e-6)
        w /= w.sum()

        def cheb(u: np.ndarray, w: np.ndarray = w) -> float:
            d = w * (ideal - outcome(u)) / scale
            return float(d.max() + 0.05 * d.sum())

        res = minimize(cheb, us[i], method="Nelder-Mead", options={"maxiter": 150, "xatol": 1e-4})
        found.append(outcome(res.x))
    return hypervolume(np.array(found), r)


def preset_two_objective_problem(name: str = TWO_OBJECTIVE_PRESET, budget: int = 30) -> Problem:
    """Yield and throughput of a preset, both maximised, 1.5 % / 1.5 % relative noise; the
    reference point is the example protocol's thresholds (20 % yield, 0.1 mmol/h)."""
    from robochem.simulator.reactions import PRESETS, predict

    base = preset_problem(name)
    preset = PRESETS[name]
    spec = {"variables": base.spec["variables"],
            "objectives": {"yield": {"goal": "maximize", "reference": 20.0},
                           "throughput": {"goal": "maximize", "reference": 0.1}}}

    def func(p: Point) -> Result:
        r = predict(preset, p)
        return {"yield": float(r["yield"]), "throughput": float(r["throughput"])}

    ref = (20.0, 0.1)
    return Problem(f"{name}_2obj", spec, func, preset.optima["yield"].yield_percent, 0.0,
                   budget, noise=0.0,
                   description=f"virtual-lab preset {name}: yield vs throughput",
                   hv_reference={"yield": ref[0], "throughput": ref[1]},
                   true_hypervolume=_cached(f"{name}_hv",
                                            lambda: _preset_front_hv(name, spec, ref)))


def problems(names: list[str] | None = None) -> dict[str, Problem]:
    """Registered problems by name (virtual-lab presets get added here when they exist).

    Only the requested ones are built: some need a costly optimum or Pareto front.
    """
    wanted = set(PROBLEM_NAMES if names is None else names)
    unknown = wanted - set(PROBLEM_NAMES)
    if unknown:
        raise KeyError(f"unknown problem(s) {sorted(unknown)}; known: {list(PROBLEM_NAMES)}")
    out: dict[str, Problem] = {}

    def br(p: Point) -> Result:
        return {"f": branin(p["x1"], p["x2"])}

    br_spec = {"variables": {"x1": {"low": -5.0, "high": 10.0}, "x2": {"low": 0.0, "high": 15.0}},
               "objectives": {"f": {"goal": "minimize"}}}
    br_mean = 0.0 if not wanted & {"branin", "branin_noisy"} else _cached(
        "branin_mean",
        lambda: _mean_over_domain(lambda r: branin(r.uniform(-5, 10), r.uniform(0, 15))))
    out["branin"] = Problem("branin", br_spec, br, 0.397887, br_mean, 30,
                            description="Branin, 2 continuous variables, 3 global minima")
    out["branin_noisy"] = Problem("branin_noisy", br_spec, br, 0.397887, br_mean, 30,
                                  noise=0.015 * (br_mean - 0.397887),
                                  description="Branin with noise 1.5 % of (mean - optimum)")

    def h6(p: Point) -> Result:
        return {"f": hartmann6(np.array([p[f"x{i}"] for i in range(6)]))}

    h6_spec = {"variables": {f"x{i}": {"low": 0.0, "high": 1.0} for i in range(6)},
               "objectives": {"f": {"goal": "minimize"}}}
    h6_mean = 0.0 if not wanted & {"hartmann6", "hartmann6_noisy"} else _cached(
        "h6_mean", lambda: _mean_over_domain(lambda r: hartmann6(r.random(6))))
    out["hartmann6"] = Problem("hartmann6", h6_spec, h6, -3.32237, h6_mean, 50,
                               description="Hartmann-6, 6 continuous variables")
    out["hartmann6_noisy"] = Problem("hartmann6_noisy", h6_spec, h6, -3.32237, h6_mean, 50,
                                     noise=0.015 * 3.32237,
                                     description="Hartmann-6 with 1.5 % noise")

    def rx(p: Point) -> Result:
        return {"yield": reaction_yield(p)}

    rx_opt = _cached("rx_opt", _reaction_optimum) if wanted & set(PROBLEM_NAMES[4:]) else 0.0
    rx_spec = {"variables": _REACTION_VARS, "objectives": {"yield": {"goal": "maximize"}}}
    out["reaction"] = Problem("reaction", rx_spec, rx, rx_opt, 0.0, 30, noise=1.5,
                              description="synthetic photoreaction: time, light, log loading, "
                                          "4 catalysts; yield noise 1.5 %")

    def rx_fail(p: Point) -> Result:
        # Unknown constraint: high light with long residence times clogs the reactor.
        if p["light"] * p["residence_time"] > 90000:
            return {"yield": None}
        return {"yield": reaction_yield(p)}

    rxc_spec = {"variables": _REACTION_VARS, "objectives": {"yield": {"goal": "maximize"}},
                "constraints": ["residence_time * loading <= 60"]}
    out["reaction_failures"] = Problem(
        "reaction_failures", rxc_spec, rx_fail, rx_opt, 0.0, 30, noise=1.5,
        description="as reaction, plus a known constraint and a hidden failing region",
        extra={"constrained": True})

    def rx_mo(p: Point) -> Result:
        return {"yield": reaction_yield(p), "throughput": reaction_throughput(p)}

    mo_vars = dict(_REACTION_VARS)
    mo_vars.pop("catalyst")
    ref = {"yield": 0.0, "throughput": 0.0}
    mo_spec = {"variables": mo_vars,
               "objectives": {"yield": {"goal": "maximize", "reference": 0.0},
                              "throughput": {"goal": "maximize", "reference": 0.0}}}

    def rx_mo_fixed(p: Point) -> Result:
        return rx_mo({**p, "catalyst": "TBADT"})

    if "reaction_2obj" in wanted:
        out["reaction_2obj"] = Problem(
            "reaction_2obj", mo_spec, rx_mo_fixed, rx_opt, 0.0, 30,
            noise=0.0, description="yield vs throughput (TBADT), true front by dense sampling",
            hv_reference=ref,
            true_hypervolume=_cached("rx_hv", lambda: _pareto_hv((0.0, 0.0))))
    for name in PRESET_NAMES:
        if name in wanted:
            out[name] = preset_problem(name)
    if f"{TWO_OBJECTIVE_PRESET}_2obj" in wanted and TWO_OBJECTIVE_PRESET in PRESET_NAMES:
        out[f"{TWO_OBJECTIVE_PRESET}_2obj"] = preset_two_objective_problem()
    return {k: v for k, v in out.items() if k in wanted}
