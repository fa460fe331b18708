"""Objectives: parsing, scalarisation (single, ParEGO, priority, weighted), Pareto front and
hypervolume. All arrays here are *oriented*: every column is to be maximised."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SpecError

_OBJECTIVE_KEYS = {"goal", "priority", "tolerance", "relative_tolerance", "reference", "weight"}
STRATEGIES = ("auto", "single", "parego", "ehvi", "priority", "weighted")
# ParEGO's augmentation term keeps weakly dominated points from tying with the front.
PAREGO_RHO = 0.05


@dataclass
class Objective:
    name: str
    goal: str = "maximize"
    priority: int | None = None
    tolerance: float | None = None
    relative_tolerance: float | None = None
    reference: float | None = None
    weight: float = 1.0

    @property
    def sign(self) -> float:
        return 1.0 if self.goal == "maximize" else -1.0

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"goal": self.goal}
        for key in ("priority", "tolerance", "relative_tolerance", "reference"):
            value = getattr(self, key)
            if value is not None:
                spec[key] = value
        if self.weight != 1.0:
            spec["weight"] = self.weight
        return spec


def _number(name: str, key: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"objective {name!r}: {key!r} must be a finite number")
    if positive and value < 0:
        raise SpecError(f"objective {name!r}: {key!r} must be >= 0")
    return float(value)


def parse_objectives(spec: Any) -> list[Objective]:
    if not isinstance(spec, Mapping) or not spec:
        raise SpecError("'objectives' must be a non-empty mapping of name -> {goal: ...}")
    out = []
    for name, item in spec.items():
        if not isinstance(name, str) or not name:
            raise SpecError(f"objective name {name!r} must be a non-empty string")
        if isinstance(item, str):
            item = {"goal": item}
        if not isinstance(item, Mapping):
            raise SpecError(f"objective {name!r}: expected a mapping like {{'goal': 'maximize'}}")
        unknown = set(item) - _OBJECTIVE_KEYS
        if unknown:
            raise SpecError(
                f"objective {name!r}: unknown key(s) {sorted(unknown)}; "
                f"allowed: {sorted(_OBJECTIVE_KEYS)}"
            )
        goal = {"max": "maximize", "min": "minimize", "maximise": "maximize",
                "minimise": "minimize"}.get(item.get("goal", "maximize"),
                                             item.get("goal", "maximize"))
        if goal not in ("maximize", "minimize"):
            raise SpecError(f"objective {name!r}: goal must be 'maximize' or 'minimize'")
        obj = Objective(name=name, goal=goal)
        if "priority" in item:
            p = item["priority"]
            if isinstance(p, bool) or not isinstance(p, int):
                raise SpecError(f"objective {name!r}: priority must be an integer (1 = first)")
            obj.priority = p
        if "tolerance" in item:
            obj.tolerance = _number(name, "tolerance", item["tolerance"], positive=True)
        if "relative_tolerance" in item:
            rel = _number(name, "relative_tolerance", item["relative_tolerance"], positive=True)
            if rel > 1:
                raise SpecError(f"objective {name!r}: relative_tolerance is a fraction (0..1)")
            obj.relative_tolerance = rel
        if obj.tolerance is not None and obj.relative_tolerance is not None:
            raise SpecError(f"objective {name!r}: give tolerance or relative_tolerance, not both")
        if "reference" in item:
            obj.reference = _number(name, "reference", item["reference"])
        if "weight" in item:
            obj.weight = _number(name, "weight", item["weight"], positive=True)
        out.append(obj)
    return out


def resolve_strategy(strategy: Any, objectives: list[Objective]) -> str:
    if strategy not in STRATEGIES:
        raise SpecError(f"'strategy' must be one of {list(STRATEGIES)}, got {strategy!r}")
    if strategy == "auto":
        if len(objectives) == 1:
            return "single"
        if any(o.priority is not None for o in objectives):
            return "priority"
        # EHVI beat ParEGO clearly on the two-objective benchmark; ParEGO scales to more.
        return "ehvi" if len(objectives) == 2 else "parego"
    if strategy == "single" and len(objectives) != 1:
        raise SpecError("strategy 'single' needs exactly one objective")
    if strategy == "ehvi" and len(objectives) != 2:
        raise SpecError("strategy 'ehvi' is implemented for exactly two objectives")
    return strategy


def priority_order(objectives: list[Objective]) -> list[int]:
    """Column indices from first to last priority (unranked ones keep spec order, last)."""
    big = 10**9
    return sorted(
        range(len(objectives)),
        key=lambda i: (objectives[i].priority if objectives[i].priority is not None else big, i),
    )


def _normalise(f: np.ndarray) -> np.ndarray:
    lo, hi = f.min(axis=0), f.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.where(hi > lo, (f - lo) / span, 0.5)


def scalarise(
    f: np.ndarray,
    objectives: list[Objective],
    strategy: str,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """One score per row of oriented values ``f`` (n, m); higher is better."""
    if strategy == "single":
        return f[:, 0].copy()
    g = _normalise(f)
    if strategy == "weighted":
        w = np.array([o.weight for o in objectives])
        return g @ (w / w.sum())
    if strategy in ("parego", "ehvi"):
        w = np.full(f.shape[1], 1.0 / f.shape[1]) if weights is None else weights
        loss = 1.0 - g
        return -((loss * w).max(axis=1) + PAREGO_RHO * (loss * w).sum(axis=1))
    if strategy == "priority":
        return priority_scores(f, objectives)
    raise SpecError(f"unknown strategy {strategy!r}")


def priority_scores(f: np.ndarray, objectives: list[Objective]) -> np.ndarray:
    """Chimera-like lexicographic score with tolerances.

    A row that is not within tolerance of the best value of the first objective scores
    in [0, 1) by that objective; one that is, but not within tolerance on the second, scores
    in [1, 2) by the second; and so on. The thresholds come from the data (the best value
    among rows that passed the earlier levels), as in Chimera.
    """
    order = priority_order(objectives)
    g = _normalise(f)
    n = f.shape[0]
    score = np.zeros(n)
    alive = np.ones(n, dtype=bool)  # rows that passed every level so far
    for level, col in enumerate(order):
        last = level == len(order) - 1
        if last:
            score[alive] = level + g[alive, col]
            break
        best = f[alive, col].max()
        obj = objectives[col]
        if obj.tolerance is not None:
            tol = obj.tolerance
        else:
            rel = 0.05 if obj.relative_tolerance is None else obj.relative_tolerance
            tol = rel * abs(best)
        passed = alive & (f[:, col] >= best - tol)
        failed = alive & ~passed
        # Scale the failing rows into [0, 1) so they stay below every passing row.
        score[failed] = level + 0.999 * g[failed, col]
        alive = passed
    return score


def pareto_mask(f: np.ndarray) -> np.ndarray:
    """True for rows of ``f`` (maximised) that no other row dominates."""
    n = f.shape[0]
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if not mask[i]:
            continue
        dominated = np.all(f >= f[i], axis=1) & np.any(f > f[i], axis=1)
        if dominated.any():
            mask[i] = False
    return mask


def hypervolume(f: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume dominated by ``f`` (maximised) above the reference point ``ref``."""
    f = np.asarray(f, dtype=float)
    if f.size == 0:
        return 0.0
    f = f[np.all(f > ref, axis=1)]
    if f.shape[0] == 0:
        return 0.0
    f = f[pareto_mask(f)]
    return _hv(f, np.asarray(ref, dtype=float))


def _hv(f: np.ndarray, ref: np.ndarray) -> float:
    m = f.shape[1]
    if m == 1:
        return float(f[:, 0].max() - ref[0])
    if m == 2:
        pts = f[np.argsort(-f[:, 0])]
        volume, top = 0.0, ref[1]
        for x, y in pts:
            if y > top:
                volume += (x - ref[0]) * (y - top)
                top = y
        return float(volume)
    # Slice along the last objective: each slab is a (m-1)-dimensional problem.
    pts = f[np.argsort(-f[:, -1])]
    volume = 0.0
    for i in range(len(pts)):
        lower = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        height = pts[i, -1] - lower
        if height > 0:
            sub = pts[: i + 1, :-1]
            volume += height * _hv(sub[pareto_mask(sub)], ref[:-1])
    return float(volume)


def hypervolume_improvement_2d(p: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Exact hypervolume gained by adding each row of ``p`` (n, 2) to ``front``, vectorised.

    The front's dominated region is a staircase: above x it reaches height
    h(x) = max{f2 : f1 >= x}. The gain of a point is the area between its box and that
    staircase, summed over the staircase's steps.
    """
    front = front[np.all(front > ref, axis=1)] if len(front) else front.reshape(0, 2)
    a = np.sort(front[:, 0]) if len(front) else np.zeros(0)
    order = np.argsort(front[:, 0]) if len(front) else np.zeros(0, dtype=int)
    f2 = front[order, 1] if len(front) else np.zeros(0)
    # suffix maxima: height of the staircase left of each f1 breakpoint
    suffix = np.maximum.accumulate(f2[::-1])[::-1] if len(f2) else np.zeros(0)
    lower = np.concatenate([[ref[0]], a])
    upper = np.concatenate([a, [np.inf]])
    height = np.concatenate([suffix, [ref[1]]])
    height = np.maximum(height, ref[1])
    width = np.clip(np.minimum(p[:, :1], upper[None, :]) - lower[None, :], 0.0, None)
    gain = np.clip(p[:, 1:2] - height[None, :], 0.0, None)
    return (width * gain).sum(axis=1)
