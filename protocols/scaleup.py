"""Scale-up in the protocol language: the plan, its steps, the report, the protocol text.

A scale-up protocol is the campaign's protocol plus a ``scale_up`` section (written by
``robochem scale-up CAMPAIGN_ID --amount "5 mmol"``): the conditions, the amount to make,
the run time computed from the measured throughput, the steady-state rule, NMR checks every
few minutes and the drift policy. This module plans it (flows, syringe capacities, start-up
and shut-down steps) and writes it; :mod:`robochem.protocols.runtime.scaleup` runs it.
See docs/scale-up.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robochem.drivers.options import REQUIRED_OPTIONS

from .model import Categorical, Protocol, SteadyStateMode
from .platform import Platform
from .recipe import Recipe, expand
from .steps import (
    InfeasibleConditions,
    LightOff,
    SetFlow,
    SetLight,
    SetTemperature,
    SetValve,
    StartPump,
    Step,
    StopPump,
    Wait,
    WaitTemperature,
)
from .units import KINDS, parse_quantity

__all__ = [
    "SYRINGE_DRIVERS",
    "Chosen",
    "ScaleUpPlan",
    "plan_scale_up",
    "scale_up_conditions",
    "scale_up_protocol_text",
    "scale_up_report",
]

#: variable type -> unit kind of its values
VARIABLE_KINDS = {
    "residence_time": "time",
    "light": "percent",
    "temperature": "temperature",
    "concentration": "concentration",
    "equivalents": "ratio",
    "loading": "ratio",
}

#: syringe pump drivers -> syringe volume (mL) when the platform's device options do not
#: give ``syringe_volume_ml``: only on a simulated platform (a real one must give it, as
#: the drivers declare), where it is the simulator's syringe
SYRINGE_DRIVERS: dict[str, float] = {
    driver: option.simulated
    for driver, options in REQUIRED_OPTIONS.items()
    for option in options
    if option.name == "syringe_volume_ml" and option.simulated is not None
}
#: a syringe is refilled before this fraction of it is used (never pumped dry)
SYRINGE_MARGIN = 0.95


def scale_up_conditions(protocol: Protocol) -> dict[str, Any]:
    """The scale-up conditions in canonical units (raises UnitError/KeyError when invalid;
    the checks report those with positions first)."""
    assert protocol.scale_up is not None
    out: dict[str, Any] = {}
    for name, var in protocol.variables.items():
        raw = protocol.scale_up.conditions[name]
        if isinstance(var, Categorical):
            out[name] = next(c for c in var.choices if str(c) == str(raw))
        else:
            out[name] = parse_quantity(raw, VARIABLE_KINDS[var.type])
    return out


def continuous(protocol: Protocol) -> Protocol:
    """The protocol in steady-state mode (a slug campaign's conditions run continuously)."""
    mode = SteadyStateMode(mode="steady-state", reactor_volumes=1.0)
    return protocol.model_copy(update={"execution": mode})


def syringe_capacities(protocol: Protocol, platform: Platform) -> dict[str, float]:
    """Syringe pump -> syringe volume (mL), for the pumps this protocol uses."""
    used = {s.pump for s in protocol.stocks.values()} | {protocol.solvent.pump}
    out = {}
    for pump in used:
        spec = platform.devices.get(pump)
        if spec is None or spec.driver not in SYRINGE_DRIVERS:
            continue
        given = spec.options.get("syringe_volume_ml")
        out[pump] = float(given) if isinstance(given, int | float) else SYRINGE_DRIVERS[spec.driver]
    return out


@dataclass(frozen=True)
class ScaleUpPlan:
    """Everything the engine and the validator need, in canonical units (s, mL, mL/min)."""

    conditions: dict[str, Any]
    recipe: Recipe
    flow_ml_min: float  # total flow through the reactor
    limiting_m: float  # [A] in the mixture, mol/L
    reactor_ml: float
    holdup_ml: float  # mixer + reactor + transfer + NMR cell + outlet
    cell_to_valve_s: float  # NMR cell -> collection valve at the flow
    target_mmol: float
    run_time_s: float
    max_run_time_s: float
    check_every_s: float
    min_wait_s: float
    startup_max_s: float
    agree: int
    agree_tolerance: float
    drift_tolerance: float
    on_drift: str
    flush_ml: float
    flush_flow_ml_min: float
    #: stock (and the solvent by name) -> mL/min while running
    use_ml_min: dict[str, float] = field(default_factory=dict)
    #: syringe pump -> (mL/min it delivers, syringe mL)
    syringes: dict[str, tuple[float, float]] = field(default_factory=dict)

    def rate_mmol_h(self, yield_percent: float) -> float:
        """Product reaching the flask per hour at this yield: [A]0 * Q * yield."""
        return self.limiting_m * self.flow_ml_min * 60.0 * yield_percent / 100.0

    def segment_collect_limit_s(self) -> float:
        """Longest collection one syringe fill allows after the longest start-up (inf: none)."""
        limit = math.inf
        for q, capacity in self.syringes.values():
            usable_min = SYRINGE_MARGIN * capacity / q
            limit = min(limit, usable_min * 60.0 - self.startup_max_s)
        return limit

    def segments_needed(self) -> int:
        limit = self.segment_collect_limit_s()
        if math.isinf(limit):
            return 1
        if limit <= 0:
            return 0  # a syringe cannot even reach steady state
        return max(1, math.ceil(self.max_run_time_s / limit))

    def needs_ml(self, dead_volumes: Mapping[str, float]) -> dict[str, float]:
        """Worst case per stock (solvent by name): every segment's longest start-up, the
        maximum run time, flushes, and priming (``dead_volumes`` by stock)."""
        segments = max(1, self.segments_needed())
        minutes = (segments * self.startup_max_s + self.max_run_time_s) / 60.0
        out = {}
        for name, q in self.use_ml_min.items():
            out[name] = q * minutes + dead_volumes.get(name, 0.0)
        return out


def plan_scale_up(protocol: Protocol, platform: Platform) -> ScaleUpPlan:
    """The plan of a scale-up protocol; raises InfeasibleConditions (never clamps)."""
    su = protocol.scale_up
    if su is None:
        raise ValueError("the protocol has no scale_up section")
    conditions = scale_up_conditions(protocol)
    recipe = expand(continuous(protocol), platform, conditions)
    if not recipe.feasible:
        raise InfeasibleConditions(conditions, recipe.problems)
    fl = platform.fluidics
    q = recipe.total_flow_ml_min
    holdup = (
        fl.mixer_volume.value
        + fl.reactor.volume.value
        + fl.nmr.transfer_volume.value
        + fl.nmr.cell_volume.value
        + fl.outlet_volume.value
    )
    use = dict(recipe.stock_flows_ml_min)
    use[protocol.solvent.name] = max(recipe.solvent_flow_ml_min, 0.0)
    syringes: dict[str, tuple[float, float]] = {}
    for pump, capacity in syringe_capacities(protocol, platform).items():
        rate = recipe.pump_flows_ml_min.get(pump, 0.0)
        if rate > 1e-12:
            syringes[pump] = (rate, capacity)
    return ScaleUpPlan(
        conditions=conditions,
        recipe=recipe,
        flow_ml_min=q,
        limiting_m=recipe.concentrations[protocol.limiting_stock()],
        reactor_ml=fl.reactor.volume.value,
        holdup_ml=holdup,
        cell_to_valve_s=60.0 * fl.outlet_volume.value / q,
        target_mmol=su.amount.value,
        run_time_s=su.run_time.value,
        max_run_time_s=su.max_run_time.value,
        check_every_s=su.monitoring.check_every.value,
        min_wait_s=su.steady_state.min_wait.value,
        startup_max_s=su.steady_state.max_time.value,
        agree=su.steady_state.agree,
        agree_tolerance=su.steady_state.tolerance.value,
        drift_tolerance=su.monitoring.drift_tolerance.value,
        on_drift=su.monitoring.on_drift,
        flush_ml=su.flush.value,
        flush_flow_ml_min=protocol.cleaning.flow.value,
        use_ml_min=use,
        syringes=syringes,
    )


def start_steps(protocol: Protocol, platform: Platform, plan: ScaleUpPlan) -> list[Step]:
    """Valve to waste, selectors, temperature, flows, light: the start-up of a segment."""
    fl = platform.fluidics
    recipe = plan.recipe
    steps: list[Step] = []
    if fl.collection is not None:
        steps.append(SetValve(fl.collection.valve, fl.collection.waste))
    for pump, line in fl.pumps.items():
        if line.selector is None:
            continue
        for name, stock in protocol.stocks.items():
            used = recipe.stock_flows_ml_min.get(name, 0.0) > 0.0
            if stock.pump == pump and stock.port is not None and used:
                steps.append(SetValve(line.selector, str(stock.port)))
                break
    if recipe.temperature_c is not None:
        steps += [SetTemperature(recipe.temperature_c), WaitTemperature(recipe.temperature_c)]
    for pump in fl.pumps:
        rate = recipe.pump_flows_ml_min.get(pump, 0.0)
        steps += [SetFlow(pump, rate), StartPump(pump)] if rate > 1e-12 else [StopPump(pump)]
    light = recipe.light_percent
    steps.append(SetLight(light) if light is not None and light > 0 else LightOff())
    return steps


def shutdown_steps(protocol: Protocol, platform: Platform, plan: ScaleUpPlan) -> list[Step]:
    """Valve to waste, light off, every pump stopped, then the solvent flush."""
    fl = platform.fluidics
    steps: list[Step] = []
    if fl.collection is not None:
        steps.append(SetValve(fl.collection.valve, fl.collection.waste))
    steps.append(LightOff())
    steps += [StopPump(p) for p in fl.pumps]
    if plan.flush_ml > 0:
        solvent = protocol.solvent.pump
        steps += [
            SetFlow(solvent, plan.flush_flow_ml_min),
            StartPump(solvent),
            Wait(60.0 * plan.flush_ml / plan.flush_flow_ml_min, "flush"),
            StopPump(solvent),
        ]
    return steps


def scale_up_report(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The stored report with the derived figures (productivity, space-time yield)."""
    report = dict(summary.get("scale_up") or {})
    hours = report.get("collection_s", 0.0) / 3600.0
    product = report.get("product_mmol", 0.0)
    report["productivity_mmol_h"] = product / hours if hours > 0 else None
    reactor_l = report.get("reactor_ml", 0.0) / 1000.0
    productivity = report["productivity_mmol_h"]
    report["space_time_yield_mmol_l_h"] = (
        productivity / reactor_l if productivity is not None and reactor_l > 0 else None
    )
    volume = report.get("collected_ml", 0.0)
    c_a = report.get("limiting_m", 0.0)
    report["mean_yield_percent"] = (
        100.0 * product / (c_a * volume) if volume > 0 and c_a > 0 else None
    )
    return report


# -- writing a scale-up protocol from a campaign ------------------------------------------------


@dataclass(frozen=True)
class Chosen:
    """The experiment a scale-up starts from."""

    campaign_id: int
    campaign_name: str
    protocol_text: str
    experiment_index: int
    conditions: dict[str, Any]
    yield_percent: float
    throughput_mmol_h: float
    inventory: dict[str, float]


def _minutes(seconds: float) -> str:
    return f"{math.ceil(seconds / 60.0 - 1e-9):d} min"


def scale_up_protocol_text(
    chosen: Chosen,
    amount_mmol: float,
    platform: Platform,
    *,
    objective: str = "yield",
    check_every_s: float | None = None,
    on_drift: str = "pause",
) -> str:
    """The scale-up protocol (YAML text) for ``amount_mmol`` of product."""
    import yaml

    from .load import parse_protocol, yaml_data

    if not amount_mmol > 0:
        raise ValueError(f"the amount must be > 0 mmol, got {amount_mmol!r}")
    if chosen.throughput_mmol_h <= 0:
        raise ValueError(
            f"experiment {chosen.experiment_index} of campaign {chosen.campaign_id} made no "
            "product (throughput 0): nothing to scale up"
        )
    source = parse_protocol(chosen.protocol_text, f"campaign {chosen.campaign_id}")
    data = yaml_data(chosen.protocol_text, f"campaign {chosen.campaign_id}")
    conditions: dict[str, Any] = {}
    for name, var in source.variables.items():
        value = chosen.conditions[name]
        if isinstance(var, Categorical):
            conditions[name] = value
        else:
            kind = KINDS[VARIABLE_KINDS[var.type]]
            conditions[name] = f"{float(value):.6g} {kind.symbol}"
    recipe = expand(continuous(source), platform, chosen.conditions, check=False)
    q = recipe.total_flow_ml_min
    fl = platform.fluidics
    path_ml = fl.mixer_volume.value + fl.nmr.transfer_volume.value + fl.nmr.cell_volume.value
    min_wait_s = recipe.residence_time_s + 60.0 * path_ml / q
    check_s = check_every_s or max(300.0, 60.0 * math.ceil(recipe.residence_time_s / 60.0))
    run_time_s = 3600.0 * amount_mmol / chosen.throughput_mmol_h
    holdup = path_ml + fl.reactor.volume.value + fl.outlet_volume.value
    data.setdefault("metadata", {})
    data["metadata"]["name"] = f"{source.metadata.name}-scale-up"
    data["metadata"]["description"] = (
        f"Scale-up of campaign {chosen.campaign_id} ({chosen.campaign_name}): "
        f"{amount_mmol:g} mmol at the conditions of experiment {chosen.experiment_index}"
    )
    for name, stock in (data.get("stocks") or {}).items():
        left = chosen.inventory.get(name)
        if left is not None and isinstance(stock, dict):
            stock["available"] = f"{max(math.floor(left * 10) / 10, 0.1):g} mL"
    solvent = data.get("solvent") or {}
    left = chosen.inventory.get(source.solvent.name)
    if left is not None:
        solvent["available"] = f"{max(math.floor(left * 10) / 10, 0.1):g} mL"
    data["scale_up"] = {
        "source_campaign": chosen.campaign_id,
        "objective": objective,
        "conditions": conditions,
        "amount": f"{amount_mmol:g} mmol",
        "expected_yield": f"{chosen.yield_percent:.4g} %",
        "expected_throughput": f"{chosen.throughput_mmol_h:.4g} mmol/h",
        "run_time": f"{run_time_s / 60.0:.4g} min",
        "max_run_time": f"{1.5 * run_time_s / 60.0:.4g} min",
        "steady_state": {
            "agree": 3,
            "tolerance": "3 %",
            "min_wait": _minutes(min_wait_s),
            "max_time": _minutes(min_wait_s + 8 * check_s),
        },
        "monitoring": {
            "check_every": _minutes(check_s),
            "drift_tolerance": "5 %",
            "on_drift": on_drift,
        },
        "flush": f"{math.ceil(2 * holdup):g} mL",
    }
    header = (
        f"# Scale-up of campaign {chosen.campaign_id} ({chosen.campaign_name}), written by "
        "`robochem scale-up`.\n"
        f"# Conditions of experiment {chosen.experiment_index} (best {objective}): "
        f"yield {chosen.yield_percent:.1f} %, throughput {chosen.throughput_mmol_h:.3g} mmol/h;\n"
        f"# {amount_mmol:g} mmol need {run_time_s / 3600:.2f} h of collection at that "
        "throughput.\n"
        f"# stocks.*.available: what campaign {chosen.campaign_id} left; change it after a "
        "refill.\n"
        "#   robochem validate THIS_FILE --platform PLATFORM\n"
        "#   robochem run THIS_FILE --platform PLATFORM\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
