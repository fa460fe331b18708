"""The virtual lab's reaction library: presets modelled on RoboChem's reaction classes.

Each :class:`Preset` bundles what a campaign needs to know about a reaction: its variables
(name, unit, bounds or choices), stock solutions (one carries the internal standard), the
reactor and LED it runs in, the kinetic :class:`~robochem.simulator.photochem.Mechanism`
with literature notes, NMR signals of every species, a suggested ``analysis:`` block and
the documented true optima.

:func:`predict` is the noise-free oracle; :func:`nmr_signals` turns an outlet composition
into :class:`~robochem.simulator.nmr_synth.Signal` objects; :func:`find_optimum` is the
dense search that produced the stored optima::

    .venv/bin/python -m robochem.simulator.reactions --optimum hat-alkylation

Each preset has a substrate variant ``<name>-b`` in :data:`VARIANTS` (same variables, stocks
and reactor, shifted kinetics and optimum) that :func:`get_preset` resolves too.

Throughput (mmol/h) = [A]₀ (M) × Q (mL/min) × 60 × yield/100 with Q = V_reactor / τ,
the same quantity as RoboChem's ``[A]₀·V·(yield/100)/τ·3600`` with τ in seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from robochem.simulator.nmr_synth import Signal, b1_for_nucleus
from robochem.simulator.photochem import (
    Absorber,
    AbsorptionBand,
    Arrhenius,
    Mechanism,
    Photocatalyst,
    ReactionModel,
    ReactorConditions,
)

__all__ = [
    "PRESETS",
    "VARIANTS",
    "ConditionsError",
    "NMRSignal",
    "Optimum",
    "Preset",
    "Species",
    "Stock",
    "Variable",
    "find_optimum",
    "get_preset",
    "initial_concentrations",
    "model_for",
    "nmr_signals",
    "predict",
    "reactor_conditions",
    "validate_conditions",
]


class ConditionsError(ValueError):
    """Conditions that do not match a preset's variables (names, types or bounds)."""


# -- preset description ----------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """An optimisation variable: continuous ``[low, high]`` in ``unit``, or ``choices``."""

    name: str
    unit: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    description: str = ""

    @property
    def categorical(self) -> bool:
        return bool(self.choices)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "unit": self.unit}
        if self.categorical:
            out["choices"] = list(self.choices)
        else:
            out["low"], out["high"] = self.low, self.high
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Stock:
    """A stock solution: species and their concentrations (M) in ``solvent``."""

    name: str
    species: Mapping[str, float]
    solvent: str
    description: str = ""


@dataclass(frozen=True)
class NMRSignal:
    """One signal of a species, per molecule: shift, nuclei, multiplet pattern, J (Hz)."""

    shift_ppm: float
    nuclei: float
    multiplicity: tuple[float, ...] = (1.0,)
    j_hz: float = 0.0
    assignment: str = ""


@dataclass(frozen=True)
class Species:
    """A species the model tracks (or the internal standard) and its NMR signals."""

    key: str
    name: str
    signals: tuple[NMRSignal, ...] = ()


@dataclass(frozen=True)
class Optimum:
    """A documented optimum found by :func:`find_optimum`."""

    objective: str
    conditions: Mapping[str, float | str]
    yield_percent: float
    throughput_mmol_h: float

    def describe(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "conditions": dict(self.conditions),
            "yield": round(self.yield_percent, 2),
            "throughput": round(self.throughput_mmol_h, 4),
        }


@dataclass(frozen=True)
class Preset:
    """A reaction of the virtual lab.

    ``fixed`` holds the settings that are not variables (same names as variables would
    have: ``temperature``, ``concentration``, ``equivalents``, ``photocatalyst``...).
    ``mechanism`` builds the kinetic scheme for a given catalyst choice.
    """

    name: str
    title: str
    summary: str
    nucleus: str
    variables: tuple[Variable, ...]
    fixed: Mapping[str, float | str]
    stocks: tuple[Stock, ...]
    species: tuple[Species, ...]
    substrate: str
    reagent: str
    product: str
    internal_standard: str
    #: internal standard per substrate in the substrate stock (mol/mol)
    standard_ratio: float
    catalysts: Mapping[str, Photocatalyst]
    mechanism: Callable[[str], Mechanism]
    wavelength_nm: float
    full_flux_umol_s: float
    reactor_volume_ml: float = 3.9
    inner_diameter_mm: float = 1.59
    led_fwhm_nm: float = 20.0
    literature: tuple[str, ...] = ()
    optima: Mapping[str, Optimum] = field(default_factory=dict)

    def variable(self, name: str) -> Variable:
        for var in self.variables:
            if var.name == name:
                return var
        raise KeyError(name)

    def species_info(self, key: str) -> Species:
        for sp in self.species:
            if sp.key == key:
                return sp
        raise KeyError(key)

    def analysis_block(self) -> dict[str, Any]:
        """A suggested ``analysis:`` block (robochem.analysis.config) for this preset.

        The standard travels in the substrate stock, so its concentration in the plug is
        ``standard_ratio × [A]₀``; the block states it for the yield-optimal conditions.
        """
        conc = float(self._setting("concentration", self.optima.get("yield")))
        std = self.species_info(self.internal_standard).signals[0]
        prod = self.species_info(self.product).signals[0]
        return {
            "nucleus": self.nucleus,
            "internal_standard": {
                "name": self.species_info(self.internal_standard).name,
                "region": list(_region(std, self.nucleus)),
                "nuclei": std.nuclei,
                "concentration": f"{conc * self.standard_ratio:.4g} M",
                "shift": std.shift_ppm,
            },
            "product": {
                "name": self.species_info(self.product).name,
                "region": list(_region(prod, self.nucleus)),
                "nuclei": prod.nuclei,
            },
            "limiting_reagent": {"concentration": f"{conc:.4g} M"},
        }

    def _setting(self, name: str, optimum: Optimum | None) -> float | str:
        if name in self.fixed:
            return self.fixed[name]
        if optimum is not None and name in optimum.conditions:
            return optimum.conditions[name]
        var = self.variable(name)
        return var.choices[0] if var.categorical else 0.5 * (var.low + var.high)  # type: ignore[operator]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "summary": self.summary,
            "nucleus": self.nucleus,
            "variables": [v.describe() for v in self.variables],
            "fixed": dict(self.fixed),
            "reactor": {
                "volume_ml": self.reactor_volume_ml,
                "inner_diameter_mm": self.inner_diameter_mm,
                "wavelength_nm": self.wavelength_nm,
                "full_photon_flux_umol_s": self.full_flux_umol_s,
            },
            "stocks": [
                {"name": s.name, "species": dict(s.species), "solvent": s.solvent}
                for s in self.stocks
            ],
            "internal_standard": self.internal_standard,
            "optima": {k: v.describe() for k, v in self.optima.items()},
        }


def _region(signal: NMRSignal, nucleus: str, pad_ppm: float = 0.1) -> tuple[float, float]:
    """Integration region: the multiplet's outer lines plus ``pad_ppm`` on both sides."""
    half = (len(signal.multiplicity) - 1) / 2.0 * signal.j_hz / b1_for_nucleus(nucleus) + pad_ppm
    return (round(signal.shift_ppm - half, 3), round(signal.shift_ppm + half, 3))


# -- conditions ----------------------------------------------------------------------------


def get_preset(name: str) -> Preset:
    """A preset or a substrate variant (``VARIANTS``) by name."""
    preset = PRESETS.get(name) or VARIANTS.get(name)
    if preset is None:
        known = sorted(PRESETS) + sorted(VARIANTS)
        raise ConditionsError(f"unknown reaction {name!r}; known: {known}")
    return preset


def validate_conditions(preset: Preset, conditions: Mapping[str, Any]) -> dict[str, float | str]:
    """Check names, types and bounds; return the conditions with numbers as floats.

    Never clamps: a value outside its range is an error naming variable, value and range.
    """
    names = {v.name for v in preset.variables}
    unknown = sorted(set(conditions) - names)
    missing = [v.name for v in preset.variables if v.name not in conditions]
    problems = []
    if unknown:
        problems.append(f"unknown variable(s) {unknown}")
    if missing:
        problems.append(f"missing variable(s) {missing}")
    if problems:
        allowed = ", ".join(_describe_range(v) for v in preset.variables)
        raise ConditionsError(f"{preset.name}: {'; '.join(problems)}; variables are {allowed}")
    out: dict[str, float | str] = {}
    for var in preset.variables:
        value = conditions[var.name]
        if var.categorical:
            if value not in var.choices:
                raise ConditionsError(
                    f"{preset.name}: {var.name} = {value!r} is not one of {list(var.choices)}"
                )
            out[var.name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConditionsError(
                f"{preset.name}: {var.name} must be a number in {var.unit}, got {value!r}"
            )
        number = float(value)
        if not (var.low <= number <= var.high):  # type: ignore[operator]  # NaN fails too
            raise ConditionsError(
                f"{preset.name}: {var.name} = {value!r} {var.unit} is outside the allowed "
                f"range [{var.low:g}, {var.high:g}] {var.unit}"
            )
        out[var.name] = number
    return out


def _describe_range(var: Variable) -> str:
    if var.categorical:
        return f"{var.name} in {list(var.choices)}"
    return f"{var.name} [{var.low:g}, {var.high:g}] {var.unit}"


def _settings(preset: Preset, conditions: Mapping[str, float | str]) -> dict[str, Any]:
    return {**preset.fixed, **conditions}


def initial_concentrations(
    preset: Preset, conditions: Mapping[str, float | str]
) -> dict[str, float]:
    """Plug composition (M) at the reactor inlet for validated ``conditions``."""
    s = _settings(preset, conditions)
    a0 = float(s["concentration"])
    cat = preset.catalysts[str(s["photocatalyst"])]
    return {
        preset.substrate: a0,
        preset.reagent: a0 * float(s["equivalents"]),
        cat.species: a0 * float(s["catalyst_loading"]) / 100.0,
        preset.internal_standard: a0 * preset.standard_ratio,
    }


def reactor_conditions(preset: Preset, conditions: Mapping[str, float | str]) -> ReactorConditions:
    s = _settings(preset, conditions)
    return ReactorConditions.from_light(
        float(s["light"]),
        full_flux_umol_s=preset.full_flux_umol_s,
        temperature_c=float(s["temperature"]),
        wavelength_nm=preset.wavelength_nm,
        irradiated_volume_ml=preset.reactor_volume_ml,
        inner_diameter_mm=preset.inner_diameter_mm,
        led_fwhm_nm=preset.led_fwhm_nm,
    )


@lru_cache(maxsize=64)
def _model(preset_name: str, catalyst: str) -> ReactionModel:
    return ReactionModel(get_preset(preset_name).mechanism(catalyst))


def model_for(preset: Preset, catalyst: str | None = None) -> ReactionModel:
    """The kinetic model of ``preset`` with ``catalyst`` (default: the fixed one)."""
    return _model(preset.name, catalyst or str(preset.fixed.get("photocatalyst")))


def predict(
    preset: Preset | str,
    conditions: Mapping[str, Any],
    *,
    dark_hold_s: float = 0.0,
    hold_temperature_c: float | None = None,
) -> dict[str, Any]:
    """Noise-free outcome of one experiment at the reactor outlet.

    Returns ``yield`` (%), ``conversion`` (%), ``selectivity`` (% of converted substrate
    that became product; 0 without conversion), ``throughput`` (mmol/h),
    ``flow_rate_ml_min``, ``residence_time_s`` and ``concentrations`` (every species and
    the standard, M). ``dark_hold_s`` > 0 then keeps the plug that long in the dark (the
    transfer to the NMR) at ``hold_temperature_c`` (default: the reaction temperature)
    before reporting; only the slow dark channels act there, and yield and throughput are
    those an analysis at that moment would report.
    """
    if isinstance(preset, str):
        preset = get_preset(preset)
    cond = validate_conditions(preset, conditions)
    s = _settings(preset, cond)
    c0 = initial_concentrations(preset, cond)
    tau_min = float(s["residence_time"])
    model = model_for(preset, str(s["photocatalyst"]))
    rc = reactor_conditions(preset, cond)
    out = model.advance(c0, tau_min * 60.0, rc)
    if dark_hold_s > 0.0:
        hold_t = rc.temperature_c if hold_temperature_c is None else hold_temperature_c
        dark = replace(rc, photon_flux_umol_s=0.0, temperature_c=hold_t)
        out = model.advance(out, dark_hold_s, dark)
    a0 = c0[preset.substrate]
    a = out[preset.substrate]
    p = out[preset.product]
    yield_pct = 100.0 * p / a0
    conversion = 100.0 * (a0 - a) / a0
    selectivity = 100.0 * p / (a0 - a) if a0 - a > 1e-9 * a0 else 0.0
    flow = preset.reactor_volume_ml / tau_min
    return {
        "reaction": preset.name,
        "conditions": dict(cond),
        "yield": yield_pct,
        "conversion": conversion,
        "selectivity": selectivity,
        "throughput": a0 * flow * 60.0 * yield_pct / 100.0,
        "flow_rate_ml_min": flow,
        "residence_time_s": tau_min * 60.0,
        "concentrations": out,
    }


def nmr_signals(
    preset: Preset | str, concentrations: Mapping[str, float], *, nucleus: str | None = None
) -> list[Signal]:
    """Signals of every species in ``concentrations`` for the NMR simulator.

    Only the preset's nucleus has signals; asking for another nucleus is an error.
    """
    if isinstance(preset, str):
        preset = get_preset(preset)
    if nucleus is not None and nucleus != preset.nucleus:
        raise ValueError(f"{preset.name} is read by {preset.nucleus} NMR, not {nucleus}")
    by_key = {sp.key: sp for sp in preset.species}
    signals: list[Signal] = []
    for key, conc in concentrations.items():
        sp = by_key.get(key)
        if sp is None or conc <= 0.0:
            continue
        for sig in sp.signals:
            signals.append(
                Signal(
                    shift_ppm=sig.shift_ppm,
                    nuclei=sig.nuclei,
                    concentration_M=float(conc),
                    multiplicity=sig.multiplicity,
                    j_hz=sig.j_hz,
                )
            )
    return signals


# -- dense search for the true optimum -------------------------------------------------------


def _objective_value(result: Mapping[str, Any], objective: str) -> float:
    return float(result["yield" if objective == "yield" else "throughput"])


def find_optimum(
    preset: Preset | str,
    objective: str = "yield",
    *,
    n_samples: int = 2048,
    n_polish: int = 4,
    seed: int = 0,
    choices: Sequence[str] | None = None,
) -> Optimum:
    """Maximise ``yield`` or ``throughput`` over the preset's variable box.

    A scrambled Sobol design of ``n_samples`` points per categorical choice, then bounded
    Nelder-Mead from the ``n_polish`` best points (in the unit cube, so every variable
    gets the same relative tolerance). Deterministic for a given ``seed``.
    """
    from scipy.optimize import minimize
    from scipy.stats import qmc

    if isinstance(preset, str):
        preset = get_preset(preset)
    if objective not in ("yield", "throughput"):
        raise ValueError(f"objective must be 'yield' or 'throughput', got {objective!r}")
    cont = [v for v in preset.variables if not v.categorical]
    cats = [v for v in preset.variables if v.categorical]
    if len(cats) > 1:
        raise NotImplementedError("at most one categorical variable is supported")
    options: Sequence[str | None] = (choices or cats[0].choices) if cats else [None]
    lows = np.array([v.low for v in cont], dtype=float)
    spans = np.array([v.high - v.low for v in cont], dtype=float)  # type: ignore[operator]

    def conditions_of(u: np.ndarray, choice: str | None) -> dict[str, float | str]:
        x = lows + np.clip(u, 0.0, 1.0) * spans
        cond: dict[str, float | str] = {v.name: float(val) for v, val in zip(cont, x, strict=True)}
        if cats:
            cond[cats[0].name] = choice  # type: ignore[assignment]
        return cond

    def value(u: np.ndarray, choice: str | None) -> float:
        return _objective_value(predict(preset, conditions_of(u, choice)), objective)

    best: tuple[float, np.ndarray, str | None] | None = None
    for choice in options:
        sampler = qmc.Sobol(d=len(cont), scramble=True, seed=seed)
        pts = sampler.random(n_samples)
        vals = np.array([value(u, choice) for u in pts])
        top = int(np.argmax(vals))
        if best is None or vals[top] > best[0]:
            best = (float(vals[top]), pts[top], choice)
        for i in np.argsort(vals)[::-1][:n_polish]:
            res = minimize(
                lambda u, c=choice: -value(u, c),
                pts[i],
                method="Nelder-Mead",
                bounds=[(0.0, 1.0)] * len(cont),
                options={"xatol": 1e-5, "fatol": 1e-7, "maxiter": 4000},
            )
            if best is None or -res.fun > best[0]:
                best = (-float(res.fun), np.clip(res.x, 0.0, 1.0), choice)
    assert best is not None
    cond = conditions_of(best[1], best[2])
    rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in cond.items()}
    result = predict(preset, rounded)
    return Optimum(objective, rounded, result["yield"], result["throughput"])


# -- the presets ------------------------------------------------------------------------------
# Full literature notes are in docs/virtual-lab.md; "estimate" marks values chosen to be
# plausible for the reaction class rather than taken from a measurement.

_RESIDENCE = Variable("residence_time", "min", 1.0, 20.0, description="τ = V_reactor / Q")
_LIGHT = Variable("light", "%", 0.0, 100.0, description="LED output; 0 is a dark control")


def _cat_loading(low: float, high: float) -> Variable:
    return Variable("catalyst_loading", "mol%", low, high, description="per limiting substrate")


# ---- 1. decatungstate HAT C(sp3)-H alkylation (1H NMR) ----------------------------------

TBADT = Photocatalyst(
    species="TBADT",
    spent="TBADT_spent",
    # ε(323 nm) ≈ 1.35e4 M⁻¹cm⁻¹ in MeCN (Tanielian 1998); band width an estimate.
    bands=(AbsorptionBand(323.0, 13500.0, 50.0),),
    # Φ of the reactive excited state wO ≈ 0.5-0.6 (Tanielian 1998)
    quantum_yield=0.12,
    # K = k_H·τ(wO): k_H(THF) ~ 5e7 M⁻¹s⁻¹ (estimate), τ(wO) ≈ 55 ns → ~3 M⁻¹
    stern_volmer_m=Arrhenius(3.0, 20.0),
    # HAT from the product's activated C-H bonds destroys it (over-irradiation; estimate)
    product_stern_volmer_m=Arrhenius(1.0, 20.0),
    product_damage_yield=0.06,
    bleach_quantum_yield=2e-4,
    dark_deactivation_s=Arrhenius(3e-4, 45.0),
)


def _hat_mechanism(_catalyst: str) -> Mechanism:
    return Mechanism(
        substrate="BMN",
        reagent="THF",
        product="P_alpha",
        isomer="P_beta",
        dimer="dimer",
        waste="THF_waste",
        overreacted="overreacted",
        degraded="degraded",
        catalysts=(TBADT,),
        # nucleophilic α-oxy radicals add to benzylidene malononitrile fast (estimate)
        k_add_substrate=Arrhenius(5e6, 15.0),
        k_radical_loss=Arrhenius(1e5, 35.0),
        # g* = k_p²/8k_t with k_p ~ 3e3 s⁻¹ (back-HAT from H⁺W10O32⁵⁻), 2k_t ~ 2e9
        termination_scale_m_s=Arrhenius(6e-4, 60.0),
        # α- vs β-C-H abstraction of THF: ~8:1 at 25 °C, less selective when hot (estimate)
        isomer_ratio=Arrhenius(0.07, 15.0),
        # BMN absorbs in the near-UV tail (λmax ≈ 310 nm): an inner filter at 365 nm
        # slow dark decomposition of the malononitrile product (phenomenological estimate)
        k_product_dark=Arrhenius(1.2e-4, 20.0),
        inner_filters=(Absorber("BMN", (AbsorptionBand(308.0, 20000.0, 36.0),)),),
    )


HAT = Preset(
    name="hat-alkylation",
    title="Decatungstate HAT C(sp3)-H alkylation of benzylidene malononitrile with THF",
    summary=(
        "TBADT abstracts an α-oxy H atom from THF under 365 nm light; the radical adds to "
        "benzylidene malononitrile (Giese). Read by 1H NMR against 1,3,5-trimethoxybenzene. "
        "Two-objective: yield wants long τ and moderate light, throughput short τ and "
        "high concentration."
    ),
    nucleus="1H",
    variables=(
        _RESIDENCE,
        _LIGHT,
        _cat_loading(0.5, 5.0),
        Variable("concentration", "M", 0.05, 0.3, description="[A]₀ of the limiting substrate"),
        Variable("temperature", "degC", 10.0, 60.0, description="reactor temperature"),
    ),
    fixed={"equivalents": 5.0, "photocatalyst": "TBADT"},
    stocks=(
        Stock("substrate", {"BMN": 1.0, "TMB": 0.25}, "MeCN", "limiting substrate + standard"),
        Stock("donor", {"THF": 12.3}, "neat", "H-atom donor (neat THF, 12.3 M)"),
        Stock("catalyst", {"TBADT": 0.02}, "MeCN", "tetrabutylammonium decatungstate"),
    ),
    species=(
        Species(
            "TMB",
            "1,3,5-trimethoxybenzene",
            (
                NMRSignal(6.09, 3, assignment="ArH"),
                NMRSignal(3.77, 9, assignment="OCH3"),
            ),
        ),
        Species(
            "BMN",
            "benzylidene malononitrile",
            (
                NMRSignal(7.90, 2, (1, 1), 7.6, "ortho ArH"),
                NMRSignal(7.78, 1, assignment="=CH"),
                NMRSignal(7.55, 3, (1, 2, 1), 7.5, "meta/para ArH"),
            ),
        ),
        Species(
            "THF",
            "tetrahydrofuran",
            (
                NMRSignal(3.68, 4, (1, 2, 1), 6.6, "OCH2"),
                NMRSignal(1.82, 4, (1, 4, 6, 4, 1), 6.6, "CH2"),
            ),
        ),
        Species(
            "P_alpha",
            "2-(phenyl(tetrahydrofuran-2-yl)methyl)malononitrile",
            (
                NMRSignal(4.48, 1, (1, 1), 5.2, "CH(CN)2"),
                NMRSignal(4.08, 1, (1, 2, 1), 7.0, "OCH"),
                NMRSignal(3.32, 1, (1, 1), 9.0, "PhCH"),
                NMRSignal(7.36, 5, (1, 2, 1), 7.5, "ArH"),
            ),
        ),
        Species(
            "P_beta",
            "2-(phenyl(tetrahydrofuran-3-yl)methyl)malononitrile",
            (
                NMRSignal(4.05, 1, (1, 1), 7.0, "CH(CN)2"),
                NMRSignal(7.33, 5, (1, 2, 1), 7.5, "ArH"),
            ),
        ),
        Species("dimer", "adduct-radical dimers", (NMRSignal(7.20, 10, (1, 2, 1), 7.5, "ArH"),)),
        Species(
            "THF_waste",
            "2,2'-bi(tetrahydrofuran) and related",
            (NMRSignal(3.90, 2, (1, 2, 1), 6.5, "OCH"),),
        ),
        Species("overreacted", "over-alkylated product"),
        Species("transferred", "atom-transfer by-product"),
        Species("degraded", "degraded product", (NMRSignal(7.28, 5, (1, 2, 1), 7.5, "ArH"),)),
        Species(
            "TBADT",
            "(Bu4N)4[W10O32]",
            (
                NMRSignal(3.12, 32, (1, 2, 1), 8.3, "NCH2"),
                NMRSignal(0.97, 48, (1, 2, 1), 7.3, "CH3"),
            ),
        ),
        Species(
            "TBADT_spent",
            "deactivated decatungstate",
            (
                NMRSignal(3.12, 32, (1, 2, 1), 8.3, "NCH2"),
                NMRSignal(0.97, 48, (1, 2, 1), 7.3, "CH3"),
            ),
        ),
    ),
    substrate="BMN",
    reagent="THF",
    product="P_alpha",
    internal_standard="TMB",
    standard_ratio=0.25,
    catalysts={"TBADT": TBADT},
    mechanism=_hat_mechanism,
    wavelength_nm=365.0,
    full_flux_umol_s=60.0,
    # python -m robochem.simulator.reactions --optimum hat-alkylation (4096 Sobol + 6 polish)
    optima={
        "yield": Optimum(
            "yield",
            {
                "residence_time": 11.1867,
                "light": 70.4834,
                "catalyst_loading": 1.7264,
                "concentration": 0.0848,
                "temperature": 26.7289,
            },
            yield_percent=77.03,
            throughput_mmol_h=1.3663,
        ),
        "throughput": Optimum(
            "throughput",
            {
                "residence_time": 1.0,
                "light": 100.0,
                "catalyst_loading": 5.0,
                "concentration": 0.3,
                "temperature": 60.0,
            },
            yield_percent=12.37,
            throughput_mmol_h=8.6828,
        ),
    },
    literature=(
        "Slattery et al., Science 2024, doi 10.1126/science.adj1817 (RoboChem)",
        "Tanielian, Coord. Chem. Rev. 1998, 178-180, 1165, doi 10.1016/S0010-8545(98)00160-X",
        "Ravelli, Fagnoni, Fukuyama, Nishikawa, Ryu, ACS Catal. 2018, 8, 701, "
        "doi 10.1021/acscatal.7b03354",
        "Laudadio et al. (Noël), Science 2020, 369, 92, doi 10.1126/science.abb4688",
    ),
)


# ---- 2. CF3 radical C-H trifluoromethylation of a heteroarene (19F NMR) ------------------

RU_BPY = Photocatalyst(
    species="Ru(bpy)3Cl2",
    spent="Ru_spent",
    # MLCT ε(452 nm) = 1.46e4 M⁻¹cm⁻¹ (Prier, Rankic, MacMillan 2013)
    bands=(AbsorptionBand(452.0, 14600.0, 85.0),),
    # product per quenching event, after back electron transfer in the cage (estimate)
    quantum_yield=0.1,
    # τ(*Ru) ≈ 1.1 µs (Prier 2013); k_q(CF3SO2Cl) ~ 5e7 M⁻¹s⁻¹ (estimate) → K ≈ 55 M⁻¹
    stern_volmer_m=Arrhenius(55.0, 8.0),
    bleach_quantum_yield=1e-4,
)


def _cf3_mechanism(_catalyst: str) -> Mechanism:
    return Mechanism(
        substrate="NMP",
        reagent="CF3SO2Cl",
        product="P_2CF3",
        isomer="P_3CF3",
        dimer="dimer",
        waste="CF3H",
        overreacted="P_bisCF3",
        degraded="degraded",
        transferred="P_Cl",
        catalysts=(RU_BPY,),
        # electrophilic CF3• adds to electron-rich pyrroles near 1e8 M⁻¹s⁻¹ (estimate)
        k_add_substrate=Arrhenius(8e7, 10.0),
        # the CF3-product is less electron rich: slower second addition (estimate)
        k_add_product=Arrhenius(7e6, 14.0),
        # H-abstraction from MeCN/additives to CF3H (estimate)
        k_radical_loss=Arrhenius(5e5, 30.0),
        termination_scale_m_s=Arrhenius(2e-3, 30.0),
        # the adduct radical abstracts Cl from CF3SO2Cl instead of being oxidised: excess
        # reagent costs selectivity (k_Cl/k_ox, estimate)
        adduct_transfer_m=Arrhenius(0.5, -25.0),
        isomer_ratio=Arrhenius(0.06, 8.0),
        # volatile CF3SO2Cl (bp ≈ 30 °C) is lost to the gas segments and hydrolysed (estimate)
        k_reagent_dark=Arrhenius(4e-4, 40.0),
        # acid-promoted oligomerisation of the electron-rich pyrrole product (estimate)
        k_product_dark=Arrhenius(2e-4, 20.0),
    )


CF3 = Preset(
    name="cf3-trifluoromethylation",
    title="Photoredox C-H trifluoromethylation of N-methylpyrrole with CF3SO2Cl",
    summary=(
        "Ru(bpy)3²⁺ under 450 nm light reduces triflyl chloride to CF3• (+ SO2 + Cl⁻); "
        "CF3• adds to N-methylpyrrole at C2 (C3 minor). Over-trifluoromethylation and CF3H "
        "formation consume the reagent, so the equivalents have an interior optimum. Read "
        "by 19F NMR against α,α,α-trifluorotoluene."
    ),
    nucleus="19F",
    variables=(
        _RESIDENCE,
        _LIGHT,
        Variable("equivalents", "equiv", 1.0, 4.0, description="CF3SO2Cl per substrate"),
        _cat_loading(0.1, 2.0),
        Variable("temperature", "degC", 10.0, 60.0, description="reactor temperature"),
    ),
    fixed={"concentration": 0.1, "photocatalyst": "Ru(bpy)3Cl2"},
    stocks=(
        Stock("substrate", {"NMP": 1.0, "PhCF3": 0.25}, "MeCN", "N-methylpyrrole + standard"),
        Stock("reagent", {"CF3SO2Cl": 2.0}, "MeCN", "triflyl chloride (with K2HPO4 base)"),
        Stock("catalyst", {"Ru(bpy)3Cl2": 0.01}, "MeCN", "photocatalyst"),
    ),
    species=(
        Species("PhCF3", "α,α,α-trifluorotoluene", (NMRSignal(-63.72, 3, assignment="CF3"),)),
        Species("NMP", "N-methylpyrrole"),
        Species(
            "CF3SO2Cl",
            "trifluoromethanesulfonyl chloride",
            (NMRSignal(-75.40, 3, assignment="CF3"),),
        ),
        Species(
            "P_2CF3",
            "1-methyl-2-(trifluoromethyl)pyrrole",
            (NMRSignal(-59.70, 3, assignment="CF3"),),
        ),
        Species(
            "P_3CF3",
            "1-methyl-3-(trifluoromethyl)pyrrole",
            (NMRSignal(-56.40, 3, assignment="CF3"),),
        ),
        Species(
            "P_bisCF3",
            "1-methyl-2,5-bis(trifluoromethyl)pyrrole",
            (NMRSignal(-60.80, 6, assignment="2 CF3"),),
        ),
        Species("dimer", "radical-radical by-products", (NMRSignal(-58.60, 6, assignment="CF3"),)),
        Species(
            "P_Cl", "chloro(trifluoromethyl)pyrroles", (NMRSignal(-57.90, 3, assignment="CF3"),)
        ),
        Species(
            "CF3H",
            "fluoroform (19F, 1H-coupled)",
            (NMRSignal(-78.70, 3, (1, 1), 79.5, "CF3H, ²J(HF)"),),
        ),
        Species("degraded", "degraded product", (NMRSignal(-62.20, 3, assignment="CF3"),)),
        Species("Ru(bpy)3Cl2", "Ru(bpy)3Cl2"),
        Species("Ru_spent", "decomposed Ru photocatalyst"),
    ),
    substrate="NMP",
    reagent="CF3SO2Cl",
    product="P_2CF3",
    internal_standard="PhCF3",
    standard_ratio=0.25,
    catalysts={"Ru(bpy)3Cl2": RU_BPY},
    mechanism=_cf3_mechanism,
    wavelength_nm=450.0,
    full_flux_umol_s=50.0,
    # python -m robochem.simulator.reactions --optimum cf3-trifluoromethylation
    optima={
        "yield": Optimum(
            "yield",
            {
                "residence_time": 5.0437,
                "light": 63.2317,
                "equivalents": 1.3726,
                "catalyst_loading": 0.3575,
                "temperature": 25.4736,
            },
            yield_percent=66.36,
            throughput_mmol_h=3.0788,
        ),
        "throughput": Optimum(
            "throughput",
            {
                "residence_time": 1.0,
                "light": 100.0,
                "equivalents": 2.8457,
                "catalyst_loading": 1.0304,
                "temperature": 51.1698,
            },
            yield_percent=44.98,
            throughput_mmol_h=10.5256,
        ),
    },
    literature=(
        "Nagib, MacMillan, Nature 2011, 480, 224, doi 10.1038/nature10647",
        "Straathof, Gemoets, Wang, Schouten, Hessel, Noël, ChemSusChem 2014, 7, 1612, "
        "doi 10.1002/cssc.201301282",
        "Prier, Rankic, MacMillan, Chem. Rev. 2013, 113, 5322, doi 10.1021/cr300503r",
    ),
)


# ---- 3. photoredox decarboxylative Giese addition, catalyst choice (19F NMR) -------------

PR_CATALYSTS: dict[str, Photocatalyst] = {
    "4CzIPN": Photocatalyst(
        species="4CzIPN",
        spent="4CzIPN_spent",
        # visible CT band ~435 nm; ε an estimate (order 1e4 M⁻¹cm⁻¹)
        bands=(AbsorptionBand(435.0, 9000.0, 80.0),),
        # product per quenching event after back electron transfer (estimate)
        quantum_yield=0.03,
        # E*red ≈ +1.35 V vs SCE oxidises carboxylates; τ(TADF) ~ µs (Speckmeier 2018)
        stern_volmer_m=Arrhenius(800.0, 10.0),
        # PC•⁻ / *PC reduce the malononitrile product (over-irradiation, estimate)
        product_stern_volmer_m=Arrhenius(100.0, 10.0),
        product_damage_yield=0.005,
        # degrades by radical attack on the cyanoarene core (rate an estimate)
        bleach_quantum_yield=1e-4,
        dark_deactivation_s=Arrhenius(5e-5, 60.0),
    ),
    "Ir-dFCF3ppy": Photocatalyst(
        species="Ir-dFCF3ppy",
        spent="Ir_spent",
        # [Ir(dF(CF3)ppy)2(dtbbpy)]PF6: weak MLCT band near 420 nm (ε estimate)
        bands=(AbsorptionBand(420.0, 4500.0, 60.0),),
        quantum_yield=0.015,
        # E*red = +1.21 V, τ = 2.3 µs (Prier 2013) → fast quenching
        stern_volmer_m=Arrhenius(1200.0, 10.0),
        product_stern_volmer_m=Arrhenius(150.0, 10.0),
        product_damage_yield=0.005,
        bleach_quantum_yield=1e-5,
        dark_deactivation_s=Arrhenius(1e-5, 60.0),
    ),
    "Ru(bpy)3Cl2": Photocatalyst(
        species="Ru(bpy)3Cl2",
        spent="Ru_spent",
        bands=(AbsorptionBand(452.0, 14600.0, 85.0),),
        quantum_yield=0.03,
        # E*red = +0.77 V: too weak to oxidise a carboxylate, slow quenching (estimate)
        stern_volmer_m=Arrhenius(1.5, 25.0),
        product_stern_volmer_m=Arrhenius(50.0, 10.0),
        product_damage_yield=0.005,
        bleach_quantum_yield=1e-5,
    ),
    "EosinY": Photocatalyst(
        species="EosinY",
        spent="EosinY_spent",
        # dianion λmax ≈ 539 nm, ε ≈ 9e4; little of it at 450 nm (Hari, König 2014)
        bands=(AbsorptionBand(539.0, 90000.0, 45.0), AbsorptionBand(495.0, 20000.0, 50.0)),
        quantum_yield=0.02,
        # E*red(T1) ≈ +0.83 V: sluggish carboxylate oxidation (estimate)
        stern_volmer_m=Arrhenius(20.0, 20.0),
        product_stern_volmer_m=Arrhenius(50.0, 10.0),
        product_damage_yield=0.005,
        # photobleaches readily (estimate)
        bleach_quantum_yield=5e-4,
    ),
}


def _pr_mechanism(catalyst: str) -> Mechanism:
    return Mechanism(
        substrate="FBMN",
        reagent="BocPro",
        product="P_giese",
        isomer="isomer",
        dimer="dimer",
        waste="BocPyr",
        overreacted="overreacted",
        degraded="degraded",
        catalysts=(PR_CATALYSTS[catalyst],),
        # α-amino radical + arylidene malononitrile: fast Giese addition (estimate)
        k_add_substrate=Arrhenius(2e7, 12.0),
        # H-abstraction/oxidation of the α-amino radical (estimate); higher Ea
        k_radical_loss=Arrhenius(1e5, 40.0),
        # adduct radical anion reduced by PC•⁻ vs. termination (estimate)
        termination_scale_m_s=Arrhenius(5e-4, 50.0),
        # base-mediated retro-Michael of the Giese adduct in the dark (estimate)
        k_product_dark=Arrhenius(1e-4, 30.0),
    )


PHOTOREDOX = Preset(
    name="photoredox-catalyst-choice",
    title="Photoredox decarboxylative Giese addition of Boc-proline, with a choice of catalyst",
    summary=(
        "An excited photocatalyst oxidises Boc-prolinate; the α-amino radical (after CO2 "
        "loss) adds to 4-fluorobenzylidene malononitrile. Four photocatalysts differ in "
        "absorption at 450 nm, excited-state oxidising power and photostability. Read by "
        "19F NMR (fluorine tag) against α,α,α-trifluorotoluene."
    ),
    nucleus="19F",
    variables=(
        Variable("photocatalyst", "", choices=tuple(PR_CATALYSTS)),
        _RESIDENCE,
        _LIGHT,
        _cat_loading(0.25, 5.0),
        Variable("temperature", "degC", 15.0, 60.0, description="reactor temperature"),
    ),
    fixed={"concentration": 0.1, "equivalents": 2.0},
    stocks=(
        Stock("substrate", {"FBMN": 1.0, "PhCF3": 0.25}, "DMF", "acceptor + standard"),
        Stock("reagent", {"BocPro": 1.0}, "DMF", "tetrabutylammonium Boc-prolinate"),
        *(
            Stock(f"catalyst {name}", {cat.species: 0.01}, "DMF", "photocatalyst")
            for name, cat in PR_CATALYSTS.items()
        ),
    ),
    species=(
        Species("PhCF3", "α,α,α-trifluorotoluene", (NMRSignal(-63.72, 3, assignment="CF3"),)),
        Species(
            "FBMN",
            "2-(4-fluorobenzylidene)malononitrile",
            (NMRSignal(-103.80, 1, (1, 2, 1), 8.4, "ArF, ³J(HF) to ortho H"),),
        ),
        Species("BocPro", "Boc-prolinate"),
        Species(
            "P_giese",
            "2-((1-Boc-pyrrolidin-2-yl)(4-fluorophenyl)methyl)malononitrile",
            (NMRSignal(-114.60, 1, (1, 2, 1), 8.6, "ArF"),),
        ),
        Species("isomer", "isomer"),
        Species("dimer", "adduct-radical dimers", (NMRSignal(-116.20, 2, (1, 2, 1), 8.6, "ArF"),)),
        Species("BocPyr", "N-Boc-pyrrolidine and bipyrrolidines"),
        Species("overreacted", "over-reacted product"),
        Species("transferred", "atom-transfer by-product"),
        Species("degraded", "degraded product", (NMRSignal(-112.90, 1, (1, 2, 1), 8.6, "ArF"),)),
        *(Species(cat.species, name) for name, cat in PR_CATALYSTS.items()),
        *(Species(cat.spent, f"decomposed {name}") for name, cat in PR_CATALYSTS.items()),
    ),
    substrate="FBMN",
    reagent="BocPro",
    product="P_giese",
    internal_standard="PhCF3",
    standard_ratio=0.25,
    catalysts=PR_CATALYSTS,
    mechanism=_pr_mechanism,
    wavelength_nm=450.0,
    full_flux_umol_s=120.0,
    # python -m robochem.simulator.reactions --optimum photoredox-catalyst-choice
    optima={
        "yield": Optimum(
            "yield",
            {
                "photocatalyst": "4CzIPN",
                "residence_time": 5.742,
                "light": 66.2667,
                "catalyst_loading": 0.9287,
                "temperature": 45.4987,
            },
            yield_percent=87.61,
            throughput_mmol_h=3.5704,
        ),
        "throughput": Optimum(
            "throughput",
            {
                "photocatalyst": "4CzIPN",
                "residence_time": 1.0,
                "light": 100.0,
                "catalyst_loading": 1.8371,
                "temperature": 55.1945,
            },
            yield_percent=40.11,
            throughput_mmol_h=9.3848,
        ),
    },
    literature=(
        "Chu, Ohta, Zuo, MacMillan, J. Am. Chem. Soc. 2014, 136, 10886, doi 10.1021/ja505964r",
        "Luo, Zhang, ACS Catal. 2016, 6, 873, doi 10.1021/acscatal.5b02204",
        "Speckmeier, Fischer, Zeitler, J. Am. Chem. Soc. 2018, 140, 15353, "
        "doi 10.1021/jacs.8b08933",
        "Prier, Rankic, MacMillan, Chem. Rev. 2013, 113, 5322, doi 10.1021/cr300503r",
        "Hari, König, Chem. Commun. 2014, 50, 6688, doi 10.1039/C4CC00751D",
    ),
)


PRESETS: dict[str, Preset] = {p.name: p for p in (HAT, CF3, PHOTOREDOX)}


# -- substrate variants ---------------------------------------------------------------------
# ``<preset>-b`` keeps its preset's variables, bounds, stocks (names, concentrations, the
# stock that carries the standard), reactor, LED and analysis regions and changes one
# substrate: a few rate constants and species, so the optimum moves while the landscape
# keeps its shape. They exist to measure warm starts from one substrate to a related one.
# They are not in PRESETS: the example protocols, the benchmarks and the per-preset tests
# iterate over PRESETS and expect one example protocol per entry.

_ROLES = (
    "substrate",
    "reagent",
    "product",
    "isomer",
    "dimer",
    "waste",
    "overreacted",
    "degraded",
    "transferred",
)


def _renamed(mechanism: Mechanism, keys: Mapping[str, str]) -> Mechanism:
    """``mechanism`` with species renamed old -> new by ``keys`` (the others kept)."""
    roles = {role: keys.get(getattr(mechanism, role), getattr(mechanism, role)) for role in _ROLES}
    filters = tuple(
        replace(f, species=keys.get(f.species, f.species)) for f in mechanism.inner_filters
    )
    return replace(mechanism, inner_filters=filters, **roles)


def _variant(
    base: Preset,
    *,
    name: str,
    title: str,
    summary: str,
    mechanism: Callable[[str], Mechanism],
    keys: Mapping[str, str],
    species: Sequence[Species],
    optima: Mapping[str, Optimum],
    stocks: Mapping[str, Mapping[str, str]] | None = None,
    catalysts: Mapping[str, Photocatalyst] | None = None,
) -> Preset:
    """``base`` with species renamed by ``keys`` (old -> new key, everywhere), the
    ``species`` given replacing those with the same (new) key, ``stocks`` fields replaced
    by stock name (descriptions, solvent; never the layout) and a new ``mechanism``."""

    def key(old: str) -> str:
        return keys.get(old, old)

    changed = {sp.key: sp for sp in species}
    stock_changes = stocks or {}
    return replace(
        base,
        name=name,
        title=title,
        summary=summary,
        substrate=key(base.substrate),
        reagent=key(base.reagent),
        product=key(base.product),
        stocks=tuple(
            replace(
                st,
                species={key(k): v for k, v in st.species.items()},
                **stock_changes.get(st.name, {}),
            )
            for st in base.stocks
        ),
        species=tuple(
            changed.get(key(sp.key), replace(sp, key=key(sp.key))) for sp in base.species
        ),
        catalysts=dict(catalysts) if catalysts is not None else base.catalysts,
        mechanism=mechanism,
        optima=optima,
    )


# ---- 1b. HAT alkylation with ethanol as the C-H substrate ----------------------------------

HAT_B_KEYS = {"THF": "EtOH", "THF_waste": "EtOH_waste"}

#: ethanol offers two α-C-H (THF four): its H atoms quench wO ~0.6x as fast (estimate)
TBADT_ETOH = replace(TBADT, stern_volmer_m=Arrhenius(1.8, 20.0))


def _hat_b_mechanism(catalyst: str) -> Mechanism:
    return _renamed(
        replace(
            _hat_mechanism(catalyst),
            catalysts=(TBADT_ETOH,),
            # the γ-hydroxy malononitrile cyclises in the dark (to a 2-amino-4,5-
            # dihydrofuran-3-carbonitrile): as fast as the THF adduct's loss at 25 °C, but
            # Ea 25 instead of 20 kJ/mol, so heat costs more (estimate)
            k_product_dark=Arrhenius(1.2e-4, 25.0),
        ),
        HAT_B_KEYS,
    )


HAT_B = _variant(
    HAT,
    name="hat-alkylation-b",
    title="Decatungstate HAT C(sp3)-H alkylation of benzylidene malononitrile with ethanol",
    summary=(
        "hat-alkylation with ethanol (12.3 M in MeCN, same stock layout) as the C-H "
        "substrate: TBADT abstracts the α-hydroxy H, the 1-hydroxyethyl radical adds to "
        "benzylidene malononitrile. Slower HAT and a product that cyclises when hot move "
        "the yield optimum to longer τ and lower temperature."
    ),
    mechanism=_hat_b_mechanism,
    keys=HAT_B_KEYS,
    catalysts={"TBADT": TBADT_ETOH},
    stocks={"donor": {"solvent": "MeCN", "description": "H-atom donor (ethanol, 12.3 M in MeCN)"}},
    species=(
        Species(
            "EtOH",
            "ethanol",
            (
                NMRSignal(3.56, 2, (1, 3, 3, 1), 7.0, "OCH2"),
                NMRSignal(1.15, 3, (1, 2, 1), 7.0, "CH3"),
            ),
        ),
        Species(
            "P_alpha",
            "2-(2-hydroxy-1-phenylpropyl)malononitrile",
            (
                NMRSignal(4.46, 1, (1, 1), 5.6, "CH(CN)2"),
                NMRSignal(4.18, 1, (1, 1), 6.2, "CHOH"),
                NMRSignal(3.22, 1, (1, 1), 8.0, "PhCH"),
                NMRSignal(7.36, 5, (1, 2, 1), 7.5, "ArH"),
                NMRSignal(1.22, 3, (1, 1), 6.2, "CH3"),
            ),
        ),
        Species(
            "P_beta",
            "2-(3-hydroxy-1-phenylpropyl)malononitrile",
            (
                NMRSignal(4.02, 1, (1, 1), 6.8, "CH(CN)2"),
                NMRSignal(7.33, 5, (1, 2, 1), 7.5, "ArH"),
            ),
        ),
        Species(
            "EtOH_waste",
            "2,3-butanediol and acetaldehyde",
            (NMRSignal(3.48, 2, (1, 2, 1), 6.0, "CHOH"),),
        ),
        Species(
            "degraded",
            "2-amino-5-methyl-4-phenyl-4,5-dihydrofuran-3-carbonitrile",
            (
                NMRSignal(7.28, 5, (1, 2, 1), 7.5, "ArH"),
                NMRSignal(1.38, 3, (1, 1), 6.4, "CH3"),
            ),
        ),
    ),
    # python -m robochem.simulator.reactions --optimum hat-alkylation-b
    optima={
        "yield": Optimum(
            "yield",
            {
                "residence_time": 16.4829,
                "light": 58.1623,
                "catalyst_loading": 2.0021,
                "concentration": 0.085,
                "temperature": 19.7914,
            },
            yield_percent=74.42,
            throughput_mmol_h=0.898,
        ),
        "throughput": Optimum(
            "throughput",
            {
                "residence_time": 1.0,
                "light": 100.0,
                "catalyst_loading": 5.0,
                "concentration": 0.3,
                "temperature": 60.0,
            },
            yield_percent=11.68,
            throughput_mmol_h=8.1977,
        ),
    },
)


# ---- 2b. CF3 radical trifluoromethylation of N-Boc-pyrrole -------------------------------

CF3_B_KEYS = {"NMP": "BocPyr"}


def _cf3_b_mechanism(catalyst: str) -> Mechanism:
    return _renamed(
        replace(
            _cf3_mechanism(catalyst),
            # the Boc group withdraws electron density: the electrophilic CF3• adds ~4x
            # slower, to the CF3 product too (estimates)
            k_add_substrate=Arrhenius(2e7, 12.0),
            k_add_product=Arrhenius(1.6e6, 14.0),
            # C2 shielded by the Boc group: more C3 attack, and more so when hot (estimate)
            isomer_ratio=Arrhenius(0.12, 10.0),
            # a less electron-rich product oligomerises half as fast (estimate)
            k_product_dark=Arrhenius(1e-4, 20.0),
        ),
        CF3_B_KEYS,
    )


CF3_B = _variant(
    CF3,
    name="cf3-trifluoromethylation-b",
    title="Photoredox C-H trifluoromethylation of N-Boc-pyrrole with CF3SO2Cl",
    summary=(
        "cf3-trifluoromethylation on tert-butyl pyrrole-1-carboxylate instead of "
        "N-methylpyrrole (same stocks): the less electron-rich arene takes CF3• ~4x "
        "slower and less selectively at C2, so the yield optimum wants a longer τ, less "
        "light, more CF3SO2Cl and a cooler reactor."
    ),
    mechanism=_cf3_b_mechanism,
    keys=CF3_B_KEYS,
    stocks={"substrate": {"description": "N-Boc-pyrrole + standard"}},
    species=(
        Species("BocPyr", "tert-butyl pyrrole-1-carboxylate (N-Boc-pyrrole)"),
        Species(
            "P_2CF3",
            "tert-butyl 2-(trifluoromethyl)pyrrole-1-carboxylate",
            (NMRSignal(-59.66, 3, assignment="CF3"),),
        ),
        Species(
            "P_3CF3",
            "tert-butyl 3-(trifluoromethyl)pyrrole-1-carboxylate",
            (NMRSignal(-56.90, 3, assignment="CF3"),),
        ),
        Species(
            "P_bisCF3",
            "tert-butyl 2,5-bis(trifluoromethyl)pyrrole-1-carboxylate",
            (NMRSignal(-60.70, 6, assignment="2 CF3"),),
        ),
        Species(
            "P_Cl",
            "chloro(trifluoromethyl)-N-Boc-pyrroles",
            (NMRSignal(-57.60, 3, assignment="CF3"),),
        ),
        Species(
            "degraded",
            "2-(trifluoromethyl)pyrrole (Boc lost) and oligomers",
            (NMRSignal(-62.00, 3, assignment="CF3"),),
        ),
    ),
    # python -m robochem.simulator.reactions --optimum cf3-trifluoromethylation-b
    optima={
        "yield": Optimum(
            "yield",
            {
                "residence_time": 9.6602,
                "light": 41.0667,
                "equivalents": 1.6877,
                "catalyst_loading": 0.4164,
                "temperature": 16.6679,
            },
            yield_percent=63.9,
            throughput_mmol_h=1.5479,
        ),
        "throughput": Optimum(
            "throughput",
            {
                "residence_time": 1.0,
                "light": 100.0,
                "equivalents": 2.3241,
                "catalyst_loading": 0.9349,
                "temperature": 28.3635,
            },
            yield_percent=34.65,
            throughput_mmol_h=8.1074,
        ),
    },
)


# ---- 3b. decarboxylative Giese addition to a cyanoacrylate --------------------------------

PR_B_KEYS = {"FBMN": "FCA"}

#: g* ∝ k_p²: the α-cyano ester adduct radical is harder to reduce than the malononitrile
#: one, so the weaker reductants turn it over more slowly: E(PC/PC•⁻) of 4CzIPN -1.21 V,
#: EosinY -1.06 V against -1.37 V (Ir) and -1.33 V (Ru) (Prier 2013; factors estimates)
_PR_B_TURNOVER = {"4CzIPN": 0.4, "EosinY": 0.2}


def _pr_b_mechanism(catalyst: str) -> Mechanism:
    base = _pr_mechanism(catalyst)
    g_star = base.termination_scale_m_s
    return _renamed(
        replace(
            base,
            # one ester instead of a second nitrile: a less electrophilic acceptor, the
            # α-amino radical adds half as fast (estimate)
            k_add_substrate=Arrhenius(1e7, 12.0),
            termination_scale_m_s=replace(
                g_star, value=g_star.value * _PR_B_TURNOVER.get(catalyst, 1.0)
            ),
        ),
        PR_B_KEYS,
    )


PHOTOREDOX_B = _variant(
    PHOTOREDOX,
    name="photoredox-catalyst-choice-b",
    title="Photoredox decarboxylative Giese addition of Boc-proline to a cyanoacrylate",
    summary=(
        "photoredox-catalyst-choice with ethyl (E)-2-cyano-3-(4-fluorophenyl)acrylate as "
        "the Michael acceptor (same stocks, same fluorine tag): slower radical addition, "
        "and an adduct radical that only the strongest reductants turn over fast, so "
        "Ir-dFCF3ppy overtakes 4CzIPN."
    ),
    mechanism=_pr_b_mechanism,
    keys=PR_B_KEYS,
    stocks={"substrate": {"description": "acceptor (cyanoacrylate) + standard"}},
    species=(
        Species(
            "FCA",
            "ethyl (E)-2-cyano-3-(4-fluorophenyl)acrylate",
            (NMRSignal(-105.10, 1, (1, 2, 1), 8.4, "ArF, ³J(HF) to ortho H"),),
        ),
        Species(
            "P_giese",
            "ethyl 3-(1-Boc-pyrrolidin-2-yl)-2-cyano-3-(4-fluorophenyl)propanoate",
            (NMRSignal(-114.64, 1, (1, 2, 1), 8.6, "ArF"),),
        ),
        Species("dimer", "adduct-radical dimers", (NMRSignal(-116.00, 2, (1, 2, 1), 8.6, "ArF"),)),
        Species("degraded", "degraded product", (NMRSignal(-113.10, 1, (1, 2, 1), 8.6, "ArF"),)),
    ),
    # python -m robochem.simulator.reactions --optimum photoredox-catalyst-choice-b
    optima={
        "yield": Optimum(
            "yield",
            {
                "photocatalyst": "Ir-dFCF3ppy",
                "residence_time": 15.7028,
                "light": 86.4022,
                "catalyst_loading": 0.8287,
                "temperature": 23.9819,
            },
            yield_percent=85.11,
            throughput_mmol_h=1.2683,
        ),
        "throughput": Optimum(
            "throughput",
            {
                "photocatalyst": "4CzIPN",
                "residence_time": 1.0,
                "light": 100.0,
                "catalyst_loading": 1.6149,
                "temperature": 55.3077,
            },
            yield_percent=32.42,
            throughput_mmol_h=7.5865,
        ),
    },
)


#: substrate variants by name; ``get_preset`` resolves them like the presets
VARIANTS: dict[str, Preset] = {p.name: p for p in (HAT_B, CF3_B, PHOTOREDOX_B)}


# -- command line: python -m robochem.simulator.reactions --optimum NAME --------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimum", metavar="NAME", help="dense search for a preset's optima")
    parser.add_argument("--objective", choices=["yield", "throughput", "both"], default="both")
    parser.add_argument("--samples", type=int, default=4096, help="Sobol points per choice")
    parser.add_argument("--polish", type=int, default=6, help="local searches from the best")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.optimum:
        parser.print_help()
        return 2
    objectives = ["yield", "throughput"] if args.objective == "both" else [args.objective]
    out = {}
    for objective in objectives:
        opt = find_optimum(
            args.optimum, objective, n_samples=args.samples, n_polish=args.polish, seed=args.seed
        )
        out[objective] = opt.describe()
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
