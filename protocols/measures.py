"""The measures an objective can name: one registry for the model, the checks, the engine,
the CLI and the dashboard.

Each :class:`Measure` says which field of the analysis result
(:class:`robochem.analysis.result.AnalysisResult`) yields it, which column of the
``measurements`` table stores it, the unit kind of its values (thresholds, tolerances,
stopping targets) and the header the exports print. A measure whose ``field`` is ``None``
is known to the language but not measured yet: the checks reject an objective on it before
a campaign starts (it would reach the optimiser as a failure on every experiment).

Goals are spelled ``maximize``/``minimize`` or ``maximise``/``minimise``;
:func:`canonical_goal` is the one place that folds the spellings.

Part of the protocol language: no runtime, storage or database import (see
docs/architecture.md, "Rooms").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from robochem.analysis.result import AnalysisResult

__all__ = [
    "GOALS",
    "MEASURES",
    "Goal",
    "GoalSpelling",
    "Measure",
    "better",
    "canonical_goal",
    "measured",
    "objective_values",
    "pick_best",
]

#: A goal as the code uses it.
Goal = Literal["maximize", "minimize"]
#: A goal as a protocol file may spell it.
GoalSpelling = Literal["maximize", "minimize", "maximise", "minimise"]
#: Every accepted spelling, the canonical ones first.
GOALS: tuple[str, ...] = get_args(GoalSpelling)

_CANONICAL: dict[str, Goal] = {
    "maximize": "maximize",
    "maximise": "maximize",
    "minimize": "minimize",
    "minimise": "minimize",
}


@dataclass(frozen=True)
class Measure:
    """One measure: where its value comes from, where it is stored, in which unit."""

    name: str
    #: attribute of ``AnalysisResult`` that yields it; None: not measured yet
    field: str | None
    #: column of ``robochem.storage.models.Measurement``; None: not stored
    column: str | None
    #: unit kind of :mod:`robochem.protocols.units` (thresholds, tolerances, targets)
    kind: str
    #: unit symbol for headers
    symbol: str
    #: goal of the measure when no objective names it ("best yield" means the highest)
    natural_goal: Goal = "maximize"
    #: the analysis needs the substrate's signal (analysis.substrate) to produce it
    needs_substrate: bool = False
    #: why it is not measured (the validation error says it); None when it is
    unmeasured_reason: str | None = None
    #: attribute of ``AnalysisResult`` with the standard deviation of the value (same
    #: unit); None: the analysis reports none, so the optimiser learns the noise itself
    sd_field: str | None = None

    @property
    def header(self) -> str:
        """Column header of the exports, e.g. ``yield (%)``."""
        return f"{self.name} ({self.symbol})"

    def value(self, result: AnalysisResult) -> float | None:
        """This measure's value in an analysis result (None when it gave none)."""
        if self.field is None:
            return None
        value = getattr(result, self.field)
        return None if value is None else float(value)

    def sd(self, result: AnalysisResult) -> float | None:
        """The standard deviation the analysis reported for this value (None: none)."""
        if self.sd_field is None:
            return None
        sd = getattr(result, self.sd_field)
        # a NaN or negative spread is no report at all: the learned noise applies
        return float(sd) if sd is not None and math.isfinite(sd) and sd >= 0 else None


#: measure name -> Measure, in the order error messages list them
MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure(
            "yield", "yield_percent", "yield_percent", "percent", "%", sd_field="yield_sd_percent"
        ),
        Measure(
            "conversion",
            "conversion_percent",
            "conversion_percent",
            "percent",
            "%",
            needs_substrate=True,
        ),
        Measure(
            "selectivity",
            None,
            None,
            "percent",
            "%",
            needs_substrate=True,
            unmeasured_reason="the analysis does not quantify side products into a "
            "selectivity, so every experiment would reach the optimiser as a failure",
        ),
        Measure("throughput", "throughput_mmol_h", "throughput_mmol_h", "throughput", "mmol/h"),
    )
}


def measured() -> dict[str, Measure]:
    """The measures the analysis produces and the database stores (in registry order)."""
    return {n: m for n, m in MEASURES.items() if m.field is not None and m.column is not None}


def canonical_goal(goal: str) -> Goal:
    """``maximize`` or ``minimize`` for any accepted spelling; ValueError otherwise."""
    try:
        return _CANONICAL[goal]
    except KeyError:
        expected = ", ".join(repr(g) for g in GOALS[:-1]) + f" or {GOALS[-1]!r}"
        raise ValueError(f"unknown goal {goal!r}; expected {expected}") from None


def better(goal: str, a: float, b: float) -> bool:
    """Whether ``a`` is strictly better than ``b`` under ``goal``."""
    return a < b if canonical_goal(goal) == "minimize" else a > b


def pick_best(goal: str, values: Iterable[float | None]) -> float | None:
    """The best of ``values`` under ``goal`` (None values ignored; None when none is left)."""
    best: float | None = None
    for value in values:
        if value is not None and (best is None or better(goal, value, best)):
            best = value
    return best


def objective_values(
    objectives: Mapping[str, Any], result: AnalysisResult | None
) -> dict[str, float | None] | None:
    """Objective name -> measured value for the optimiser; None when the spectrum failed.

    A value the analysis gave a standard deviation for comes with it under
    ``<name>_sd`` (e.g. ``{"yield": 71.2, "yield_sd": 0.8}``), which the optimiser uses as
    that reading's noise. ``objectives`` maps names to anything with a ``measure``
    attribute (the protocol's :class:`~robochem.protocols.model.Objective`).
    """
    if result is None or not result.ok_for_optimizer:
        return None
    out: dict[str, float | None] = {}
    for name, obj in objectives.items():
        measure = MEASURES[obj.measure]
        out[name] = value = measure.value(result)
        sd = measure.sd(result) if value is not None else None
        if sd is not None:
            out[f"{name}_sd"] = sd
    return out
