"""The reaction library: presets, the predict oracle, NMR signals, optima and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robochem.cli import app
from robochem.simulator.nmr_synth import Signal, b1_for_nucleus
from robochem.simulator.reactions import (
    PRESETS,
    ConditionsError,
    Preset,
    find_optimum,
    initial_concentrations,
    nmr_signals,
    predict,
    validate_conditions,
)

NAMES = sorted(PRESETS)


def _middle(preset: Preset, **overrides: float | str) -> dict[str, float | str]:
    cond: dict[str, float | str] = {
        v.name: (v.choices[0] if v.categorical else 0.5 * (v.low + v.high))  # type: ignore[operator]
        for v in preset.variables
    }
    cond.update(overrides)
    return cond


def test_library_shape() -> None:
    assert {"hat-alkylation", "cf3-trifluoromethylation", "photoredox-catalyst-choice"} <= set(
        PRESETS
    )
    assert {p.nucleus for p in PRESETS.values()} == {"1H", "19F"}
    assert any(v.categorical for v in PRESETS["photoredox-catalyst-choice"].variables)
    for preset in PRESETS.values():
        names = [v.name for v in preset.variables]
        assert 3 <= len(names) <= 6 and len(set(names)) == len(names)
        assert {"residence_time", "light"} <= set(names)
        # every setting the model needs is either a variable or fixed
        needed = {"residence_time", "light", "temperature", "concentration", "equivalents"}
        needed |= {"catalyst_loading", "photocatalyst"}
        assert needed <= set(names) | set(preset.fixed), preset.name
        # the standard travels in exactly one stock, with the substrate
        carriers = [s for s in preset.stocks if preset.internal_standard in s.species]
        assert len(carriers) == 1 and preset.substrate in carriers[0].species
        ratio = (
            carriers[0].species[preset.internal_standard] / carriers[0].species[preset.substrate]
        )
        assert ratio == pytest.approx(preset.standard_ratio)
        keys = {s.key for s in preset.species}
        model_species = {
            sp for choice in preset.catalysts for sp in preset.mechanism(choice).species()
        }
        assert model_species | {preset.internal_standard} <= keys
        signals = [sig for sp in preset.species for sig in sp.signals]
        assert any(sig.j_hz > 0 and len(sig.multiplicity) > 1 for sig in signals)
        assert preset.species_info(preset.product).signals
        assert preset.species_info(preset.internal_standard).signals
        assert preset.literature
        assert 50.0 <= preset.full_flux_umol_s <= 150.0


@pytest.mark.parametrize("name", NAMES)
def test_analysis_block_regions_are_clean(name: str) -> None:
    """Only the product (standard) has lines inside the product (standard) region."""
    preset = PRESETS[name]
    block = preset.analysis_block()
    assert block["nucleus"] == preset.nucleus
    b1 = b1_for_nucleus(preset.nucleus)
    for role, key in (("product", preset.product), ("internal_standard", preset.internal_standard)):
        lo, hi = block[role]["region"]
        for sp in preset.species:
            for sig in sp.signals:
                lines = Signal(sig.shift_ppm, sig.nuclei, 1.0, sig.multiplicity, sig.j_hz).lines(b1)
                inside = [s for s, _ in lines if lo <= s <= hi]
                if sp.key == key and sig is sp.signals[0]:
                    assert len(inside) == len(lines)
                else:
                    assert not inside, (role, sp.key, sig)


@pytest.mark.parametrize("name", NAMES)
def test_dark_control_gives_no_product(name: str) -> None:
    result = predict(name, _middle(PRESETS[name], light=0.0))
    assert result["yield"] == pytest.approx(0.0, abs=1e-9)
    assert result["conversion"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_prediction_fields_and_throughput_formula(name: str) -> None:
    preset = PRESETS[name]
    cond = _middle(preset)
    r = predict(preset, cond)
    assert 0 < r["yield"] <= r["conversion"] <= 100
    assert 0 < r["selectivity"] <= 100
    a0 = initial_concentrations(preset, validate_conditions(preset, cond))[preset.substrate]
    flow = preset.reactor_volume_ml / float(cond["residence_time"])
    assert r["flow_rate_ml_min"] == pytest.approx(flow)
    assert r["throughput"] == pytest.approx(a0 * flow * 60 * r["yield"] / 100)
    conc = r["concentrations"]
    assert conc[preset.product] == pytest.approx(a0 * r["yield"] / 100)
    assert conc[preset.internal_standard] == pytest.approx(a0 * preset.standard_ratio)


@pytest.mark.parametrize("name", NAMES)
def test_more_light_and_time_is_not_always_better(name: str) -> None:
    preset = PRESETS[name]
    best = preset.optima["yield"]
    overdone = dict(best.conditions, residence_time=20.0, light=100.0)
    assert predict(preset, overdone)["yield"] < best.yield_percent - 5.0
    # and the loss channel is what makes the difference
    out = predict(preset, overdone)["concentrations"]
    mech = preset.mechanism(str({**preset.fixed, **best.conditions}["photocatalyst"]))
    losses = sum(out[k] for k in (mech.degraded, mech.overreacted, mech.dimer))
    assert losses > 0


@pytest.mark.parametrize("name", NAMES)
def test_stored_yield_optimum_is_inside_the_box_and_reproduces(name: str) -> None:
    preset = PRESETS[name]
    assert set(preset.optima) == {"yield", "throughput"}
    for opt in preset.optima.values():
        r = predict(preset, opt.conditions)
        assert r["yield"] == pytest.approx(opt.yield_percent, abs=0.01)
        assert r["throughput"] == pytest.approx(opt.throughput_mmol_h, rel=1e-3)
    best = preset.optima["yield"]
    for var in preset.variables:
        if var.categorical:
            continue
        x = float(best.conditions[var.name])
        span = var.high - var.low  # type: ignore[operator]
        assert var.low + 0.02 * span < x < var.high - 0.02 * span, (var.name, x)  # type: ignore[operator]
    # throughput favours short residence times, yield long ones (two objectives differ)
    assert (
        preset.optima["throughput"].conditions["residence_time"] < best.conditions["residence_time"]
    )


@pytest.mark.parametrize("name", NAMES)
def test_fresh_quick_search_agrees_with_stored_optimum(name: str) -> None:
    preset = PRESETS[name]
    stored = preset.optima["yield"]
    choice = [stored.conditions["photocatalyst"]] if "photocatalyst" in stored.conditions else None
    fresh = find_optimum(preset, "yield", n_samples=64, n_polish=1, seed=7, choices=choice)
    assert fresh.yield_percent <= stored.yield_percent + 0.05  # the stored one is the best
    assert fresh.yield_percent >= stored.yield_percent - 1.0


def test_catalyst_choice_matters() -> None:
    preset = PRESETS["photoredox-catalyst-choice"]
    best = preset.optima["yield"]
    yields = {
        c: predict(preset, dict(best.conditions, photocatalyst=c))["yield"]
        for c in preset.variable("photocatalyst").choices
    }
    assert max(yields, key=yields.get) == best.conditions["photocatalyst"]
    assert min(yields.values()) < 0.5 * max(yields.values())


def test_search_is_deterministic_for_a_seed() -> None:
    a = find_optimum("hat-alkylation", "throughput", n_samples=16, n_polish=0, seed=3)
    b = find_optimum("hat-alkylation", "throughput", n_samples=16, n_polish=0, seed=3)
    assert a == b


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ({"residence_time": 25.0}, r"residence_time = 25\.0 min is outside the allowed range"),
        ({"light": -5}, r"light = -5 % is outside the allowed range \[0, 100\] %"),
        ({"bogus": 1}, r"unknown variable\(s\) \['bogus'\]"),
        ({"temperature": "hot"}, r"temperature must be a number in degC"),
        ({"concentration": float("nan")}, r"concentration = nan M is outside"),
    ],
)
def test_bad_conditions_are_rejected_not_clamped(conditions: dict, message: str) -> None:
    preset = PRESETS["hat-alkylation"]
    with pytest.raises(ConditionsError, match=message):
        predict(preset, {**_middle(preset), **conditions})


def test_missing_variables_and_bad_choice() -> None:
    with pytest.raises(ConditionsError, match=r"missing variable\(s\) \['light'"):
        predict("hat-alkylation", {"residence_time": 5.0})
    preset = PRESETS["photoredox-catalyst-choice"]
    with pytest.raises(ConditionsError, match=r"photocatalyst = 'Fe' is not one of"):
        predict(preset, _middle(preset, photocatalyst="Fe"))
    with pytest.raises(ConditionsError, match="unknown reaction"):
        predict("no-such-reaction", {})


def test_nmr_signals_scale_with_concentration() -> None:
    preset = PRESETS["hat-alkylation"]
    out = predict(preset, preset.optima["yield"].conditions)["concentrations"]
    signals = nmr_signals(preset, out)
    assert all(isinstance(s, Signal) for s in signals)
    std = [s for s in signals if s.shift_ppm == 6.09]
    prod = [s for s in signals if s.shift_ppm == 4.48]
    assert std[0].concentration_M == pytest.approx(out["TMB"])
    assert prod[0].concentration_M == pytest.approx(out["P_alpha"])
    assert prod[0].multiplicity == (1, 1) and prod[0].j_hz > 0
    # yield back from the integrals as the analysis would compute it
    ratio = (prod[0].concentration_M * prod[0].nuclei / 1) / (std[0].concentration_M * 3 / 3)
    yield_back = 100 * ratio * preset.standard_ratio
    assert yield_back == pytest.approx(preset.optima["yield"].yield_percent, abs=0.01)
    with pytest.raises(ValueError, match="19F"):
        nmr_signals(preset, out, nucleus="19F")
    assert nmr_signals(preset, {"unknown": 1.0, "TMB": 0.0}) == []


def test_dark_hold_only_runs_dark_channels() -> None:
    preset = PRESETS["photoredox-catalyst-choice"]
    cond = preset.optima["yield"].conditions
    outlet = predict(preset, cond)
    later = predict(preset, cond, dark_hold_s=120.0)
    ratio = later["yield"] / outlet["yield"]
    assert later["throughput"] == pytest.approx(outlet["throughput"] * ratio)
    assert outlet["conversion"] == pytest.approx(later["conversion"], abs=1e-6)
    assert 0 < outlet["yield"] - later["yield"] < 3.0
    cooler = predict(preset, cond, dark_hold_s=120.0, hold_temperature_c=20.0)
    assert later["yield"] < cooler["yield"] < outlet["yield"]


runner = CliRunner()


def test_cli_list_json() -> None:
    result = runner.invoke(app, ["reactions", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.output)}
    assert set(listed) == set(PRESETS)
    hat = listed["hat-alkylation"]
    assert {"name": "light", "unit": "%", "low": 0.0, "high": 100.0}.items() <= hat["variables"][
        1
    ].items()
    assert hat["optima"]["yield"]["yield"] > 50
    assert "throughput" in hat["optima"]["throughput"]
    choices = listed["photoredox-catalyst-choice"]["variables"][0]["choices"]
    assert "4CzIPN" in choices


def test_cli_list_table() -> None:
    result = runner.invoke(app, ["reactions", "list"])
    assert result.exit_code == 0, result.output
    assert "hat-alkylation" in result.output and "residence_time" in result.output


def test_cli_predict_prints_one_json_object() -> None:
    cond = {
        "residence_time": 10,
        "light": 60,
        "catalyst_loading": 2,
        "concentration": 0.1,
        "temperature": 30,
    }
    result = runner.invoke(
        app, ["reactions", "predict", "hat-alkylation", "--conditions", json.dumps(cond)]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["yield"] == pytest.approx(predict("hat-alkylation", cond)["yield"], abs=1e-6)
    assert {"throughput", "conversion", "selectivity", "concentrations"} <= set(data)


def test_cli_predict_errors() -> None:
    bad = runner.invoke(
        app, ["reactions", "predict", "hat-alkylation", "--conditions", '{"light": 500}']
    )
    assert bad.exit_code == 2
    assert "missing variable" in bad.output
    garbled = runner.invoke(app, ["reactions", "predict", "hat-alkylation", "-c", "{light"])
    assert garbled.exit_code == 2 and "not valid JSON" in garbled.output


def test_installed_command() -> None:
    exe = Path(sys.executable).with_name("robochem")  # the project is installed in CI
    result = subprocess.run(
        [str(exe), "reactions", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) >= 3
