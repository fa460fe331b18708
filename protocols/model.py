"""The protocol file as pydantic models (structure, types, units).

Checks that need more than one field (a variable naming a stock, low < high, objectives on
known measures) live in :mod:`robochem.protocols.checks`, so that each error can point at
the exact field; checks against a platform live there too. See docs/protocols.md.
"""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from robochem.analysis.config import AnalysisConfig

from .measures import MEASURES, Goal, GoalSpelling, canonical_goal
from .units import UnitError, parse_quantity, quantity_type

__all__ = [
    "PROTOCOL_VERSION",
    "Categorical",
    "Cleaning",
    "Continuous",
    "Execution",
    "Fixed",
    "Metadata",
    "Objective",
    "OptimizerSettings",
    "Protocol",
    "Safety",
    "ScaleUp",
    "SlugMode",
    "Solvent",
    "SteadyStateMode",
    "Stock",
    "Variable",
    "objective_items",
]

PROTOCOL_VERSION = 1

Time = quantity_type("time", minimum=0.0, exclusive=True)
Volume = quantity_type("volume", minimum=0.0, exclusive=True)
VolumeOrZero = quantity_type("volume", minimum=0.0)
Flow = quantity_type("flow", minimum=0.0, exclusive=True)
Concentration = quantity_type("concentration", minimum=0.0, exclusive=True)
Ratio = quantity_type("ratio", minimum=0.0)
Temperature = quantity_type("temperature")
Percent = quantity_type("percent", minimum=0.0)
Pressure = quantity_type("pressure", minimum=0.0, exclusive=True)
Wavelength = quantity_type("wavelength", minimum=0.0, exclusive=True)
Amount = quantity_type("amount", minimum=0.0, exclusive=True)
Throughput = quantity_type("throughput", minimum=0.0, exclusive=True)

Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    author: str = ""
    version: str | int | float = Field(default="1", description="the protocol's own revision")
    created: _dt.date | str | None = None
    tags: list[str] = Field(default_factory=list)


class InternalStandardStock(_Strict):
    name: str
    concentration: Concentration


class Stock(_Strict):
    """A stock solution, pumped by one pump of the platform."""

    reagent: str | None = Field(default=None, description="what is dissolved (default: the key)")
    smiles: str | None = Field(
        default=None,
        description="structure of the reagent (salts and mixtures: dot-separated); a "
        "categorical variable choosing among stocks that all have one is searched by structure",
    )
    concentration: Concentration
    pump: str = Field(description="pump of the platform (fluidics.pumps) carrying this stock")
    port: str | None = Field(
        default=None, description="position of the pump's selector valve that draws this stock"
    )
    available: Volume = Field(description="volume of stock on hand for the campaign")
    role: Literal["limiting", "reagent", "catalyst", "additive"] = "reagent"
    target_concentration: Concentration | None = Field(
        default=None,
        description="limiting stock only: its concentration in the reaction mixture (fixed)",
    )
    equivalents: Ratio | None = Field(
        default=None,
        description="other stocks: amount per limiting reagent, e.g. '18 equiv' or '3 mol%'",
    )
    internal_standard: InternalStandardStock | None = None


class Solvent(_Strict):
    """Make-up solvent (steady state), slug carrier and cleaning solvent."""

    name: str
    pump: str
    available: Volume


class _VariableBase(_Strict):
    description: str = ""


class _Bounded(_VariableBase):
    log: bool = Field(default=False, description="search on a log scale")


class ResidenceTimeVariable(_Bounded):
    type: Literal["residence_time"]
    low: Time
    high: Time


class LightVariable(_Bounded):
    type: Literal["light"]
    low: Percent
    high: Percent


class TemperatureVariable(_Bounded):
    type: Literal["temperature"]
    low: Temperature
    high: Temperature


class ConcentrationVariable(_Bounded):
    """Concentration of the limiting reagent in the reaction mixture."""

    type: Literal["concentration"]
    stock: str
    low: Concentration
    high: Concentration


class EquivalentsVariable(_Bounded):
    """Amount of a stock's reagent per limiting reagent (``loading`` reads better in mol%)."""

    type: Literal["equivalents", "loading"]
    stock: str = Field(description="a stock, or a categorical variable choosing among stocks")
    low: Ratio
    high: Ratio


class Categorical(_VariableBase):
    """A choice: of stocks (when another variable's ``stock`` names it) or of labels."""

    type: Literal["categorical"]
    choices: list[str | int | float] = Field(min_length=1)
    smiles: dict[str, str] | None = Field(
        default=None,
        description="choice -> structure, for choices that are not stocks (a stock's "
        "structure is its own 'smiles'); with a structure for every choice the optimiser "
        "searches by chemical descriptors instead of names",
    )


Continuous = (
    ResidenceTimeVariable
    | LightVariable
    | TemperatureVariable
    | ConcentrationVariable
    | EquivalentsVariable
)
Variable = Annotated[Continuous | Categorical, Field(discriminator="type")]


class Fixed(_Strict):
    """Conditions that are not optimised."""

    residence_time: Time | None = None
    light: Percent | None = None
    temperature: Temperature | None = None
    wavelength: Wavelength | None = None


def _measure_value(value: Any, info: ValidationInfo) -> Any:
    measure = info.data.get("measure")
    if value is None or measure not in MEASURES:
        return None  # an unknown measure is reported on its own field
    try:
        return parse_quantity(value, MEASURES[measure].kind)
    except UnitError as exc:
        raise ValueError(str(exc)) from None


class Objective(_Strict):
    measure: str = Field(
        description="yield, conversion, selectivity or throughput (default: the key)"
    )
    goal: GoalSpelling = "maximize"
    priority: int | None = Field(default=None, ge=1, description="1 = optimised first")
    threshold: float | str | None = Field(
        default=None, description="worst acceptable value (the hypervolume reference point)"
    )
    tolerance: float | str | None = Field(
        default=None, description="priority strategy: how much may be given up for later ones"
    )
    relative_tolerance: float | None = Field(default=None, ge=0, le=1)
    weight: float = Field(default=1.0, ge=0)

    @field_validator("measure")
    @classmethod
    def _known_measure(cls, value: str) -> str:
        if value not in MEASURES:
            raise ValueError(f"{value!r} is not a measure; expected one of {', '.join(MEASURES)}")
        return value

    @field_validator("threshold", "tolerance")
    @classmethod
    def _in_measure_units(cls, value: Any, info: ValidationInfo) -> Any:
        return _measure_value(value, info)

    @property
    def canonical_goal(self) -> Goal:
        return canonical_goal(self.goal)


class Stopping(_Strict):
    patience: int | None = Field(default=None, ge=1)
    min_improvement: float | None = Field(default=None, ge=0)
    ei_threshold: float | None = Field(default=None, ge=0)
    target: dict[str, float | str] = Field(
        default_factory=dict, description="objective -> value: stop once reached"
    )


class WarmStart(_Strict):
    """Earlier campaigns whose results inform this one, as related tasks."""

    campaigns: list[int | str] = Field(
        min_length=1,
        description="campaign ids, or protocol names (every earlier campaign of that name)",
    )


class OptimizerSettings(_Strict):
    budget: int = Field(ge=1, description="experiments in the campaign, initial ones included")
    initial_experiments: int = Field(default=5, ge=0)
    batch_size: int = Field(default=1, ge=1, description="experiments asked for at once")
    seed: int = Field(default=0, ge=0)
    initial_design: Literal["auto", "lhs", "plain_lhs", "sobol", "random"] = "auto"
    strategy: Literal["auto", "single", "parego", "ehvi", "priority", "weighted"] = "auto"
    acquisition: Literal["ei", "pi", "lcb"] = "ei"
    stopping: Stopping = Field(default_factory=Stopping)
    warm_start: WarmStart | None = Field(
        default=None,
        description="earlier campaigns (e.g. of another substrate) the model learns from",
    )


class SteadyStateMode(_Strict):
    """Stocks pumped continuously at ratios; measure after ``reactor_volumes`` volumes."""

    mode: Literal["steady-state"]
    reactor_volumes: float = Field(
        default=3.0, ge=1.0, description="reactor volumes flushed at the new conditions"
    )


class SlugMode(_Strict):
    """A slug assembled from the stocks, pushed through the reactor by the solvent."""

    mode: Literal["slug"]
    volume: Volume = Field(description="slug volume, e.g. '650 uL'")
    assembly_flow: Flow | None = Field(
        default=None, description="total flow while the slug is assembled (default: reaction)"
    )
    gas_segment: Volume | None = Field(
        default=None, description="gas bubble before and after the slug (needs a gas inlet)"
    )


Execution = Annotated[SteadyStateMode | SlugMode, Field(discriminator="mode")]


class Cleaning(_Strict):
    volume: VolumeOrZero = Field(description="solvent flushed through after each experiment")
    flow: Flow


class Safety(_Strict):
    max_pressure: Pressure
    temperature: tuple[Temperature, Temperature] = Field(description="[min, max] allowed")


class SteadyStateRule(_Strict):
    """Start-up: the outlet goes to waste until ``agree`` consecutive NMR yields lie within
    ``tolerance`` of each other (max - min, in yield points)."""

    agree: int = Field(ge=2, description="consecutive NMR yields that must agree")
    tolerance: Percent = Field(description="max - min of those yields, e.g. '3 %'")
    min_wait: Time = Field(description="flow at the conditions before the first check")
    max_time: Time = Field(description="no steady state within this time: the run pauses")


class Monitoring(_Strict):
    """NMR checks while collecting; a yield that drifts from the steady-state yield by more
    than ``drift_tolerance`` pauses the run, or stops it (shut-down, flush), by policy."""

    check_every: Time
    drift_tolerance: Percent = Field(description="allowed |yield - steady-state yield|")
    on_drift: Literal["pause", "stop"] = "pause"


class ScaleUp(_Strict):
    """Continuous production at fixed conditions (``robochem scale-up`` writes this)."""

    source_campaign: int | None = Field(default=None, description="the optimisation campaign")
    objective: Literal["yield", "throughput"] = "yield"
    conditions: dict[str, float | int | str] = Field(
        description="variable -> value with its unit (every variable, within its bounds)"
    )
    amount: Amount = Field(description="product to collect, e.g. '5 mmol'")
    expected_yield: Percent = Field(description="measured at these conditions in the campaign")
    expected_throughput: Throughput = Field(description="measured, mmol/h")
    run_time: Time = Field(description="planned collection time: amount / expected throughput")
    max_run_time: Time = Field(description="never collect longer than this (stop criterion)")
    steady_state: SteadyStateRule
    monitoring: Monitoring
    flush: VolumeOrZero = Field(description="solvent flushed through after shut-down")


class Protocol(_Strict):
    """A protocol file."""

    robochem: Literal[1] = Field(description="protocol file format version")
    metadata: Metadata
    stocks: dict[Name, Stock] = Field(min_length=1)
    solvent: Solvent
    variables: dict[str, Variable] = Field(min_length=1)
    fixed: Fixed = Field(default_factory=Fixed)
    constraints: list[str] = Field(
        default_factory=list,
        description="expressions over variable names in canonical units, e.g. "
        "'residence_time * light <= 60000'",
    )
    objectives: dict[str, Objective] = Field(min_length=1)
    optimizer: OptimizerSettings
    analysis: AnalysisConfig
    execution: Execution
    cleaning: Cleaning
    safety: Safety
    scale_up: ScaleUp | None = Field(
        default=None, description="run the given conditions continuously to make product"
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_keys(cls, data: Any) -> Any:
        """An objective's measure defaults to its key; the analysis limiting-reagent
        concentration to the protocol's (the engine passes each experiment's own)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        objectives = data.get("objectives")
        if isinstance(objectives, dict):
            data["objectives"] = objective_items(objectives)
        analysis = data.get("analysis")
        nominal = _nominal_limiting_concentration(data)
        if isinstance(analysis, dict) and nominal is not None:
            lr = analysis.get("limiting_reagent", {})
            if isinstance(lr, dict) and "concentration" not in lr:
                lr = {**lr, "concentration": nominal}
                data["analysis"] = {**analysis, "limiting_reagent": lr}
        return data

    # -- derived views ---------------------------------------------------------------------
    def limiting_stock(self) -> str:
        return next(name for name, s in self.stocks.items() if s.role == "limiting")

    def variables_of_type(self, *types: str) -> dict[str, Any]:
        return {n: v for n, v in self.variables.items() if v.type in types}

    def choice_structures(self, name: str) -> dict[str, str] | None:
        """Choice -> SMILES of a categorical variable when every choice has a structure
        (from the stocks it chooses among, or its own ``smiles``), else None."""
        var = self.variables[name]
        assert isinstance(var, Categorical)
        if var.smiles is not None:
            given = {str(c): var.smiles.get(str(c)) for c in var.choices}
        else:
            given = {
                str(c): self.stocks[str(c)].smiles if str(c) in self.stocks else None
                for c in var.choices
            }
        if any(v is None for v in given.values()):
            return None
        return {k: str(v) for k, v in given.items()}

    def to_optimizer_spec(self) -> dict[str, Any]:
        """The spec of :meth:`robochem.optimizer.Optimizer.from_spec` (canonical units)."""
        variables: dict[str, Any] = {}
        for name, var in self.variables.items():
            if isinstance(var, Categorical):
                variables[name] = {"choices": list(var.choices)}
                smiles = self.choice_structures(name)
                if smiles is not None:
                    variables[name]["smiles"] = smiles
            else:
                spec: dict[str, Any] = {"low": var.low.value, "high": var.high.value}
                if var.log:
                    spec["log"] = True
                variables[name] = spec
        objectives: dict[str, Any] = {}
        for name, obj in self.objectives.items():
            item: dict[str, Any] = {"goal": obj.canonical_goal}
            if obj.priority is not None:
                item["priority"] = obj.priority
            if obj.tolerance is not None:
                item["tolerance"] = float(obj.tolerance)
            if obj.relative_tolerance is not None:
                item["relative_tolerance"] = obj.relative_tolerance
            if obj.threshold is not None:
                item["reference"] = float(obj.threshold)
            if obj.weight != 1.0:
                item["weight"] = obj.weight
            objectives[name] = item
        opt = self.optimizer
        stopping: dict[str, Any] = {"budget": opt.budget}
        for key in ("patience", "min_improvement", "ei_threshold"):
            value = getattr(opt.stopping, key)
            if value is not None:
                stopping[key] = value
        if opt.stopping.target:
            stopping["target"] = {
                k: parse_quantity(v, MEASURES[self.objectives[k].measure].kind)
                for k, v in opt.stopping.target.items()
            }
        return {
            "variables": variables,
            "objectives": objectives,
            "constraints": list(self.constraints),
            "initial_experiments": min(opt.initial_experiments, opt.budget),
            "initial_design": opt.initial_design,
            "seed": opt.seed,
            "strategy": opt.strategy,
            "acquisition": {"function": opt.acquisition},
            "stopping": stopping,
        }


def objective_items(objectives: dict[Any, Any]) -> dict[Any, Any]:
    """The objectives section with each objective's measure defaulting to its key."""
    return {
        k: ({"measure": k, **v} if isinstance(v, dict) and "measure" not in v else v)
        for k, v in objectives.items()
    }


def _nominal_limiting_concentration(data: dict[str, Any]) -> Any:
    """The upper bound of the concentration variable, else the limiting stock's target."""
    variables = data.get("variables")
    if isinstance(variables, dict):
        for var in variables.values():
            if isinstance(var, dict) and var.get("type") == "concentration" and "high" in var:
                return var["high"]
    stocks = data.get("stocks")
    if isinstance(stocks, dict):
        for stock in stocks.values():
            if isinstance(stock, dict) and stock.get("target_concentration") is not None:
                return stock["target_concentration"]
    return None
