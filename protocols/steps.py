"""Experiments as plain-data steps, and a timing model for ``robochem run --dry-run``.

:func:`plan_experiment` turns one optimiser suggestion into the list of device steps the
engine executes; the flow rates, slug volumes, waits and reagent use come from the
protocol models' recipe (:func:`robochem.protocols.recipe.expand`), so the validator, the
dry run and the engine agree on every number. Steps are frozen dataclasses holding only
device names and canonical values (mL/min, s, degC, %): tests inspect them without
hardware, the engine logs them as events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .model import Protocol, SlugMode
from .platform import Platform
from .recipe import Recipe, expand

__all__ = [
    "Acquire",
    "Analyze",
    "ExperimentPlan",
    "InfeasibleConditions",
    "LightOff",
    "SetFlow",
    "SetLight",
    "SetTemperature",
    "SetValve",
    "StartPump",
    "Step",
    "StopPump",
    "Timing",
    "Wait",
    "WaitTemperature",
    "acquisition_for",
    "describe",
    "plan_experiment",
    "pump_group",
    "timing_model",
]


@dataclass(frozen=True)
class Step:
    """Base of every step."""

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.kind, **asdict(self)}


@dataclass(frozen=True)
class SetFlow(Step):
    pump: str
    ml_min: float


@dataclass(frozen=True)
class StartPump(Step):
    pump: str


@dataclass(frozen=True)
class StopPump(Step):
    pump: str


@dataclass(frozen=True)
class SetValve(Step):
    valve: str
    position: str


@dataclass(frozen=True)
class SetTemperature(Step):
    celsius: float


@dataclass(frozen=True)
class WaitTemperature(Step):
    celsius: float
    tolerance: float = 1.5
    timeout: float = 1800.0


@dataclass(frozen=True)
class SetLight(Step):
    percent: float


@dataclass(frozen=True)
class LightOff(Step):
    pass


@dataclass(frozen=True)
class Wait(Step):
    seconds: float
    reason: str = ""


@dataclass(frozen=True)
class Acquire(Step):
    protocol: str
    options: dict[str, Any] = field(default_factory=dict)
    #: expected duration (s) for the timing model; the driver asks the instrument itself
    estimate_s: float = 60.0


@dataclass(frozen=True)
class Analyze(Step):
    pass


@dataclass(frozen=True)
class ExperimentPlan:
    """The recipe of one experiment and the steps that run it."""

    recipe: Recipe
    steps: list[Step]
    #: total flow through the reactor while the sample forms (analysis throughput), mL/min
    flow_ml_min: float
    #: reagent use per stock and the solvent (under its name), mL
    use_ml: dict[str, float]


class InfeasibleConditions(ValueError):
    """The recipe for these conditions cannot run on this platform (listed problems)."""

    def __init__(self, conditions: Mapping[str, Any], problems: Sequence[str]) -> None:
        self.conditions = dict(conditions)
        self.problems = list(problems)
        super().__init__(f"conditions {self.conditions} cannot run: " + "; ".join(self.problems))


#: Acquisition per nucleus (Spinsolve protocol names and options). Integration note: the
#: protocol model has no acquisition section yet; these match the simulator's and
#: RoboChem's defaults (4 scans, 10 s repetition).
_ACQUISITIONS: dict[str, tuple[str, dict[str, Any], float]] = {
    "1H": ("1D EXTENDED+", {"Number": 4, "RepetitionTime": 10, "AcquisitionTime": 3.2}, 45.0),
    "19F": (
        "1D FLUORINE HDEC",
        {"Number": 4, "RepetitionTime": 10, "AcquisitionTime": 1.64},
        45.0,
    ),
}


def acquisition_for(protocol: Protocol) -> Acquire:
    nucleus = protocol.analysis.nucleus
    try:
        name, options, estimate = _ACQUISITIONS[nucleus]
    except KeyError:
        raise ValueError(
            f"no acquisition known for nucleus {nucleus!r}; known: {', '.join(_ACQUISITIONS)}"
        ) from None
    return Acquire(name, dict(options), estimate)


def _selector_steps(protocol: Protocol, platform: Platform, recipe: Recipe) -> list[Step]:
    """Point each selector valve at the stock its pump carries in this experiment."""
    steps: list[Step] = []
    for pump, line in platform.fluidics.pumps.items():
        if line.selector is None:
            continue
        for name, stock in protocol.stocks.items():
            used = recipe.stock_flows_ml_min.get(name, 0.0) > 0.0
            if stock.pump == pump and stock.port is not None and used:
                steps.append(SetValve(line.selector, str(stock.port)))
                break
    return steps


def _set_pumps(flows: Mapping[str, float], pumps: Sequence[str]) -> list[Step]:
    """Every rate first, then the starts and stops: the engine sends a run of pump steps at
    once (:func:`pump_group`), so the stocks begin and end flowing at the same moment and a
    slug holds them in the recipe's ratios."""
    running = [p for p in pumps if flows.get(p, 0.0) > 1e-12]
    steps: list[Step] = [SetFlow(p, flows[p]) for p in running]
    steps += [StartPump(p) if p in running else StopPump(p) for p in pumps]
    return steps


def _rates_light_starts(pump_steps: list[Step], light_steps: list[Step]) -> list[Step]:
    """Idle pumps' rates, then the light, then the starts. The light breaks the run of pump
    steps, so the rates (each a set and a read-back) go out first and the timed group holds
    only the starts: every bit of the mix sees the light from the coil's inlet on, and the
    stocks begin flowing closer together (at x300 a start group with the rates in it spread
    a slug's stocks over 20 of its 39 s of assembly)."""
    rates = [s for s in pump_steps if isinstance(s, SetFlow)]
    return rates + light_steps + [s for s in pump_steps if not isinstance(s, SetFlow)]


PUMP_STEPS = (SetFlow, StartPump, StopPump)


def pump_group(steps: Sequence[Step], start: int) -> int:
    """End (exclusive) of the run of pump steps (rate, start, stop) beginning at ``start``.
    The engine sends such a run at once, each pump's own steps in order: a command takes a
    few ms, tens of simulated seconds at x1000, which one after another skewed a slug's
    stocks apart and moved it past the NMR cell."""
    end = start
    while end < len(steps) and isinstance(steps[end], PUMP_STEPS):
        end += 1
    return end


def plan_experiment(
    protocol: Protocol, platform: Platform, conditions: Mapping[str, Any]
) -> ExperimentPlan:
    """The steps of one experiment; raises :class:`InfeasibleConditions` (never clamps)."""
    recipe = expand(protocol, platform, conditions)
    if not recipe.feasible:
        raise InfeasibleConditions(conditions, recipe.problems)
    fl = platform.fluidics
    pumps = list(fl.pumps)
    steps: list[Step] = []
    if fl.collection is not None:
        steps.append(SetValve(fl.collection.valve, fl.collection.waste))
    steps += _selector_steps(protocol, platform, recipe)
    if recipe.temperature_c is not None:
        steps += [SetTemperature(recipe.temperature_c), WaitTemperature(recipe.temperature_c)]
    mode = protocol.execution
    light = recipe.light_percent
    light_steps: list[Step] = [SetLight(light)] if light is not None and light > 0 else [LightOff()]
    if isinstance(mode, SlugMode):
        assert recipe.slug_volumes_ml is not None and recipe.carrier_flow_ml_min is not None
        q_asm = sum(recipe.pump_flows_ml_min.values())
        assemble_s = 60.0 * mode.volume.value / q_asm
        push_s = recipe.wait_s - assemble_s
        steps += _rates_light_starts(_set_pumps(recipe.pump_flows_ml_min, pumps), light_steps)
        steps.append(Wait(assemble_s, f"assemble the {mode.volume.text} slug"))
        carrier = {protocol.solvent.pump: recipe.carrier_flow_ml_min}
        steps += _set_pumps(carrier, pumps)
        steps.append(Wait(push_s, "push the slug through the reactor into the NMR cell"))
        flow = recipe.carrier_flow_ml_min
    else:
        steps += _rates_light_starts(_set_pumps(recipe.pump_flows_ml_min, pumps), light_steps)
        volumes = mode.reactor_volumes
        steps.append(Wait(recipe.wait_s, f"{volumes:g} reactor volumes to steady state"))
        flow = recipe.total_flow_ml_min
    # Stopped flow and light off while the spectrum is taken: the sample must not change.
    steps += [StopPump(p) for p in pumps] + [LightOff()]
    steps.append(acquisition_for(protocol))
    steps.append(Analyze())
    cleaning = protocol.cleaning
    if cleaning.volume.value > 0:
        steps += [
            SetFlow(protocol.solvent.pump, cleaning.flow.value),
            StartPump(protocol.solvent.pump),
            Wait(60.0 * cleaning.volume.value / cleaning.flow.value, "cleaning flush"),
            StopPump(protocol.solvent.pump),
        ]
    use = dict(recipe.stock_use_ml)
    use[protocol.solvent.name] = use.get(protocol.solvent.name, 0.0) + recipe.solvent_use_ml
    return ExperimentPlan(recipe=recipe, steps=steps, flow_ml_min=flow, use_ml=use)


def describe(step: Step) -> str:
    """One line for logs, events and the progress bar."""
    match step:
        case SetFlow(pump=p, ml_min=q):
            return f"{p}: flow {q:.4g} mL/min"
        case StartPump(pump=p):
            return f"{p}: start"
        case StopPump(pump=p):
            return f"{p}: stop"
        case SetValve(valve=v, position=pos):
            return f"{v}: position {pos}"
        case SetTemperature(celsius=c):
            return f"reactor: setpoint {c:.4g} degC"
        case WaitTemperature(celsius=c, tolerance=t):
            return f"wait for {c:.4g} +/- {t:g} degC"
        case SetLight(percent=x):
            return f"light {x:.4g} %"
        case LightOff():
            return "light off"
        case Wait(seconds=s, reason=r):
            return f"wait {s:.0f} s ({r})" if r else f"wait {s:.0f} s"
        case Acquire(protocol=name):
            return f"NMR: {name}"
        case Analyze():
            return "analyse the spectrum"
    return step.kind


@dataclass(frozen=True)
class Timing:
    """What ``--dry-run`` prints: duration and reagent use, per experiment and in total."""

    duration_s: float
    use_ml: dict[str, float]


#: Seconds a device command takes in the timing model (serial round trip + settling).
COMMAND_S = 0.2
#: Assumed heating/cooling rate of the reactor (degC per s) when waiting for a setpoint.
TEMPERATURE_RATE_C_S = 0.1


def timing_model(
    steps: Sequence[Step],
    *,
    use_ml: Mapping[str, float] | None = None,
    start_temperature_c: float = 25.0,
    analysis_s: float = 2.0,
) -> Timing:
    """Duration of ``steps`` without devices; ``use_ml`` is passed through for totals."""
    t = 0.0
    temperature = start_temperature_c
    for step in steps:
        match step:
            case Wait(seconds=s):
                t += s
            case WaitTemperature(celsius=c, timeout=timeout):
                t += min(timeout, abs(c - temperature) / TEMPERATURE_RATE_C_S)
                temperature = c
            case Acquire(estimate_s=s):
                t += s
            case Analyze():
                t += analysis_s
            case _:
                t += COMMAND_S
    return Timing(duration_s=t, use_ml=dict(use_ml or {}))
