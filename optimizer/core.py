"""The ask/tell optimiser shared by the engine, the benchmarks and users' scripts."""

from __future__ import annotations

import copy
import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from skopt.acquisition import gaussian_ei, gaussian_lcb, gaussian_pi
from skopt.sampler import Lhs, Sobol
from skopt.space import Space as SkSpace
from threadpoolctl import threadpool_limits

from .constraints import ConstraintSet
from .errors import SpecError, StateError
from .objectives import (
    Objective,
    hypervolume,
    hypervolume_improvement_2d,
    pareto_mask,
    parse_objectives,
    resolve_strategy,
    scalarise,
)
from .space import Space
from .surrogate import (
    DEFAULT_DESCRIPTOR_PRIOR,
    DEFAULT_KERNEL,
    DEFAULT_LENGTH_SCALE_PRIOR,
    KERNEL_CHOICES,
    FeasibilityModel,
    GPModel,
    transform_noise,
    transform_output,
)

STATE_FORMAT = "robochem.optimizer/1"
# A result's key NAME + SD_SUFFIX is the standard deviation of objective NAME's reading.
SD_SUFFIX = "_sd"
F = TypeVar("F", bound=Callable[..., Any])
_TOP_KEYS = {
    "variables", "objectives", "constraints", "initial_experiments", "initial_design", "seed",
    "strategy", "acquisition", "batch", "stopping", "warm_start", "surrogate", "search",
}  # fmt: skip
_ACQ_KEYS = {"function", "xi", "kappa"}
_BATCH_KEYS = {"method", "liar", "explore_xi"}
_STOP_KEYS = {"budget", "target", "patience", "min_improvement", "ei_threshold"}
_SURROGATE_KEYS = {"restarts", "outlier_z", "output_transform", "min_success_probability",
                   "length_scale_prior", "descriptor_prior", "kernel", "categorical_kernel"}
# How a categorical's one-hot columns enter the kernel: one shared length scale per variable
# (the overlap kernel, kernels.py) or one per choice (plain ARD on the one-hot columns).
CATEGORICAL_KERNELS = ("overlap", "per_choice")
_SEARCH_KEYS = {"candidates", "local", "enumerate_limit"}
DESIGNS = ("auto", "lhs", "plain_lhs", "sobol", "random")

DEFAULTS: dict[str, Any] = {
    "initial_experiments": 5,
    "initial_design": "auto",
    "seed": 0,
    "strategy": "auto",
    "acquisition": {"function": "ei", "xi": 0.01, "kappa": 1.96},
    "batch": {"method": "believer", "liar": "min", "explore_xi": 0.3},
    "stopping": {},
    "surrogate": {"kernel": DEFAULT_KERNEL, "restarts": 2, "outlier_z": 4.0,
                  "output_transform": "none", "min_success_probability": 0.3,
                  "length_scale_prior": list(DEFAULT_LENGTH_SCALE_PRIOR),
                  "descriptor_prior": list(DEFAULT_DESCRIPTOR_PRIOR),
                  "categorical_kernel": "overlap"},
    "search": {"candidates": 2000, "local": 3, "enumerate_limit": 20000},
}


def _section(spec: Mapping[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
    value = spec.get(key, {})
    if isinstance(value, str) and key == "acquisition":
        value = {"function": value}
    if isinstance(value, str) and key == "batch":
        value = {"method": value}
    if not isinstance(value, Mapping):
        raise SpecError(f"{key!r} must be a mapping")
    unknown = set(value) - allowed
    if unknown:
        raise SpecError(f"{key!r}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    merged = dict(DEFAULTS.get(key, {}))
    merged.update(value)
    return merged


def _int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _float(value: Any, what: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{what} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise SpecError(f"{what} must be >= {minimum}, got {value!r}")
    return float(value)


def _single_blas_thread(method: F) -> F:
    """Run GP linear algebra on one BLAS thread: the matrices are small (n <= a few
    hundred), where extra threads only add synchronisation cost, and several optimisers
    or a web server may share the cores."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with threadpool_limits(limits=1, user_api="blas"):
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class _Standardised:
    """Adapter exposing a GP in standardised, minimisation form to skopt's acquisitions."""

    def __init__(self, model: GPModel) -> None:
        self.model = model

    def predict(self, x: np.ndarray, return_std: bool = False) -> Any:
        mu, sd = self.model.predict_std_units(x)
        return (-mu, sd) if return_std else -mu


class Optimizer:
    """Bayesian optimiser with ask/tell, constraints, failures, batches and persistence.

    Build it with :meth:`from_spec`; see ``docs/optimizer.md`` for every key.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if not isinstance(spec, Mapping):
            raise SpecError("the optimiser spec must be a mapping")
        unknown = set(spec) - _TOP_KEYS
        if unknown:
            raise SpecError(f"unknown spec key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
        for key in ("variables", "objectives"):
            if key not in spec:
                raise SpecError(f"the spec needs {key!r}")
        self.space = Space(spec["variables"])
        self.objectives: list[Objective] = parse_objectives(spec["objectives"])
        names = {o.name for o in self.objectives}
        clash = sorted(n for n in names if n + SD_SUFFIX in names)
        if clash:
            raise SpecError(f"objective names {clash[0]!r} and {clash[0] + SD_SUFFIX!r} clash: "
                            f"a result's {clash[0] + SD_SUFFIX!r} is the standard deviation of "
                            f"{clash[0]!r}")
        self.constraints = ConstraintSet(spec.get("constraints", []), self.space.names)
        self.n_initial = _int(spec.get("initial_experiments", 5), "'initial_experiments'", 0)
        self.initial_design = spec.get("initial_design", DEFAULTS["initial_design"])
        if self.initial_design not in DESIGNS:
            raise SpecError(f"'initial_design' must be one of {', '.join(map(repr, DESIGNS))}")
        self.seed = _int(spec.get("seed", 0), "'seed'", 0)
        self.strategy = resolve_strategy(spec.get("strategy", "auto"), self.objectives)

        acq = _section(spec, "acquisition", _ACQ_KEYS)
        if acq["function"] not in ("ei", "pi", "lcb"):
            raise SpecError("acquisition 'function' must be 'ei', 'pi' or 'lcb'")
        acq["xi"] = _float(acq["xi"], "acquisition 'xi'", 0.0)
        acq["kappa"] = _float(acq["kappa"], "acquisition 'kappa'", 0.0)
        self.acquisition = acq

        batch = _section(spec, "batch", _BATCH_KEYS)
        if batch["method"] not in ("believer", "liar"):
            raise SpecError("batch 'method' must be 'believer' (Kriging believer) or 'liar'")
        if batch["liar"] not in ("min", "mean", "max"):
            raise SpecError("batch 'liar' must be 'min', 'mean' or 'max'")
        if batch["explore_xi"] is not None:
            batch["explore_xi"] = _float(batch["explore_xi"], "batch 'explore_xi'", 0.0)
        self.batch = batch

        self.stopping = _section(spec, "stopping", _STOP_KEYS)
        self._check_stopping()

        sur = _section(spec, "surrogate", _SURROGATE_KEYS)
        sur["restarts"] = _int(sur["restarts"], "surrogate 'restarts'", 0)
        sur["outlier_z"] = _float(sur["outlier_z"], "surrogate 'outlier_z'", 0.0)
        sur["min_success_probability"] = _float(
            sur["min_success_probability"], "surrogate 'min_success_probability'", 0.0)
        if sur["kernel"] not in KERNEL_CHOICES:
            raise SpecError(
                f"surrogate 'kernel' must be one of {', '.join(map(repr, KERNEL_CHOICES))}")
        if sur["output_transform"] not in ("none", "rank", "log"):
            raise SpecError("surrogate 'output_transform' must be 'none', 'rank' or 'log'")
        if sur["categorical_kernel"] not in CATEGORICAL_KERNELS:
            raise SpecError("surrogate 'categorical_kernel' must be one of "
                            f"{', '.join(map(repr, CATEGORICAL_KERNELS))}")
        if sur["categorical_kernel"] == "overlap" and sur["kernel"] == "matern32":
            raise SpecError("surrogate 'categorical_kernel': 'overlap' works with the 'rbf', "
                            "'matern52' and 'rbf+matern' kernels; use 'per_choice'")
        for key in ("length_scale_prior", "descriptor_prior"):
            prior = sur[key]
            if prior is None:
                continue
            if (not isinstance(prior, (list, tuple)) or len(prior) != 2
                    or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
                           for v in prior)):
                raise SpecError(f"surrogate {key!r} must be null or "
                                f"[shape, rate] with both > 0, got {prior!r}")
            sur[key] = [float(prior[0]), float(prior[1])]
        self.surrogate = sur

        search = _section(spec, "search", _SEARCH_KEYS)
        search["candidates"] = _int(search["candidates"], "search 'candidates'", 10)
        search["local"] = _int(search["local"], "search 'local'", 0)
        search["enumerate_limit"] = _int(search["enumerate_limit"], "'enumerate_limit'", 0)
        self.search = search

        self._check_feasible_region()
        self._obs: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []
        self._asks = 0
        self._design_served = 0
        self._design_cache: list[dict[str, Any]] | None = None
        self._grid_cache: np.ndarray | None = None
        warm = spec.get("warm_start", [])
        if not isinstance(warm, list):
            raise SpecError("'warm_start' must be a list of {'point': ..., 'result': ...}")
        for item in warm:
            keys = set(item) if isinstance(item, Mapping) else set()
            if not {"point", "result"} <= keys <= {"point", "result", "task"}:
                raise SpecError("each warm_start item needs 'point' and 'result' (and "
                                "optionally 'task')")
            self.warm_start([item["point"]], [item["result"]], task=item.get("task"))

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Optimizer:
        return cls(spec)

    @classmethod
    def from_history(
        cls, spec: Mapping[str, Any], experiments: Sequence[Mapping[str, Any]]
    ) -> Optimizer:
        """Rebuild from stored experiments: items ``{"point": {...}, "result": {...}|None}``."""
        opt = cls(spec)
        for item in experiments:
            opt.tell([item["point"]], [item["result"]])
        return opt

    def spec(self) -> dict[str, Any]:
        """The normalised spec (defaults filled in), JSON-serialisable."""
        return {
            "variables": self.space.to_spec(),
            "objectives": {o.name: o.to_spec() for o in self.objectives},
            "constraints": self.constraints.to_spec(),
            "initial_experiments": self.n_initial,
            "initial_design": self.initial_design,
            "seed": self.seed,
            "strategy": self.strategy,
            "acquisition": dict(self.acquisition),
            "batch": dict(self.batch),
            "stopping": copy.deepcopy(self.stopping),
            "surrogate": dict(self.surrogate),
            "search": dict(self.search),
        }

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this optimiser is (JSON-safe)."""
        return {
            "format": STATE_FORMAT,
            "spec": self.spec(),
            "observations": copy.deepcopy(self._obs),
            "pending": copy.deepcopy(self._pending),
            "asks": self._asks,
            "design_served": self._design_served,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Optimizer:
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise StateError(f"not an optimiser state (expected format {STATE_FORMAT!r})")
        opt = cls(state["spec"])
        for item in state["observations"]:
            point = opt.space.validate_point(item["point"])
            result = item["result"]
            sd = item.get("sd")  # states written before per-observation noise have none
            if sd is not None:
                if not isinstance(sd, Mapping) or not isinstance(result, Mapping):
                    raise StateError(f"observation 'sd' must be a mapping next to a result: "
                                     f"{item!r}")
                result = {**result, **{f"{k}{SD_SUFFIX}": v for k, v in sd.items()}}
            source = item.get("source", "campaign")
            if source not in ("campaign", "prior"):
                raise StateError(f"unknown observation source {source!r}")
            opt._obs.append(opt._observation(point, result, source, item.get("task")))
        opt._pending = [opt.space.validate_point(p) for p in state["pending"]]
        opt._asks = _int(state["asks"], "'asks'", 0)
        opt._design_served = _int(state["design_served"], "'design_served'", 0)
        return opt

    # validation -----------------------------------------------------------------------------
    def _check_stopping(self) -> None:
        s = self.stopping
        if "budget" in s:
            _int(s["budget"], "stopping 'budget'", 1)
        if "patience" in s:
            _int(s["patience"], "stopping 'patience'", 1)
        if "min_improvement" in s:
            _float(s["min_improvement"], "stopping 'min_improvement'", 0.0)
        if "ei_threshold" in s:
            _float(s["ei_threshold"], "stopping 'ei_threshold'", 0.0)
        if "target" in s:
            target = s["target"]
            names = {o.name for o in self.objectives}
            if not isinstance(target, Mapping) or not target or set(target) - names:
                raise SpecError(f"stopping 'target' must map objective names {sorted(names)} "
                                "to values")
            for k, v in target.items():
                _float(v, f"stopping target {k!r}")

    def _check_feasible_region(self) -> None:
        if not len(self.constraints):
            return
        rng = np.random.default_rng(12345)
        z = self.space.snap(self.space.sample_unit(20000, rng))
        if not self.constraints.feasible(self.space.columns(z), len(z)).any():
            raise SpecError("the constraints leave no feasible point that random sampling of "
                            "20,000 points could find; check their directions and units")

    def _observation(
        self, point: dict[str, Any], result: Any, source: str, task: str | None = None
    ) -> dict[str, Any]:
        """The stored form of one observation: ``sd`` only when a reading reported one,
        ``task`` only for a related task's prior."""
        values, sds = self._check_result(result)
        obs: dict[str, Any] = {"point": point, "result": values}
        if values is not None and sds:
            obs["sd"] = sds
        obs["source"] = source
        if task is not None:
            if not isinstance(task, str) or not task:
                raise StateError(f"a warm-start task must be a non-empty name, got {task!r}")
            obs["task"] = task
        return obs

    def _check_result(self, result: Any) -> tuple[dict[str, float] | None, dict[str, float]]:
        """(objective -> number, or None for a failed experiment; objective -> reported
        standard deviation, for the readings that came with one)."""
        names = [o.name for o in self.objectives]
        if result is None:
            return None, {}
        if isinstance(result, int | float) and not isinstance(result, bool):
            if len(names) != 1:
                raise StateError("a bare number needs a single-objective optimiser")
            result = {names[0]: result}
        if not isinstance(result, Mapping):
            raise StateError(f"a result must be a mapping objective -> value or None: {result!r}")
        sd_keys = {n + SD_SUFFIX: n for n in names}
        unknown = set(result) - set(names) - set(sd_keys)
        if unknown:
            raise StateError(f"result has unknown objective(s) {sorted(map(str, unknown))}; "
                             f"objectives are {names}, each may come with "
                             f"'<objective>{SD_SUFFIX}' (its standard deviation)")
        sds: dict[str, float] = {}
        for key, name in sd_keys.items():
            sd = result.get(key)
            if sd is None:
                continue  # not reported: the model's learned noise applies
            number = isinstance(sd, int | float | np.integer | np.floating)
            if isinstance(sd, bool) or not number or not math.isfinite(sd) or sd < 0:
                raise StateError(f"result {key!r}: expected a finite number >= 0 (or None "
                                 f"when unknown), got {sd!r}")
            sds[name] = float(sd)
        values = {}
        failed = False
        for name in names:
            v = result.get(name, "missing")
            if v is None:
                failed = True
            elif isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
                if not math.isfinite(float(v)):
                    failed = True  # NaN/inf from a failed analysis counts as a failure
                values[name] = float(v)
            elif v != "missing":
                raise StateError(f"result {name!r}: expected a number or None, got {v!r}")
        if failed:
            return None, {}  # a failure stays a failure, whatever spread came with it
        missing = [n for n in names if n not in values]
        if missing:
            raise StateError(f"result {dict(result)!r} lacks {missing}; pass None for a failure")
        return values, sds

    # ask / tell -----------------------------------------------------------------------------
    def tell(
        self, points: Sequence[Mapping[str, Any]], results: Sequence[Any]
    ) -> None:
        """Record results; ``None`` (or any objective ``None``) marks a failed experiment.
        A result may give ``NAME_sd``, the standard deviation of objective NAME's reading
        (``None``: unknown); the model then uses it as that point's noise."""
        if isinstance(points, Mapping):
            points, results = [points], [results]
        if len(points) != len(results):
            raise StateError(f"{len(points)} points but {len(results)} results")
        checked = [self._observation(self.space.validate_point(p), r, "campaign")
                   for p, r in zip(points, results, strict=True)]
        for obs in checked:
            self._obs.append(obs)
            if obs["point"] in self._pending:
                self._pending.remove(obs["point"])

    def warm_start(
        self, points: Sequence[Mapping[str, Any]], results: Sequence[Any],
        task: str | None = None,
    ) -> int:
        """Add results of earlier campaigns as prior data. Points outside the current space
        are skipped; returns how many were used. Priors inform the model and shorten the
        initial design, but do not count towards the budget, the best result or the
        stopping rules.

        ``task`` None: the same reaction, the results count as if measured here. A name
        (say "campaign 12: substrate A"): a related task. The model then learns how far the
        earlier results carry over (a multi-task GP: a hidden task variable with one
        correlation per kernel term, shared by all pairs of tasks), and this campaign's own
        results take over as they come in."""
        used = 0
        for p, r in zip(points, results, strict=True):
            if not isinstance(p, Mapping) or not self.space.contains(p):
                continue
            point = self.space.validate_point(p)
            if self.constraints.violated(point):
                continue
            self._obs.append(self._observation(point, r, "prior", task))
            used += 1
        return used

    def drop_pending(self) -> None:
        """Forget suggestions that will never be run (they stop steering the next asks)."""
        self._pending = []

    @property
    def pending(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._pending)

    @property
    def observations(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._obs)

    @property
    def n_experiments(self) -> int:
        """Experiments of this campaign told so far (failed ones included, priors not)."""
        return sum(1 for o in self._obs if o["source"] == "campaign")

    @_single_blas_thread
    def ask(self, n: int = 1) -> list[dict[str, Any]]:
        """Suggest ``n`` experiments (a batch for parallel reactors)."""
        n = _int(n, "ask(n)", 1)
        rng = np.random.default_rng([self.seed, self._asks])
        self._asks += 1
        out: list[dict[str, Any]] = []
        # The design fills up to ``initial_experiments`` known-or-running points; experiments
        # told without being asked (history, priors, manual runs) count towards it.
        design_left = max(0, self.n_initial - len(self._obs) - len(self._pending))
        design_left = min(design_left, self.n_initial - self._design_served)
        take = min(n, design_left)
        if take:
            design = self._design()
            out.extend(copy.deepcopy(design[self._design_served : self._design_served + take]))
            self._design_served += take
        if len(out) < n:
            out.extend(self._suggest(n - len(out), rng, out))
        self._pending.extend(copy.deepcopy(out))
        return out

    def replicate_best(self) -> dict[str, Any]:
        """The best point so far (by the model when there is one), to be run again."""
        best = self.best(by="model")
        if best is None:
            raise StateError("no successful experiment to replicate yet")
        point = copy.deepcopy(best["point"])
        self._pending.append(copy.deepcopy(point))
        return point

    # results --------------------------------------------------------------------------------
    def _ok(self) -> list[dict[str, Any]]:
        """Successful observations, related tasks' priors included (what the model sees)."""
        return [o for o in self._obs if o["result"] is not None]

    def _own(self) -> list[dict[str, Any]]:
        """Successful observations of this reaction (what "best" and stopping rank)."""
        return [o for o in self._ok() if "task" not in o]

    def _tasks(self) -> list[str]:
        """Related tasks with results, in a fixed order (their indicator columns)."""
        return sorted({o["task"] for o in self._obs if "task" in o})

    def _encode(self, z: np.ndarray, tasks: Sequence[str | None] | None = None) -> np.ndarray:
        """Encoded ``z`` (this reaction's points unless ``tasks`` says otherwise), with one
        indicator column per task when related tasks' priors are present."""
        x = self.space.encode(z)
        labels = self._tasks()
        if not labels:
            return x
        columns = [None, *labels]
        t = np.zeros((len(x), len(columns)))
        for i, task in enumerate(tasks if tasks is not None else [None] * len(x)):
            t[i, columns.index(task)] = 1.0
        return np.hstack([x, t])

    def _encode_obs(self, obs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        z = self.space.from_points([o["point"] for o in obs])
        return self._encode(z, [o.get("task") for o in obs])

    def _oriented(self, obs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.array(
            [[o["result"][ob.name] * ob.sign for ob in self.objectives] for o in obs], dtype=float
        ).reshape(len(obs), len(self.objectives))

    def _scores(self, obs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return scalarise(self._oriented(obs), self.objectives, self.strategy)

    def _reported_variance(self, obs: Sequence[Mapping[str, Any]], j: int) -> np.ndarray | None:
        """Reported noise variance of objective ``j`` per observation (NaN where none was
        reported), or None when no observation reported one."""
        name = self.objectives[j].name
        sd = np.array([o.get("sd", {}).get(name, np.nan) for o in obs], dtype=float)
        return sd**2 if np.isfinite(sd).any() else None

    def _score_noise(
        self, obs: Sequence[Mapping[str, Any]], scores: np.ndarray, transform: str
    ) -> np.ndarray | None:
        """Noise variances of the model's targets (``scores`` after ``transform``), where
        the readings' reports can be carried there: the single strategy's score is the
        objective itself (times +-1). A scalarisation of several objectives (ParEGO,
        priority, weighted) is normalised by the data and, for priority, piecewise, so
        those models keep the learned noise level alone."""
        if self.strategy != "single":
            return None
        var = self._reported_variance(obs, 0)
        return None if var is None else transform_noise(scores, var, transform)

    @_single_blas_thread
    def best(self, by: str = "observed") -> dict[str, Any] | None:
        """Best experiment so far: ``{"point", "result", "index"}`` (``None`` if none).

        ``by="observed"`` ranks measured values; ``by="model"`` ranks the GP's mean at the
        measured points, which discounts a lucky noisy reading. Multi-objective: the
        priority score, or the equal-weight Chebyshev score for ParEGO/weighted.
        """
        if by not in ("observed", "model"):
            raise ValueError("by must be 'observed' or 'model'")
        own = self._own()
        if not own:
            return None
        scores = self._scores(own)
        ok = self._ok()
        if by == "model" and len(ok) >= 3:
            model = self._gp_model(self.seed, restarts=1).fit(
                self._encode_obs(ok), self._scores(ok), self._score_noise(ok, self._scores(ok),
                                                                          "none"))
            scores, _ = model.predict(self._encode_obs(own))
        i = int(np.argmax(scores))
        return {"point": copy.deepcopy(own[i]["point"]), "result": dict(own[i]["result"]),
                "index": self._obs.index(own[i])}

    def pareto_front(self) -> list[dict[str, Any]]:
        """Non-dominated successful experiments, as ``{"point", "result"}`` dicts."""
        ok = self._own()
        if not ok:
            return []
        mask = pareto_mask(self._oriented(ok))
        return [{"point": copy.deepcopy(o["point"]), "result": dict(o["result"])}
                for o, m in zip(ok, mask, strict=True) if m]

    def reference_point(self) -> np.ndarray:
        """Hypervolume reference (oriented): each objective's ``reference``, else the worst
        value observed."""
        ok = self._own()
        f = self._oriented(ok) if ok else np.zeros((0, len(self.objectives)))
        ref = []
        for j, ob in enumerate(self.objectives):
            if ob.reference is not None:
                ref.append(ob.reference * ob.sign)
            else:
                ref.append(float(f[:, j].min()) if len(f) else 0.0)
        return np.array(ref)

    def hypervolume(self, reference: Mapping[str, float] | None = None) -> float:
        """Hypervolume of the current front, in objective units."""
        ok = self._own()
        if not ok:
            return 0.0
        ref = self.reference_point()
        if reference is not None:
            ref = np.array([reference[o.name] * o.sign for o in self.objectives])
        return hypervolume(self._oriented(ok), ref)

    def hypervolume_trace(self, reference: Mapping[str, float] | None = None) -> list[float]:
        """Hypervolume after each campaign experiment (same reference for all)."""
        ref = self.reference_point()
        if reference is not None:
            ref = np.array([reference[o.name] * o.sign for o in self.objectives])
        trace, seen = [], []
        for o in self._obs:
            if o["result"] is not None and "task" not in o:
                seen.append(o)
            if o["source"] == "campaign":
                trace.append(hypervolume(self._oriented(seen), ref) if seen else 0.0)
        return trace

    def feasible(self, point: Mapping[str, Any]) -> bool:
        """Whether ``point`` satisfies every known constraint."""
        return not self.constraints.violated(self.space.validate_point(point))

    # stopping -------------------------------------------------------------------------------
    def _progress(self) -> list[float]:
        """Best-so-far figure of merit after each campaign experiment."""
        out, seen = [], []
        best = -math.inf
        for o in self._obs:
            if o["result"] is not None and "task" not in o:
                seen.append(o)
            if o["source"] != "campaign":
                continue
            if len(self.objectives) > 1 and self.strategy in ("parego", "weighted"):
                out.append(hypervolume(self._oriented(seen), self.reference_point())
                           if seen else -math.inf)
            else:
                best = float(self._scores(seen).max()) if seen else best
                out.append(best)
        return out

    def should_stop(self) -> tuple[bool, str]:
        """Check the stopping rules: ``(True, reason)`` or ``(False, "")``."""
        s = self.stopping
        n = self.n_experiments
        if "budget" in s and n >= s["budget"]:
            return True, f"budget of {s['budget']} experiments reached"
        if "target" in s:
            for o in self._own():
                hit = all(
                    o["result"][ob.name] * ob.sign >= s["target"][ob.name] * ob.sign
                    for ob in self.objectives if ob.name in s["target"]
                )
                if hit:
                    return True, f"target {s['target']} reached at {o['point']}"
        if "patience" in s:
            k = s["patience"]
            progress = self._progress()
            if len(progress) > k and len(progress) >= self.n_initial + k:
                gain = progress[-1] - progress[-1 - k]
                if gain <= s.get("min_improvement", 0.0):
                    return True, f"no improvement in the last {k} experiments"
        if "ei_threshold" in s and len(self._ok()) >= max(2, self.n_initial):
            ei = self.expected_improvement()
            if ei < s["ei_threshold"]:
                return True, f"expected improvement {ei:.3g} below {s['ei_threshold']}"
        return False, ""

    @_single_blas_thread
    def expected_improvement(self) -> float:
        """Largest expected improvement of the scalar objective over the search space,
        in objective units (scores for multi-objective strategies)."""
        ok = self._ok()
        if len(ok) < 2:
            return math.inf
        rng = np.random.default_rng([self.seed, 7, len(self._obs)])
        model, _ = self._fit_model(ok, self._scores(ok))
        z = self._candidates(rng, model, ok, self._scores(ok), [], ei_only=True)
        x = self._encode(z)
        mu_obs, _ = model.predict_std_units(self._encode(self.space.from_points(
            [o["point"] for o in ok])))
        ei = gaussian_ei(x, _Standardised(model), y_opt=-float(mu_obs.max()), xi=0.0)
        return float(np.max(ei)) * model.std

    # design and search ----------------------------------------------------------------------
    def _design(self) -> list[dict[str, Any]]:
        if self._design_cache is not None:
            return self._design_cache
        n = self.n_initial
        rng = np.random.default_rng([self.seed, 99991])
        seed = int(rng.integers(2**31 - 1))
        if n == 0:
            self._design_cache = []
            return []
        dims = self.space.skopt_dimensions()
        design = self.initial_design
        if design == "auto":
            # Maximin keeps 5 points in 5-D away from the middle, where cf3 peaks, so
            # numeric ranges get a plain Latin hypercube. A grid of choices only keeps
            # maximin: the direct-arylation replay met its figures with it and not with
            # the plain one (50 seeds; no mechanism found, docs/optimizer.md).
            every_choice = all(v.kind == "categorical" for v in self.space.variables)
            design = "lhs" if every_choice else "plain_lhs"
        if design == "lhs":
            raw = Lhs(criterion="maximin", iterations=200).generate(dims, n, random_state=seed)
        elif design == "plain_lhs":
            # Uniform within the strata: no push apart, so nearer the middle than maximin.
            raw = Lhs(criterion=None).generate(dims, n, random_state=seed)
        elif design == "sobol":
            raw = Sobol().generate(dims, n, random_state=seed)
        else:
            raw = SkSpace(dims).rvs(n_samples=n, random_state=seed)
        z = np.array([[self._unit_of(j, v) for j, v in enumerate(row)] for row in raw])
        z = self.space.snap(z)
        ok = self.constraints.feasible(self.space.columns(z), n) if len(self.constraints) else None
        if ok is not None and not ok.all():
            z = self._maximin_feasible(n, rng)
        self._design_cache = self.space.to_points(z)
        return self._design_cache

    def _unit_of(self, j: int, value: Any) -> float:
        v = self.space.variables[j]
        if v.kind == "categorical":
            return float(value)  # skopt dimension holds the choice index
        return float(v.to_unit(np.array([value], dtype=object))[0])

    def _maximin_feasible(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Space-filling design inside the constraints: greedy maximin from a feasible pool."""
        pool = self._feasible_sample(max(200, 50 * n), rng)
        x = self.space.encode(pool)
        centre = x.mean(axis=0)
        chosen = [int(np.argmin(((x - centre) ** 2).sum(axis=1)))]
        dist = ((x - x[chosen[0]]) ** 2).sum(axis=1)
        while len(chosen) < min(n, len(pool)):
            i = int(np.argmax(dist))
            chosen.append(i)
            dist = np.minimum(dist, ((x - x[i]) ** 2).sum(axis=1))
        return pool[chosen]

    def _feasible_sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` random points satisfying the known constraints (rejection sampling)."""
        got: list[np.ndarray] = []
        count = 0
        for _ in range(200):
            z = self.space.snap(self.space.sample_unit(max(n, 256), rng))
            if len(self.constraints):
                z = z[self.constraints.feasible(self.space.columns(z), len(z))]
            got.append(z)
            count += len(z)
            if count >= n:
                break
        z = np.vstack(got)[:n] if got else np.zeros((0, self.space.dim))
        if len(z) == 0:
            raise StateError("could not sample any point satisfying the constraints")
        return z

    def _grid(self) -> np.ndarray | None:
        """Every point of a small discrete space (exhaustive search beats sampling there)."""
        if not self.space.is_discrete or self.space.size() > self.search["enumerate_limit"]:
            return None
        if self._grid_cache is None:
            axes = []
            for v in self.space.variables:
                if v.kind == "categorical":
                    axes.append(np.arange(len(v.choices), dtype=float))
                else:
                    k = int(v.high - v.low)
                    axes.append(np.arange(k + 1) / k)
            z = np.array(list(itertools.product(*axes)), dtype=float)
            if len(self.constraints):
                z = z[self.constraints.feasible(self.space.columns(z), len(z))]
            self._grid_cache = z
        return self._grid_cache

    def _gp_model(self, seed: int, restarts: int | None = None) -> GPModel:
        prior = self.surrogate["length_scale_prior"]
        desc = self.surrogate["descriptor_prior"]
        # Related tasks' indicator columns (see _encode) follow the space's columns.
        tasks = len(self._tasks()) + 1 if self._tasks() else 0
        width = self.space.encoded_width
        groups = (self.space.column_groups()
                  if self.surrogate["categorical_kernel"] == "overlap" else None)
        if tasks:
            own = np.arange(width) if groups is None else groups
            groups = np.concatenate([own, np.full(tasks, own.max() + 1 if width else 0)])
        pad = np.zeros(tasks, dtype=bool)
        return GPModel(
            self.surrogate["restarts"] if restarts is None else restarts,
            self.surrogate["outlier_z"], seed, None if prior is None else tuple(prior),
            np.concatenate([self.space.continuous_columns(), pad]),
            None if desc is None else tuple(desc),
            np.concatenate([self.space.descriptor_columns(), pad]), self.surrogate["kernel"],
            groups, task_columns=tasks)

    def _fit_model(
        self, ok: Sequence[Mapping[str, Any]], scores: np.ndarray
    ) -> tuple[GPModel, np.ndarray]:
        x = self._encode_obs(ok)
        transform = self.surrogate["output_transform"]
        y = transform_output(scores, transform)
        seed = int(np.random.default_rng([self.seed, self._asks, 3]).integers(2**31 - 1))
        model = self._gp_model(seed).fit(x, y, self._score_noise(ok, scores, transform))
        return model, y

    def _acquire(
        self, model: GPModel, feas: FeasibilityModel | None, z: np.ndarray, y_best: float,
        explore: bool = False,
    ) -> np.ndarray:
        x = self._encode(z)
        wrapped = _Standardised(model)
        fn = self.acquisition["function"]
        if explore and self.batch["explore_xi"] is not None:
            a = gaussian_ei(x, wrapped, y_opt=-y_best, xi=self.batch["explore_xi"])
        elif fn == "ei":
            a = gaussian_ei(x, wrapped, y_opt=-y_best, xi=self.acquisition["xi"])
        elif fn == "pi":
            a = gaussian_pi(x, wrapped, y_opt=-y_best, xi=self.acquisition["xi"])
        else:
            # skopt's LCB is for minimisation of -mu; flip it into an upper bound >= 0.
            ucb = -gaussian_lcb(x, wrapped, kappa=self.acquisition["kappa"])
            a = ucb - ucb.min()
        a = self._gate(np.asarray(a, dtype=float), x, feas)
        return np.asarray(a, dtype=float)

    def _candidates(
        self,
        rng: np.random.Generator,
        model: GPModel | None,
        ok: Sequence[Mapping[str, Any]],
        scores: np.ndarray,
        exclude: list[np.ndarray],
        ei_only: bool = False,
    ) -> np.ndarray:
        grid = self._grid()
        if grid is not None:
            z = grid
        else:
            z = self._feasible_sample(self.search["candidates"], rng)
            # Perturbations of the best observed points: the optimum is usually near them.
            top = np.argsort(-scores)[:5]
            base = self.space.from_points([ok[i]["point"] for i in top])
            z = np.vstack([z, self._perturb(base, 100, 0.1, rng)])
        if not ei_only and self.space.is_discrete and exclude:
            seen = {tuple(row) for row in np.vstack(exclude)}
            keep = np.array([tuple(row) not in seen for row in z], dtype=bool)
            if keep.any():
                z = z[keep]
        return z

    def _perturb(
        self, base: np.ndarray, per: int, scale: float, rng: np.random.Generator
    ) -> np.ndarray:
        z = np.repeat(base, per, axis=0)
        for j, v in enumerate(self.space.variables):
            if v.kind == "categorical":
                flip = rng.random(len(z)) < 1.0 / max(2, self.space.dim)
                z[flip, j] = rng.integers(0, len(v.choices), flip.sum())
            else:
                z[:, j] = z[:, j] + rng.normal(0.0, scale, len(z))
        z = self.space.snap(z)
        if len(self.constraints):
            z = z[self.constraints.feasible(self.space.columns(z), len(z))]
        return z

    def _maximise(
        self,
        acquire: Callable[[np.ndarray], np.ndarray],
        rng: np.random.Generator,
        ok: Sequence[Mapping[str, Any]],
        scores: np.ndarray,
        exclude: list[np.ndarray],
    ) -> np.ndarray:
        z = self._candidates(rng, None, ok, scores, exclude)
        a = acquire(z)
        best_z, best_a = z[int(np.argmax(a))], float(a.max())
        if self._grid() is not None:
            return best_z
        # Local refinement: shrinking random perturbations around the leading candidates.
        lead = z[np.argsort(-a)[:5]]
        for scale in (0.05, 0.02, 0.008)[: self.search["local"]]:
            zz = self._perturb(lead, 64, scale, rng)
            if len(zz) == 0:
                continue
            aa = acquire(zz)
            if aa.max() > best_a:
                best_a, best_z = float(aa.max()), zz[int(np.argmax(aa))]
            lead = np.vstack([best_z[None, :], zz[np.argsort(-aa)[:4]]])
        return best_z

    def _gate(self, a: np.ndarray, x: np.ndarray, feas: FeasibilityModel | None) -> np.ndarray:
        if feas is None:
            return a
        p_ok = feas.predict(x)
        # EI x P(success); spots that will probably fail are only a last resort (ranked
        # below every other candidate, by P): even a large EI there mostly buys another
        # failed experiment.
        a = a * p_ok
        risky = p_ok < self.surrogate["min_success_probability"]
        a[risky] = p_ok[risky] - 1.0
        return a

    def _suggest(
        self, m: int, rng: np.random.Generator, chosen: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        ok = self._ok()
        fantasies = list(self._pending) + list(chosen)
        if len(ok) < 2:
            # Not enough data for a model: spread random feasible points.
            z = self._feasible_sample(m, rng)
            return self.space.to_points(z)
        all_points = [o["point"] for o in self._obs]
        z_all = self.space.from_points(all_points)
        x_all = self._encode_obs(self._obs)
        status = np.array([o["result"] is not None for o in self._obs])
        feas = None
        z_fail = x_fail = None
        if not status.all():
            feas = FeasibilityModel(x_all, status, seed=self.seed)
            z_fail = z_all[~status]
            x_fail = x_all[~status]
        f = self._oriented(ok)
        z_ok_points = self.space.from_points([o["point"] for o in ok])
        if self.strategy == "ehvi":
            exclude = [z_all, self.space.from_points(fantasies)] if fantasies else [z_all]
            return self._suggest_ehvi(m, rng, ok, f, fantasies, feas, x_fail, exclude)
        picks: list[np.ndarray] = []
        model: GPModel | None = None
        for _ in range(m):
            if self.strategy == "parego":
                weights = rng.dirichlet(np.ones(len(self.objectives)))
                scores = scalarise(f, self.objectives, "parego", weights)
            else:
                scores = self._scores(ok)
            if model is None or self.strategy == "parego":
                model, y = self._fit_model(ok, scores)
            base = model
            z_fant = [self.space.from_points([p])[0] for p in fantasies] + picks
            x_list, y_list = [], []
            if z_fail is not None:
                # A failed spot must stop looking attractive, yet a fake zero yield would
                # distort the model around it. So only the acquisition's copy of the model
                # is conditioned there, on its own mean capped at the median result: the
                # variance collapses and an optimistic extrapolation is cut back, while
                # best() and the incumbent still use the clean model.
                x_list.append(x_fail)
                y_list.append(np.minimum(base.predict(x_fail)[0], np.median(y)))
            if z_fant:
                xf = self._encode(np.array(z_fant))
                if self.batch["method"] == "believer":
                    yf, _ = base.predict(xf)
                else:
                    lie = {"min": y.min(), "mean": y.mean(), "max": y.max()}[self.batch["liar"]]
                    yf = np.full(len(xf), lie)
                x_list.append(xf)
                y_list.append(yf)
            cur = base.condition(np.vstack(x_list), np.concatenate(y_list)) if x_list else base
            # Incumbent: best posterior mean at measured points (noise-robust plug-in EI),
            # for this reaction (a related task's point is judged as if run here).
            mu_obs, _ = base.predict_std_units(self._encode(z_ok_points))
            y_best = float(mu_obs.max())
            exclude = [z_all] + ([np.array(z_fant)] if z_fant else [])
            # The first point of a batch exploits; the others, placed while it is pending,
            # may explore more (batch 'explore_xi').
            explore = bool(z_fant)
            picks.append(self._maximise(
                lambda zc, cur=cur, y_best=y_best, explore=explore: self._acquire(
                    cur, feas, zc, y_best, explore),
                rng, ok, scores, exclude))
        return self.space.to_points(np.array(picks))

    def _suggest_ehvi(
        self,
        m: int,
        rng: np.random.Generator,
        ok: Sequence[Mapping[str, Any]],
        f: np.ndarray,
        fantasies: list[dict[str, Any]],
        feas: FeasibilityModel | None,
        x_fail: np.ndarray | None,
        exclude: list[np.ndarray],
    ) -> list[dict[str, Any]]:
        """Expected hypervolume improvement (two objectives), by sampling the posterior.

        One GP per objective; EHVI is the mean exact improvement over 32 posterior draws
        (the same draws for every candidate, so candidates are compared fairly). Batches and
        pending points use the Kriging believer: the believed outcome joins the front.
        """
        x_ok = self._encode_obs(ok)
        seed = int(np.random.default_rng([self.seed, self._asks, 3]).integers(2**31 - 1))
        # Each objective's model is fitted to its oriented values as they are, so each
        # reading's reported noise applies to it unchanged.
        models = [self._gp_model(seed).fit(x_ok, f[:, j], self._reported_variance(ok, j))
                  for j in range(2)]
        ref = self.reference_point()
        front = f[pareto_mask(f)]
        eps = rng.standard_normal((32, 1, 2))
        extra_x = [self._encode(self.space.from_points(fantasies))] if fantasies else []
        picks: list[np.ndarray] = []
        for _ in range(m):
            believed_front = front
            cur = models
            xs = list(extra_x) + ([self._encode(np.array(picks))] if picks else [])
            if xs:
                xf = np.vstack(xs)
                means = np.column_stack([mo.predict(xf)[0] for mo in models])
                believed_front = np.vstack([front, means])
                cur = [mo.condition(xf, means[:, j]) for j, mo in enumerate(models)]
            if x_fail is not None:
                cur = [mo.condition(x_fail, np.minimum(mo.predict(x_fail)[0],
                                                       np.median(f[:, j])))
                       for j, mo in enumerate(cur)]
            bf = believed_front[pareto_mask(believed_front)]

            def acquire(zc: np.ndarray, cur: list[GPModel] = cur,
                        bf: np.ndarray = bf) -> np.ndarray:
                x = self._encode(zc)
                stats = [mo.predict(x) for mo in cur]
                mu = np.column_stack([s[0] for s in stats])[None, :, :]
                sd = np.column_stack([s[1] for s in stats])[None, :, :]
                draws = (mu + sd * eps).reshape(-1, 2)
                gain = hypervolume_improvement_2d(draws, bf, ref).reshape(len(eps), -1)
                return self._gate(gain.mean(axis=0), x, feas)

            zc = [np.array(picks)] if picks else []
            scores = scalarise(f, self.objectives, "parego")
            picks.append(self._maximise(acquire, rng, ok, scores, exclude + zc))
        return self.space.to_points(np.array(picks))
