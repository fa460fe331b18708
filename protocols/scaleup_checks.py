"""Checks of a protocol's ``scale_up`` section, alone and against a platform.

Like every other check they return positioned issues (``FILE:LINE:COLUMN: field: message``)
and never adjust a value: a condition outside its variable's bounds, a pump outside its
range, a stock that cannot last the run or a syringe too small for the start-up is an error.
"""

from __future__ import annotations

from typing import Any

from .errors import Issue
from .model import Categorical, Protocol
from .platform import Platform
from .source import Source, did_you_mean
from .units import UnitError, format_quantity, parse_quantity

__all__ = ["check_scale_up", "check_scale_up_platform"]


def check_scale_up(p: Protocol, src: Source) -> list[Issue]:
    """The section on its own: every variable given once, within its bounds; times ordered."""
    from .scaleup import VARIABLE_KINDS

    su = p.scale_up
    assert su is not None
    issues: list[Issue] = []
    base = ("scale_up", "conditions")
    for name in su.conditions:
        if name not in p.variables:
            guess = did_you_mean(name, p.variables)
            issues.append(
                src.issue(
                    (*base, name),
                    f"{name!r} is not a variable of this protocol; "
                    + (guess or f"variables are {', '.join(map(repr, p.variables))}"),
                    at_key=True,
                )
            )
    for name, var in p.variables.items():
        if name not in su.conditions:
            issues.append(src.issue(base, f"missing the value of variable {name!r}", at_key=True))
            continue
        raw = su.conditions[name]
        path = (*base, name)
        if isinstance(var, Categorical):
            if str(raw) not in {str(c) for c in var.choices}:
                choices = ", ".join(repr(c) for c in var.choices)
                issues.append(src.issue(path, f"{raw!r} is not one of the choices {choices}"))
            continue
        kind = VARIABLE_KINDS[var.type]
        try:
            value = parse_quantity(raw, kind)
        except UnitError as exc:
            issues.append(src.issue(path, str(exc)))
            continue
        low, high = var.low.value, var.high.value
        tolerance = 1e-9 * max(abs(low), abs(high), 1.0)
        if not low - tolerance <= value <= high + tolerance:
            issues.append(
                src.issue(
                    path,
                    f"{raw!r} is outside the bounds of {name} [{var.low.text}, "
                    f"{var.high.text}]; the optimised conditions lie within them",
                )
            )
    if su.run_time.value > su.max_run_time.value:
        issues.append(
            src.issue(
                ("scale_up", "max_run_time"),
                f"{su.max_run_time.text!r} is shorter than the planned run time "
                f"{su.run_time.text!r}",
            )
        )
    ss = su.steady_state
    if ss.min_wait.value > ss.max_time.value:
        issues.append(
            src.issue(
                ("scale_up", "steady_state", "max_time"),
                f"{ss.max_time.text!r} is shorter than min_wait {ss.min_wait.text!r}",
            )
        )
    return issues


def check_scale_up_platform(p: Protocol, platform: Platform, src: Source) -> list[Issue]:
    """Against the platform: a collection valve, pump limits at the conditions, reagents for
    the longest run, syringes large enough for the start-up."""
    from .scaleup import SYRINGE_MARGIN, plan_scale_up
    from .steps import InfeasibleConditions

    issues: list[Issue] = []
    if platform.fluidics.collection is None:
        return [
            src.issue(
                ("scale_up",),
                f"platform {platform.name!r} has no collection valve (fluidics.collection): "
                "a scale-up needs one to send the product to the flask",
                at_key=True,
            )
        ]
    try:
        plan = plan_scale_up(p, platform)
    except InfeasibleConditions as exc:
        return [
            src.issue(("scale_up", "conditions"), f"cannot run continuously: {problem}")
            for problem in exc.problems
        ]
    except (UnitError, KeyError, StopIteration):
        return []  # reported by check_scale_up
    su = p.scale_up
    assert su is not None
    for pump, (q, capacity) in sorted(plan.syringes.items()):
        startup_ml = q * plan.startup_max_s / 60.0
        if startup_ml >= SYRINGE_MARGIN * capacity:
            issues.append(
                src.issue(
                    ("scale_up", "steady_state", "max_time"),
                    f"{pump} (a syringe pump with {capacity:g} mL) delivers "
                    f"{format_quantity(startup_ml, 'volume')} at {q:.4g} mL/min in the "
                    f"longest start-up ({su.steady_state.max_time.text}); use a larger "
                    "syringe (devices.*.options.syringe_volume_ml) or a shorter max_time",
                )
            )
    if issues:
        return issues
    pumps = platform.fluidics.pumps
    dead = {n: pumps[s.pump].dead_volume.value for n, s in p.stocks.items()}
    dead[p.solvent.name] = pumps[p.solvent.pump].dead_volume.value
    segments = plan.segments_needed()
    needs = plan.needs_ml(dead)
    needs[p.solvent.name] = needs.get(p.solvent.name, 0.0) + segments * plan.flush_ml
    for name, need in needs.items():
        given: Any = p.stocks[name].available if name in p.stocks else p.solvent.available
        if need > given.value * (1 + 1e-9):
            path = ("stocks", name, "available") if name in p.stocks else ("solvent", "available")
            refills = f", {segments - 1} syringe refills" if segments > 1 else ""
            issues.append(
                src.issue(
                    path,
                    f"{given.text!r} is not enough for the scale-up: it may need up to "
                    f"{format_quantity(need, 'volume')} (start-up to steady state, "
                    f"{su.max_run_time.text} of collection{refills}, flush and priming)",
                )
            )
    return issues
