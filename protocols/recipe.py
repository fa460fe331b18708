"""Recipes: from optimiser conditions (canonical units) to device setpoints.

Pure functions, no devices: the engine calls :func:`expand` for each experiment, and the
validator calls it at every corner of the variable box to prove, before the first pump
moves, that each point the optimiser may ask for can be run on the platform.

Amounts follow RoboChem: the limiting reagent A is given as its concentration [A] in the
mixture, every other stock i as equivalents e_i of A, so its concentration is [A]·e_i.

* steady state: total flow Q = V_reactor / tau; stock i flows at q_i = Q·c_i / c_stock,i;
  the solvent pump makes up Q − Σq_i (negative -> infeasible);
* slug: V_i = c_i·V_slug / c_stock,i and solvent V_slug − ΣV_i (negative -> infeasible);
  the slug is assembled at the assembly flow in the same ratios, then the solvent pushes it
  through the reactor at Q, so its residence time is V_reactor / Q.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import Categorical, Protocol, SlugMode
from .platform import Platform
from .units import format_quantity

__all__ = [
    "Recipe",
    "corners",
    "expand",
    "flow_for_residence_time",
    "format_conditions",
    "mixture_concentrations",
    "slug_volumes",
    "stock_choices",
    "stock_flows",
    "throughput_mmol_h",
]

#: below this a computed flow or volume is a rounding residue, not a request to pump
_EPS = 1e-12


def flow_for_residence_time(reactor_volume_ml: float, residence_time_s: float) -> float:
    """Total flow (mL/min) that gives ``residence_time_s`` in a reactor of that volume."""
    return 60.0 * reactor_volume_ml / residence_time_s


def throughput_mmol_h(
    concentration_m: float, reactor_volume_ml: float, residence_time_s: float, yield_percent: float
) -> float:
    """Product made per hour at steady state: [A]0 · Q · yield (RoboChem's definition)."""
    return concentration_m * reactor_volume_ml * (yield_percent / 100.0) / residence_time_s * 3600


def stock_flows(
    total_flow_ml_min: float,
    concentrations: Mapping[str, float],
    stock_concentrations: Mapping[str, float],
) -> tuple[dict[str, float], float]:
    """Per-stock flows and the solvent make-up flow (may be negative: infeasible)."""
    flows = {
        name: total_flow_ml_min * c / stock_concentrations[name]
        for name, c in concentrations.items()
    }
    return flows, total_flow_ml_min - sum(flows.values())


def slug_volumes(
    slug_volume_ml: float,
    concentrations: Mapping[str, float],
    stock_concentrations: Mapping[str, float],
) -> tuple[dict[str, float], float]:
    """Per-stock volumes in a slug and the solvent that fills it (negative: infeasible)."""
    return stock_flows(slug_volume_ml, concentrations, stock_concentrations)


def stock_choices(protocol: Protocol) -> dict[str, list[str]]:
    """Categorical variables choosing among stocks (all their choices are stock names)."""
    return {
        name: [str(c) for c in var.choices]
        for name, var in protocol.variables.items()
        if isinstance(var, Categorical) and all(str(c) in protocol.stocks for c in var.choices)
    }


def mixture_concentrations(protocol: Protocol, conditions: Mapping[str, Any]) -> dict[str, float]:
    """mol/L of each stock's reagent in the mixture; stocks not chosen get 0."""
    limiting = protocol.limiting_stock()
    a = _limiting_concentration(protocol, conditions)
    active = {name: True for name in protocol.stocks}
    for var_name, choices in stock_choices(protocol).items():
        for stock in choices:
            active[stock] = active[stock] and str(conditions[var_name]) == stock
    equivalents = {
        name: stock.equivalents.value
        for name, stock in protocol.stocks.items()
        if stock.equivalents is not None
    }
    for var_name, var in protocol.variables_of_type("equivalents", "loading").items():
        # ``stock`` names a stock, or a categorical variable choosing the stock
        stock = var.stock if var.stock in protocol.stocks else str(conditions[var.stock])
        equivalents[stock] = float(conditions[var_name])
    out: dict[str, float] = {}
    for name in protocol.stocks:
        if name == limiting:
            out[name] = a
        else:
            out[name] = a * equivalents.get(name, 0.0) if active[name] else 0.0
    return out


def _limiting_concentration(protocol: Protocol, conditions: Mapping[str, Any]) -> float:
    for name in protocol.variables_of_type("concentration"):
        return float(conditions[name])
    target = protocol.stocks[protocol.limiting_stock()].target_concentration
    assert target is not None  # guaranteed by checks.check_protocol
    return target.value


def _condition(protocol: Protocol, conditions: Mapping[str, Any], kind: str) -> float | None:
    for name, var in protocol.variables.items():
        if var.type == kind:
            return float(conditions[name])
    fixed = getattr(protocol.fixed, kind)
    return None if fixed is None else fixed.value


@dataclass(frozen=True)
class Recipe:
    """Setpoints for one experiment. Volumes mL, flows mL/min, times s."""

    conditions: dict[str, Any]
    residence_time_s: float
    total_flow_ml_min: float
    light_percent: float | None
    temperature_c: float | None
    concentrations: dict[str, float]  # stock -> mol/L of its reagent in the mixture
    stock_flows_ml_min: dict[str, float]  # while the mixture is made (steady state or slug)
    solvent_flow_ml_min: float  # make-up solvent in the same phase (negative: infeasible)
    carrier_flow_ml_min: float | None  # slug mode: solvent pushing the slug at Q
    pump_flows_ml_min: dict[str, float]  # pump -> flow while the mixture is made
    wait_s: float  # from setting the pumps to the measurement
    slug_volumes_ml: dict[str, float] | None
    slug_solvent_ml: float | None
    stock_use_ml: dict[str, float]  # per experiment, solvent under its own pump's stock key
    solvent_use_ml: float
    problems: list[str] = field(default_factory=list)
    push_volume_ml: float | None = None  # slug mode: solvent pushing the slug to the NMR cell

    @property
    def feasible(self) -> bool:
        return not self.problems


def expand(
    protocol: Protocol, platform: Platform, conditions: Mapping[str, Any], *, check: bool = True
) -> Recipe:
    """Setpoints for ``conditions`` (variable -> canonical value).

    With ``check`` the recipe lists every pump rate outside its limits and a negative
    solvent volume in ``problems`` (it never clamps); the engine refuses such a recipe.
    """
    fl = platform.fluidics
    v_reactor = fl.reactor.volume.value
    tau = _condition(protocol, conditions, "residence_time")
    assert tau is not None
    q_total = flow_for_residence_time(v_reactor, tau)
    conc = mixture_concentrations(protocol, conditions)
    stock_conc = {n: s.concentration.value for n, s in protocol.stocks.items()}
    problems: list[str] = []
    path_to_cell = fl.mixer_volume.value + fl.nmr.transfer_volume.value + fl.nmr.cell_volume.value

    mode = protocol.execution
    if isinstance(mode, SlugMode):
        v_slug = mode.volume.value
        vols, v_solvent = slug_volumes(v_slug, conc, stock_conc)
        q_asm = mode.assembly_flow.value if mode.assembly_flow is not None else q_total
        flows = {n: q_asm * v / v_slug for n, v in vols.items()}
        solvent_flow = q_asm * v_solvent / v_slug
        carrier: float | None = q_total
        # Assembled, the slug fills the line from the mixer inlet; the solvent then moves its
        # centre to the centre of the NMR cell (stopped flow there).
        cell = fl.nmr.cell_volume.value
        push = max(path_to_cell - cell / 2 + v_reactor - v_slug / 2, 0.0)
        wait = 60.0 * v_slug / q_asm + 60.0 * push / q_total
        use = dict(vols)
        solvent_use = max(v_solvent, 0.0) + push
        if v_solvent < -_EPS:
            problems.append(
                f"the stocks need {sum(vols.values()):.4g} mL of the {v_slug:.4g} mL slug "
                f"(solvent would be {v_solvent:.4g} mL)"
            )
        slug_v: dict[str, float] | None = vols
        slug_s: float | None = v_solvent
    else:
        flows, solvent_flow = stock_flows(q_total, conc, stock_conc)
        carrier = None
        flushed = mode.reactor_volumes * v_reactor + path_to_cell
        wait = 60.0 * flushed / q_total
        use = {n: q * wait / 60.0 for n, q in flows.items()}
        solvent_use = max(solvent_flow, 0.0) * wait / 60.0
        if solvent_flow < -_EPS:
            problems.append(
                f"the stocks need {sum(flows.values()):.4g} mL/min of the {q_total:.4g} mL/min "
                f"total flow (solvent would be {solvent_flow:.4g} mL/min)"
            )
        slug_v = slug_s = None
        push = None
    solvent_use += protocol.cleaning.volume.value

    pump_flows: dict[str, float] = {}
    for name, q in flows.items():
        pump = protocol.stocks[name].pump
        pump_flows[pump] = pump_flows.get(pump, 0.0) + q
    solvent_pump = protocol.solvent.pump
    pump_flows[solvent_pump] = pump_flows.get(solvent_pump, 0.0) + max(solvent_flow, 0.0)

    if check:
        rates = [(pump, q, "") for pump, q in pump_flows.items()]
        if carrier is not None:
            rates.append((solvent_pump, carrier, " pushing the slug"))
        problems += _rate_problems(protocol, platform, rates, flows)

    return Recipe(
        conditions=dict(conditions),
        residence_time_s=tau,
        total_flow_ml_min=q_total,
        light_percent=_condition(protocol, conditions, "light"),
        temperature_c=_condition(protocol, conditions, "temperature"),
        concentrations=conc,
        stock_flows_ml_min=flows,
        solvent_flow_ml_min=solvent_flow,
        carrier_flow_ml_min=carrier,
        pump_flows_ml_min=pump_flows,
        wait_s=wait,
        slug_volumes_ml=slug_v,
        slug_solvent_ml=slug_s,
        stock_use_ml=use,
        solvent_use_ml=solvent_use,
        problems=problems,
        push_volume_ml=push,
    )


def _rate_problems(
    protocol: Protocol,
    platform: Platform,
    rates: list[tuple[str, float, str]],
    flows: Mapping[str, float],
) -> list[str]:
    """Every pump rate (pump, mL/min, what it does) outside the pump's limits."""
    problems = []
    for pump, q, what in rates:
        limits = platform.devices[pump].limits.flow if pump in platform.devices else None
        if limits is None or q <= _EPS:  # a pump at 0 is off, which is always possible
            continue
        low, high = limits[0].value, limits[1].value
        carried = _carried_by(protocol, pump, flows)
        if q < low * (1 - 1e-9):
            problems.append(
                f"{pump}{carried}{what} would run at {q:.4g} mL/min, below its minimum "
                f"{low:.4g} mL/min"
            )
        elif q > high * (1 + 1e-9):
            problems.append(
                f"{pump}{carried}{what} would run at {q:.4g} mL/min, above its maximum "
                f"{high:.4g} mL/min"
            )
    return problems


def _carried_by(protocol: Protocol, pump: str, flows: Mapping[str, float]) -> str:
    names = [n for n, q in flows.items() if protocol.stocks[n].pump == pump and q > _EPS]
    if pump == protocol.solvent.pump:
        names.append(f"solvent {protocol.solvent.name}")
    return f" ({', '.join(names)})" if names else ""


def corners(protocol: Protocol) -> list[dict[str, Any]]:
    """Every corner of the variable box: 2^d bound combinations x each categorical choice.

    Flows, slug volumes and reagent use are monotonic in each variable on its own, so their
    extremes over the box sit at these corners.
    """
    axes: list[list[Any]] = []
    names: list[str] = []
    for name, var in protocol.variables.items():
        names.append(name)
        if isinstance(var, Categorical):
            axes.append(list(var.choices))
        else:
            axes.append([var.low.value, var.high.value])
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]


def format_conditions(protocol: Protocol, conditions: Mapping[str, Any]) -> str:
    """``residence_time=20 min, conc_a=0.2 M``: bounds as the file wrote them."""
    parts = []
    for name, value in conditions.items():
        var = protocol.variables.get(name)
        if var is None or isinstance(var, Categorical):
            parts.append(f"{name}={value}")
            continue
        if math.isclose(value, var.low.value):
            text = var.low.text
        elif math.isclose(value, var.high.value):
            text = var.high.text
        else:
            text = format_quantity(value, var.low.kind)
        parts.append(f"{name}={text}")
    return "{" + ", ".join(parts) + "}"
