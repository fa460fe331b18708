"""Checks across fields: inside a protocol, inside a platform, and protocol against platform.

Each check returns :class:`~robochem.protocols.errors.Issue` objects pointing at the field
to change, so a chemist reads ``protocol.yaml:14:12: variables.equiv_b.stock: ...`` rather
than a stack trace.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from .errors import Issue
from .measures import MEASURES, measured
from .model import (
    Categorical,
    ConcentrationVariable,
    EquivalentsVariable,
    Protocol,
    SlugMode,
)
from .platform import SIM_URL, Platform
from .recipe import corners, expand, format_conditions, mixture_concentrations, stock_choices
from .source import Source, did_you_mean
from .units import format_quantity, parse_quantity

__all__ = ["check_against_platform", "check_platform", "check_protocol", "reagent_needs"]

_SINGLETONS = ("residence_time", "light", "temperature")


def _names(options: Iterable[str]) -> str:
    return ", ".join(repr(o) for o in options)


def _unknown(kind: str, given: str, options: Iterable[str]) -> str:
    options = list(options)
    guess = did_you_mean(given, options)
    return f"unknown {kind} {given!r}; " + (guess or f"expected one of {_names(options)}")


# -- platform ---------------------------------------------------------------------------------


def check_platform(platform: Platform, src: Source) -> list[Issue]:
    from robochem.drivers.registry import DRIVERS
    from robochem.drivers.transport import parse_url

    issues: list[Issue] = []
    devices = platform.devices
    for name, dev in devices.items():
        if dev.driver not in DRIVERS:
            issues.append(
                src.issue(
                    ("devices", name, "driver"), _unknown("driver", dev.driver, sorted(DRIVERS))
                )
            )
        if dev.url != SIM_URL:
            try:
                parse_url(dev.url)
            except ValueError as exc:
                issues.append(src.issue(("devices", name, "url"), str(exc)))
        elif not platform.simulated:
            issues.append(
                src.issue(
                    ("devices", name, "url"),
                    f"'{SIM_URL}' is only allowed in a "
                    "simulated platform (simulated: true); give the device URL",
                )
            )
        for key in ("flow", "light", "temperature"):
            pair = getattr(dev.limits, key)
            if pair is not None and pair[0].value > pair[1].value:
                issues.append(
                    src.issue(
                        ("devices", name, "limits", key),
                        f"[{pair[0].text}, {pair[1].text}]: min must not exceed max",
                    )
                )
    fl = platform.fluidics

    def need(path: tuple[Any, ...], device: str, what: str) -> bool:
        if device not in devices:
            issues.append(src.issue(path, _unknown(f"{what} device", device, devices)))
            return False
        return True

    for pump, line in fl.pumps.items():
        if line.selector is not None:
            need(("fluidics", "pumps", pump, "selector"), line.selector, "selector valve")
        if need(("fluidics", "pumps", pump), pump, "pump") and devices[pump].limits.flow is None:
            issues.append(
                src.issue(
                    ("devices", pump, "limits"),
                    "a pump feeding the mixer needs limits.flow: [min, max]",
                )
            )
    need(("fluidics", "reactor", "device"), fl.reactor.device, "reactor")
    need(("fluidics", "nmr", "device"), fl.nmr.device, "NMR")
    if fl.collection is not None and need(
        ("fluidics", "collection", "valve"), fl.collection.valve, "valve"
    ):
        positions = devices[fl.collection.valve].limits.positions
        for key in ("waste", "collect"):
            pos = getattr(fl.collection, key)
            if positions is not None and pos not in positions:
                issues.append(
                    src.issue(
                        ("fluidics", "collection", key),
                        f"{pos!r} is not a position of {fl.collection.valve}; "
                        f"positions are {_names(positions)}",
                    )
                )
    if fl.gas_inlet is not None:
        need(("fluidics", "gas_inlet", "device"), fl.gas_inlet.device, "gas inlet")
    safe = platform.safe_state.temperature
    reactor = devices.get(fl.reactor.device)
    if safe is not None and reactor is not None and reactor.limits.temperature is not None:
        low, high = reactor.limits.temperature
        if not low.value <= safe.value <= high.value:
            issues.append(
                src.issue(
                    ("safe_state", "temperature"),
                    f"{safe.text} is outside {fl.reactor.device}'s temperature limits "
                    f"[{low.text}, {high.text}]",
                )
            )
    return issues


# -- protocol alone ---------------------------------------------------------------------------


def check_protocol(p: Protocol, src: Source) -> list[Issue]:
    choices_of = stock_choices(p)
    issues = [
        *_check_limiting(p, src),
        *_check_variables(p, src, choices_of),
        *_check_structures(p, src, choices_of),
        *_check_singletons(p, src),
        *_check_amounts(p, src, choices_of),
        *_check_pumps_distinct(p, src, choices_of),
        *_check_objectives(p, src),
        *_check_constraints(p, src),
        *_check_optimizer(p, src),
    ]
    if not issues:
        issues.extend(_check_optimizer_accepts(p, src))
    if p.scale_up is not None:
        from .scaleup_checks import check_scale_up

        issues.extend(check_scale_up(p, src))
    issues.extend(_check_safety_range(p, src))
    return sorted(issues, key=lambda i: (i.line, i.column))


def _check_limiting(p: Protocol, src: Source) -> list[Issue]:
    """Exactly one stock is the limiting reagent."""
    limiting = [n for n, s in p.stocks.items() if s.role == "limiting"]
    if len(limiting) == 1:
        return []
    where = ("stocks", limiting[1], "role") if len(limiting) > 1 else ("stocks",)
    return [
        src.issue(
            where,
            f"{len(limiting)} stocks have role 'limiting' "
            f"({_names(limiting) or 'none'}); exactly one must",
        )
    ]


def _check_variables(p: Protocol, src: Source, choices_of: dict[str, list[str]]) -> list[Issue]:
    """Each variable on its own: its name, its choices or bounds, the stock it sets."""
    issues: list[Issue] = []
    add = issues.append
    for name, var in p.variables.items():
        base = ("variables", name)
        if not name.isidentifier():
            add(
                src.issue(
                    base,
                    f"variable name {name!r} must be a name usable in constraints "
                    "(letters, digits and _; no '-' or spaces)",
                    at_key=True,
                )
            )
        if isinstance(var, Categorical):
            seen: set[str] = set()
            for i, choice in enumerate(var.choices):
                if repr(choice) in seen:
                    add(src.issue((*base, "choices", i), f"duplicate choice {choice!r}"))
                seen.add(repr(choice))
            continue
        if var.low.value >= var.high.value:
            add(
                src.issue(
                    (*base, "high"), f"high {var.high.text!r} must be above low {var.low.text!r}"
                )
            )
        if var.log and var.low.value <= 0:
            add(src.issue((*base, "low"), f"{var.low.text!r}: a log-scaled variable needs low > 0"))
        if var.type == "light" and var.high.value > 100:
            add(src.issue((*base, "high"), f"{var.high.text!r}: light is 0-100 %"))
        if isinstance(var, ConcentrationVariable | EquivalentsVariable):
            issues.extend(_check_stock_ref(p, name, var, src, choices_of))
    return issues


def _check_structures(
    p: Protocol, src: Source, choices_of: dict[str, list[str]]
) -> list[Issue]:
    """Every SMILES parses; a categorical's structures cover all its choices or none."""
    issues: list[Issue] = []
    given = [(("stocks", n, "smiles"), f"stock {n!r}", s.smiles) for n, s in p.stocks.items()]
    for name, var in p.variables.items():
        if not isinstance(var, Categorical) or var.smiles is None:
            continue
        base = ("variables", name, "smiles")
        if name in choices_of:
            issues.append(src.issue(base, f"{name!r} chooses among stocks: give each stock "
                                          "its structure (stocks.<name>.smiles) instead",
                                    at_key=True))  # fmt: skip
            continue
        labels = [str(c) for c in var.choices]
        for choice, text in var.smiles.items():
            if choice not in labels:
                issues.append(src.issue((*base, choice), _unknown("choice", choice, labels),
                                        at_key=True))  # fmt: skip
            else:
                given.append(((*base, choice), f"choice {choice!r} of {name!r}", text))
    if any(text is not None for *_, text in given):
        from robochem.optimizer.structures import InvalidStructure, standardise

        for path, what, text in given:
            if text is None:
                continue
            try:
                standardise(text)
            except InvalidStructure as exc:
                issues.append(src.issue(path, f"{what}: {exc}"))
    for name, var in p.variables.items():
        if isinstance(var, Categorical) and p.choice_structures(name) is None:
            issues.extend(_partial_structures(p, src, name, choices_of))
    return issues


def _partial_structures(
    p: Protocol, src: Source, name: str, choices_of: dict[str, list[str]]
) -> list[Issue]:
    """Some choices with a structure and some without: say which, rather than silently
    searching by names."""
    var = p.variables[name]
    assert isinstance(var, Categorical)
    if name in choices_of:
        have = {c: p.stocks[c].smiles is not None for c in choices_of[name]}
        where: tuple[Any, ...] = ("variables", name, "choices")
    elif var.smiles is not None:
        if set(var.smiles) - {str(c) for c in var.choices}:
            return []  # a misspelt choice: reported at its key, and likely the missing one
        have = {str(c): str(c) in var.smiles for c in var.choices}
        where = ("variables", name, "smiles")
    else:
        return []
    missing = [c for c, ok in have.items() if not ok]
    if not missing or len(missing) == len(have):
        return []
    return [
        src.issue(
            where,
            f"{name!r}: {_names(missing)} {'has' if len(missing) == 1 else 'have'} no "
            "structure (smiles) while the other choices do; give every choice a structure "
            "to search by structure, or none to search by name",
        )
    ]


def _check_singletons(p: Protocol, src: Source) -> list[Issue]:
    """Residence time, light and temperature: each exactly once, a variable or fixed."""
    issues: list[Issue] = []
    add = issues.append
    for kind in _SINGLETONS:
        named = [n for n, v in p.variables.items() if v.type == kind]
        fixed = getattr(p.fixed, kind)
        if len(named) > 1:
            add(
                src.issue(
                    ("variables", named[1]),
                    f"a second {kind} variable (first is {named[0]!r}); there can be only one",
                    at_key=True,
                )
            )
        if named and fixed is not None:
            add(
                src.issue(
                    ("fixed", kind),
                    f"{kind} is both fixed ({fixed.text!r}) and the "
                    f"variable {named[0]!r}; keep one",
                    at_key=True,
                )
            )
        if not named and fixed is None:
            add(
                src.issue(
                    ("fixed",),
                    f"{kind} is neither a variable nor fixed; add "
                    f"'fixed: {{{kind}: ...}}' or a variable of type {kind}",
                    at_key=True,
                )
            )
    if p.fixed.light is not None and p.fixed.light.value > 100:
        add(src.issue(("fixed", "light"), f"{p.fixed.light.text!r}: light is 0-100 %"))
    return issues


def _check_objectives(p: Protocol, src: Source) -> list[Issue]:
    """Each objective on a measure the analysis produces (and can produce from this
    analysis section); priorities distinct."""
    issues: list[Issue] = []
    add = issues.append
    usable = ", ".join(measured())
    for name, obj in p.objectives.items():
        measure = MEASURES[obj.measure]
        path = ("objectives", name, "measure")
        if measure.unmeasured_reason is not None:
            add(
                src.issue(
                    path,
                    f"{measure.name} is not measured yet: {measure.unmeasured_reason}; "
                    f"use one of {usable}",
                )
            )
            continue
        a = p.analysis
        if measure.needs_substrate and a.substrate is None and a.limiting_reagent.region is None:
            add(
                src.issue(
                    path,
                    f"{obj.measure!r} needs the "
                    "substrate's signal: give analysis.substrate (or region and "
                    "nuclei in analysis.limiting_reagent)",
                )
            )
    priorities = [o.priority for o in p.objectives.values() if o.priority is not None]
    if len(set(priorities)) != len(priorities):
        dup = next(n for n, o in p.objectives.items() if priorities.count(o.priority) > 1)
        add(
            src.issue(
                ("objectives", dup, "priority"),
                "two objectives share this priority; give each a different rank",
            )
        )
    return issues


def _check_constraints(p: Protocol, src: Source) -> list[Issue]:
    """Each constraint parses as an expression over the variables."""
    from robochem.optimizer.constraints import parse_constraint
    from robochem.optimizer.errors import SpecError

    issues: list[Issue] = []
    for i, expression in enumerate(p.constraints):
        try:
            parse_constraint(expression, list(p.variables), i)
        except (SpecError, ValueError) as exc:
            issues.append(src.issue(("constraints", i), str(exc)))
    return issues


def _check_optimizer(p: Protocol, src: Source) -> list[Issue]:
    """The optimiser section: the design within the budget, targets on known objectives."""
    issues: list[Issue] = []
    add = issues.append
    opt = p.optimizer
    if opt.initial_experiments > opt.budget:
        add(
            src.issue(
                ("optimizer", "initial_experiments"),
                f"{opt.initial_experiments} initial experiments exceed the budget of {opt.budget}",
            )
        )
    for key, value in opt.stopping.target.items():
        path = ("optimizer", "stopping", "target", key)
        if key not in p.objectives:
            add(src.issue(path, _unknown("objective", key, p.objectives), at_key=True))
            continue
        try:
            parse_quantity(value, MEASURES[p.objectives[key].measure].kind)
        except ValueError as exc:
            add(src.issue(path, str(exc)))
    return issues


def _check_safety_range(p: Protocol, src: Source) -> list[Issue]:
    """The safety temperature range is a range, and every temperature lies inside it."""
    lo, hi = p.safety.temperature
    if lo.value >= hi.value:
        return [src.issue(("safety", "temperature", 1), f"{hi.text!r} must be above {lo.text!r}")]
    return [
        src.issue(path, f"{t.text!r} is outside the safety range [{lo.text}, {hi.text}]")
        for path, t in _temperatures(p)
        if not lo.value <= t.value <= hi.value
    ]


def _check_optimizer_accepts(p: Protocol, src: Source) -> list[Issue]:
    """What the optimiser itself refuses (e.g. constraints that exclude every point)."""
    from robochem.optimizer import Optimizer
    from robochem.optimizer.errors import SpecError

    try:
        Optimizer.from_spec(p.to_optimizer_spec())
    except SpecError as exc:
        path = ("constraints",) if "constraint" in str(exc) else ("optimizer",)
        return [src.issue(path, f"the optimiser refuses this protocol: {exc}", at_key=True)]
    return []


def _temperatures(p: Protocol) -> list[tuple[tuple[Any, ...], Any]]:
    out: list[tuple[tuple[Any, ...], Any]] = []
    for name, var in p.variables_of_type("temperature").items():
        out += [(("variables", name, "low"), var.low), (("variables", name, "high"), var.high)]
    if p.fixed.temperature is not None:
        out.append((("fixed", "temperature"), p.fixed.temperature))
    return out


def _check_stock_ref(
    p: Protocol, name: str, var: Any, src: Source, choices_of: dict[str, list[str]]
) -> list[Issue]:
    path = ("variables", name, "stock")
    target = var.stock
    if target in p.stocks:
        targets = [target]
    elif target in p.variables and isinstance(p.variables[target], Categorical):
        if target not in choices_of:
            bad = [c for c in p.variables[target].choices if str(c) not in p.stocks]  # type: ignore[union-attr]
            return [
                src.issue(
                    path,
                    f"{target!r} chooses {_names(map(str, bad))}, which are not "
                    f"stocks; stocks are {_names(p.stocks)}",
                )
            ]
        targets = choices_of[target]
    else:
        return [src.issue(path, _unknown("stock", target, p.stocks))]
    issues = []
    for stock in targets:
        role = p.stocks[stock].role
        if isinstance(var, ConcentrationVariable) and role != "limiting":
            issues.append(
                src.issue(
                    path,
                    f"a concentration variable sets the limiting reagent; "
                    f"stock {stock!r} has role {role!r} (use equivalents)",
                )
            )
        if isinstance(var, EquivalentsVariable) and role == "limiting":
            issues.append(
                src.issue(
                    path,
                    f"stock {stock!r} is the limiting reagent: vary its "
                    "amount with a concentration variable",
                )
            )
    return issues


def _check_amounts(p: Protocol, src: Source, choices_of: dict[str, list[str]]) -> list[Issue]:
    """Each stock's amount comes from exactly one place: its own field or one variable."""
    issues = []
    set_by: dict[str, str] = {}
    # a variable naming an unknown stock is reported on its own; don't also blame the stock
    dangling = any(
        isinstance(v, ConcentrationVariable | EquivalentsVariable)
        and v.stock not in p.stocks
        and v.stock not in choices_of
        for v in p.variables.values()
    )
    for name, var in p.variables.items():
        if isinstance(var, ConcentrationVariable | EquivalentsVariable):
            for stock in choices_of.get(var.stock, [var.stock]):
                set_by.setdefault(stock, name)
    for name, stock in p.stocks.items():
        base = ("stocks", name)
        field = "target_concentration" if stock.role == "limiting" else "equivalents"
        wrong = "equivalents" if stock.role == "limiting" else "target_concentration"
        if getattr(stock, wrong) is not None:
            issues.append(
                src.issue(
                    (*base, wrong),
                    f"{wrong} does not apply to a stock with role {stock.role!r}; use {field}",
                    at_key=True,
                )
            )
        given = getattr(stock, field)
        if given is not None and name in set_by:
            issues.append(
                src.issue(
                    (*base, field),
                    f"{given.text!r} is also set by the variable {set_by[name]!r}; keep one",
                    at_key=True,
                )
            )
        if given is None and name not in set_by and not dangling:
            issues.append(
                src.issue(
                    base,
                    f"no amount for this stock: give {field} or vary it with a variable",
                    at_key=True,
                )
            )
    return issues


def _check_pumps_distinct(
    p: Protocol, src: Source, choices_of: dict[str, list[str]]
) -> list[Issue]:
    """Two stocks on one pump only when they are alternatives (never used together)."""
    group = {s: v for v, stocks in choices_of.items() for s in stocks}
    owner: dict[str, str] = {}
    issues = []
    for name, stock in p.stocks.items():
        first = owner.get(stock.pump)
        if first is not None and (first not in group or group.get(name) != group[first]):
            issues.append(
                src.issue(
                    ("stocks", name, "pump"), f"{stock.pump!r} already carries stock {first!r}"
                )
            )
        owner.setdefault(stock.pump, name)
    if p.solvent.pump in owner:
        issues.append(
            src.issue(
                ("solvent", "pump"),
                f"{p.solvent.pump!r} already carries stock {owner[p.solvent.pump]!r}",
            )
        )
    return issues


# -- protocol against platform ---------------------------------------------------------------


def check_against_platform(p: Protocol, platform: Platform, src: Source) -> list[Issue]:
    issues: list[Issue] = []
    add = issues.append
    fl = platform.fluidics
    pumps = list(fl.pumps)
    for path, pump in [(("stocks", n, "pump"), s.pump) for n, s in p.stocks.items()] + [
        (("solvent", "pump"), p.solvent.pump)
    ]:
        if pump not in fl.pumps:
            add(
                src.issue(
                    path,
                    f"{_unknown('pump', pump, pumps)} (the pumps of platform {platform.name!r})",
                )
            )
    if issues:
        return issues
    issues.extend(_check_selectors(p, platform, src))
    issues.extend(_check_step_devices(p, platform, src))

    reactor = platform.devices[fl.reactor.device].limits
    if reactor.light is not None:
        lo, hi = reactor.light
        for path, q in _ranged(p, "light"):
            if not lo.value <= q.value <= hi.value:
                add(
                    src.issue(
                        path,
                        f"{q.text!r} is outside the light range of "
                        f"{fl.reactor.device} [{lo.text}, {hi.text}]",
                    )
                )
    if reactor.temperature is not None:
        lo, hi = reactor.temperature
        for path, q in _temperatures(p):
            if not lo.value <= q.value <= hi.value:
                add(
                    src.issue(
                        path,
                        f"{q.text!r} is outside the temperature range of "
                        f"{fl.reactor.device} [{lo.text}, {hi.text}]",
                    )
                )
    if p.fixed.wavelength is not None and reactor.wavelengths is not None:
        wl = p.fixed.wavelength
        if not any(abs(w.value - wl.value) <= 1.0 for w in reactor.wavelengths):
            add(
                src.issue(
                    ("fixed", "wavelength"),
                    f"{wl.text!r}: {fl.reactor.device} has "
                    f"{', '.join(w.text for w in reactor.wavelengths)}",
                )
            )
    for pump in [*dict.fromkeys([s.pump for s in p.stocks.values()]), p.solvent.pump]:
        rating = platform.devices[pump].limits.max_pressure
        if rating is not None and p.safety.max_pressure.value > rating.value:
            add(
                src.issue(
                    ("safety", "max_pressure"),
                    f"{p.safety.max_pressure.text!r} is above the rating of {pump} ({rating.text})",
                )
            )
    mode = p.execution
    if isinstance(mode, SlugMode):
        if mode.volume.value >= fl.reactor.volume.value:
            add(
                src.issue(
                    ("execution", "volume"),
                    f"a {mode.volume.text!r} slug does not fit in "
                    f"the reactor ({fl.reactor.volume.text}); make it smaller",
                )
            )
        if mode.gas_segment is not None and fl.gas_inlet is None:
            add(
                src.issue(
                    ("execution", "gas_segment"),
                    f"platform {platform.name!r} has no gas "
                    "inlet (fluidics.gas_inlet) to make gas segments",
                )
            )
    solvent_limits = platform.devices[p.solvent.pump].limits.flow
    if solvent_limits is not None:
        q = p.cleaning.flow.value
        if not solvent_limits[0].value <= q <= solvent_limits[1].value:
            add(
                src.issue(
                    ("cleaning", "flow"),
                    f"{p.cleaning.flow.text!r} is outside the range "
                    f"of {p.solvent.pump} [{solvent_limits[0].text}, "
                    f"{solvent_limits[1].text}]",
                )
            )
    if issues:
        return issues

    issues.extend(_check_corners(p, platform, src))
    if p.scale_up is not None:
        # a scale-up runs its conditions, not the optimiser's budget: its own reagent check
        from .scaleup_checks import check_scale_up_platform

        if not issues:
            issues.extend(check_scale_up_platform(p, platform, src))
    elif not issues:
        issues.extend(_check_reagents(p, platform, src))
    return issues


#: capability -> (the steps every experiment sends to the reactor for it, the device kind)
_REACTOR_STEPS: dict[str, tuple[tuple[str, ...], str]] = {
    "temperature": (("SetTemperature", "WaitTemperature"), "temperature controller"),
    "light": (("SetLight", "LightOff"), "light source"),
}


def reactor_capabilities(platform: Platform) -> tuple[set[str], str] | None:
    """What the reactor device can do (``light``, ``temperature``) and what it is, from its
    driver's class, as the engine's lab sees it; None when the driver is unknown (reported
    by :func:`check_platform`)."""
    from robochem.drivers.base import LightSource, Photoreactor, TemperatureController
    from robochem.drivers.registry import DRIVERS, driver_class

    spec = platform.devices.get(platform.fluidics.reactor.device)
    if spec is None or spec.driver not in DRIVERS:
        return None
    cls = driver_class(spec.driver)
    if issubclass(cls, Photoreactor):
        return {"light", "temperature"}, "a photoreactor (light source and temperature control)"
    if issubclass(cls, LightSource):
        return {"light"}, "a light source only"
    if issubclass(cls, TemperatureController):
        return {"temperature"}, "a temperature controller only"
    base = cls.__mro__[1].__name__.lower()
    return set(), f"a {base}, neither a light source nor a temperature controller"


def _check_step_devices(p: Protocol, platform: Platform, src: Source) -> list[Issue]:
    """Every step an experiment sends must find its device: the reactor's light source for
    the light steps (LightOff ends every experiment's reaction), its temperature controller
    for the temperature steps (every protocol sets a temperature). Reported at the field
    that makes the steps, before anything runs."""
    found = reactor_capabilities(platform)
    if found is None:
        return []
    has, what = found
    reactor = platform.fluidics.reactor.device
    driver = platform.devices[reactor].driver
    issues = []
    for capability, (steps, kind) in _REACTOR_STEPS.items():
        fields = _ranged(p, capability)
        if capability in has or not fields:
            continue
        issues.append(
            src.issue(
                fields[0][0][:2],
                f"the {' and '.join(steps)} steps need a {kind} on the reactor; platform "
                f"{platform.name!r} has none: its reactor {reactor!r} (driver {driver!r}) is "
                f"{what}",
                at_key=True,
            )
        )
    return sorted(issues, key=lambda i: (i.line, i.column))


def _check_selectors(p: Protocol, platform: Platform, src: Source) -> list[Issue]:
    """Stocks sharing a pump are drawn through its selector valve, each from its own port."""
    issues = []
    by_pump: dict[str, list[str]] = {}
    for name, stock in p.stocks.items():
        by_pump.setdefault(stock.pump, []).append(name)
    for pump, names in by_pump.items():
        selector = platform.fluidics.pumps[pump].selector
        if selector is None:
            if len(names) > 1:
                issues.append(
                    src.issue(
                        ("stocks", names[1], "pump"),
                        f"{pump!r} also carries "
                        f"{names[0]!r} and has no selector valve on platform "
                        f"{platform.name!r}",
                    )
                )
            for name in names:
                if p.stocks[name].port is not None:
                    issues.append(
                        src.issue(
                            ("stocks", name, "port"),
                            f"{pump!r} has no selector valve; remove port",
                            at_key=True,
                        )
                    )
            continue
        positions = (
            platform.devices[selector].limits.positions if selector in platform.devices else None
        )
        used: dict[str, str] = {}
        for name in names:
            port = p.stocks[name].port
            if port is None:
                issues.append(
                    src.issue(
                        ("stocks", name),
                        f"{pump!r} draws through the selector "
                        f"valve {selector!r}: give this stock's port",
                        at_key=True,
                    )
                )
            elif positions is not None and port not in positions:
                issues.append(
                    src.issue(
                        ("stocks", name, "port"),
                        f"{port!r} is not a position "
                        f"of {selector!r}; positions are {_names(positions)}",
                    )
                )
            elif port in used:
                issues.append(
                    src.issue(
                        ("stocks", name, "port"),
                        f"port {port!r} already draws stock {used[port]!r}",
                    )
                )
            else:
                used[port] = name
    return issues


def _ranged(p: Protocol, kind: str) -> list[tuple[tuple[Any, ...], Any]]:
    out: list[tuple[tuple[Any, ...], Any]] = []
    for name, var in p.variables_of_type(kind).items():
        out += [(("variables", name, "low"), var.low), (("variables", name, "high"), var.high)]
    fixed = getattr(p.fixed, kind)
    if fixed is not None:
        out.append((("fixed", kind), fixed))
    return out


def feasible_corners(p: Protocol) -> list[dict[str, Any]]:
    """Corners the optimiser may ask for: those no declared constraint excludes."""
    from robochem.optimizer.constraints import ConstraintSet

    constraints = ConstraintSet(list(p.constraints), list(p.variables))
    return [c for c in corners(p) if not constraints.violated(c)]


def _check_corners(p: Protocol, platform: Platform, src: Source) -> list[Issue]:
    """Expand every corner; report each distinct problem once, at its first corner."""
    first: dict[str, tuple[dict[str, Any], str]] = {}
    counts: dict[str, int] = {}
    for corner in feasible_corners(p):
        for problem in expand(p, platform, corner).problems:
            key = problem.split(" would run")[0] + (" low" if "below" in problem else " high")
            if "solvent would be" in problem:
                key = "solvent"
            first.setdefault(key, (corner, problem))
            counts[key] = counts.get(key, 0) + 1
    issues = []
    for key, (corner, problem) in first.items():
        more = counts[key] - 1
        tail = f" (and {more} more corner{'s' if more > 1 else ''})" if more else ""
        issues.append(
            src.issue(
                ("variables",),
                f"infeasible corner {format_conditions(p, corner)}: {problem}{tail}",
                at_key=True,
            )
        )
    return issues


def reagent_needs(p: Protocol, platform: Platform) -> dict[str, tuple[float, float]]:
    """Stock (and the solvent, under its name) -> (mL needed for the budget, mL available).

    An upper bound: the largest use of one experiment anywhere the optimiser may ask, times
    the budget, plus priming the pump's dead volume once. A stock's use (the recipe's) grows
    with its concentration in the mixture, which is monotonic in each variable on its own,
    so its maximum over the box sits at a corner. When a declared constraint excludes that
    corner the maximum lies on the constraint's boundary, between corners, where the feasible
    corners alone underestimate it (the HAT example's catalyst: [A]·loading reaches 0.0128 M
    on its boundary, 0.0025 M at its best feasible corner): :func:`_boundary_max` finds it.
    The solvent's use (cleaning and slug push included) is taken at the worst corner of the
    whole box. Repeats of rejected or interrupted experiments come on top.
    """
    all_corners = corners(p)
    feasible = feasible_corners(p)
    worst: dict[str, float] = {n: 0.0 for n in p.stocks}
    worst_solvent = 0.0
    for corner in all_corners:
        recipe = expand(p, platform, corner, check=False)
        worst_solvent = max(worst_solvent, recipe.solvent_use_ml)
        if corner in feasible or not p.constraints:
            for n, v in recipe.stock_use_ml.items():
                worst[n] = max(worst[n], v)
    if p.constraints:
        for n in p.stocks:
            point = _boundary_max(p, n)
            if point is not None:
                use = expand(p, platform, point, check=False).stock_use_ml[n]
                worst[n] = max(worst[n], use * (1 + _BOUNDARY_MARGIN))
    budget = p.optimizer.budget
    pumps = platform.fluidics.pumps
    out = {
        n: (worst[n] * budget + pumps[s.pump].dead_volume.value, s.available.value)
        for n, s in p.stocks.items()
    }
    solvent_priming = pumps[p.solvent.pump].dead_volume.value
    out[p.solvent.name] = (worst_solvent * budget + solvent_priming, p.solvent.available.value)
    return out


#: samples pushed to the constraint boundary per categorical combination, and the margin
#: added to the best of them (the sampled maximum approaches the true one from below)
_BOUNDARY_SAMPLES = 2048
_BOUNDARY_MARGIN = 0.005


def _boundary_max(p: Protocol, stock: str) -> dict[str, Any] | None:
    """The allowed point where ``stock``'s concentration in the mixture is largest (None when
    no point is allowed). Random points are pushed by bisection towards the corner where
    that concentration peaks until a constraint stops them (constraints that bound amounts
    from above, as flow and cost limits do, keep the allowed set connected along these
    segments); the best of them is returned."""
    import numpy as np

    from robochem.optimizer.constraints import ConstraintSet

    constraints = ConstraintSet(list(p.constraints), list(p.variables))
    rng = np.random.default_rng(0)
    continuous = {n: v for n, v in p.variables.items() if not isinstance(v, Categorical)}
    categorical = {n: v for n, v in p.variables.items() if isinstance(v, Categorical)}
    best: tuple[float, dict[str, Any]] | None = None
    size = _BOUNDARY_SAMPLES
    for combo in itertools.product(*(v.choices for v in categorical.values())):
        chosen = dict(zip(categorical, combo, strict=True))
        base = {}
        top = {}
        for name, var in continuous.items():
            lo, hi = var.low.value, var.high.value
            u = rng.random(size)
            base[name] = lo * (hi / lo) ** u if var.log and lo > 0 else lo + (hi - lo) * u
            top[name] = hi  # concentrations grow with every amount variable
        cols = {n: np.full(size, str(c), dtype=object) for n, c in chosen.items()}

        def at(t: Any, base: dict[str, Any] = base, top: dict[str, Any] = top) -> dict[str, Any]:
            return {n: base[n] + t * (top[n] - base[n]) for n in continuous}

        ok = constraints.feasible({**cols, **at(np.zeros(size))}, size)
        if not ok.any():
            continue
        low_t, high_t = np.zeros(size), np.ones(size)
        full = constraints.feasible({**cols, **at(high_t)}, size)
        low_t[full] = 1.0
        for _ in range(40):
            mid = (low_t + high_t) / 2
            good = constraints.feasible({**cols, **at(mid)}, size)
            low_t = np.where(good, mid, low_t)
            high_t = np.where(good, high_t, mid)
        points = at(low_t)
        for i in np.flatnonzero(ok):
            point = {**chosen, **{n: float(points[n][i]) for n in continuous}}
            value = mixture_concentrations(p, point)[stock]
            if best is None or value > best[0]:
                best = (value, point)
    return None if best is None else best[1]


def _check_reagents(p: Protocol, platform: Platform, src: Source) -> list[Issue]:
    issues = []
    for name, (needed, available) in reagent_needs(p, platform).items():
        if needed > available * (1 + 1e-9):
            path = ("stocks", name, "available") if name in p.stocks else ("solvent", "available")
            given = p.stocks[name].available if name in p.stocks else p.solvent.available
            issues.append(
                src.issue(
                    path,
                    f"{given.text!r} is not enough: the budget of "
                    f"{p.optimizer.budget} experiments may need up to "
                    f"{format_quantity(needed, 'volume')} "
                    "(worst corner, priming included)",
                )
            )
    return issues
