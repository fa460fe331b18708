"""Substrate variants (``<preset>-b``): the same task on a related substrate.

Each variant must be a *related but different* task for warm-start measurements: the same
search space, stocks and analysis as its preset, an optimum that moved, and the preset's
good conditions still decent on the variant.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.virtual_lab import connected, run_experiment
from robochem.cli import app
from robochem.clock import set_clock
from robochem.simulator.nmr_synth import Signal, b1_for_nucleus
from robochem.simulator.reactions import (
    PRESETS,
    VARIANTS,
    ConditionsError,
    Preset,
    find_optimum,
    get_preset,
    predict,
)
from robochem.simulator.runner import SimulatedPlatform

NAMES = sorted(VARIANTS)


def _original(variant: Preset) -> Preset:
    return PRESETS[variant.name.removesuffix("-b")]


def _unit(preset: Preset, conditions: dict) -> np.ndarray:
    return np.array(
        [
            (float(conditions[v.name]) - v.low) / (v.high - v.low)  # type: ignore[operator]
            for v in preset.variables
            if not v.categorical
        ]
    )


def test_one_variant_per_preset_resolved_but_not_in_presets() -> None:
    assert set(VARIANTS) == {f"{name}-b" for name in PRESETS}
    assert not set(VARIANTS) & set(PRESETS)
    for name, variant in VARIANTS.items():
        assert get_preset(name) is variant and variant.name == name
    with pytest.raises(ConditionsError, match="hat-alkylation-b"):
        get_preset("no-such-reaction")


@pytest.mark.parametrize("name", NAMES)
def test_same_space_stocks_reactor_and_roles(name: str) -> None:
    variant = VARIANTS[name]
    base = _original(variant)
    assert variant.variables == base.variables
    assert variant.fixed == base.fixed
    assert variant.nucleus == base.nucleus
    assert variant.internal_standard == base.internal_standard
    assert variant.standard_ratio == base.standard_ratio
    assert variant.species_info(variant.internal_standard) == base.species_info(
        base.internal_standard
    )
    # same stocks in the same order, same concentrations: the flow plan does not change
    assert [(s.name, list(s.species.values())) for s in variant.stocks] == [
        (s.name, list(s.species.values())) for s in base.stocks
    ]
    assert list(variant.catalysts) == list(base.catalysts)
    for attr in (
        "wavelength_nm",
        "full_flux_umol_s",
        "reactor_volume_ml",
        "inner_diameter_mm",
        "led_fwhm_nm",
    ):
        assert getattr(variant, attr) == getattr(base, attr), attr
    # a different substrate, named consistently everywhere
    assert variant.title != base.title and variant.summary != base.summary
    carrier = variant.stocks[0]
    assert variant.substrate in carrier.species and variant.internal_standard in carrier.species
    assert variant.reagent in variant.stocks[1].species
    keys = {sp.key for sp in variant.species}
    for choice in variant.catalysts:
        mech = variant.mechanism(choice)
        assert (mech.substrate, mech.reagent, mech.product) == (
            variant.substrate,
            variant.reagent,
            variant.product,
        )
        assert set(mech.species()) <= keys
        assert mech != base.mechanism(choice)


def _clean(preset: Preset, block: dict) -> None:
    """Only the quantified signal has lines inside the product and standard regions."""
    b1 = b1_for_nucleus(preset.nucleus)
    for role, key in (("product", preset.product), ("internal_standard", preset.internal_standard)):
        lo, hi = block[role]["region"]
        for sp in preset.species:
            for sig in sp.signals:
                lines = Signal(sig.shift_ppm, sig.nuclei, 1.0, sig.multiplicity, sig.j_hz).lines(b1)
                inside = [s for s, _ in lines if lo <= s <= hi]
                if sp.key == key and sig is sp.signals[0]:
                    assert len(inside) == len(lines), (role, sp.key)
                else:
                    assert not inside, (role, sp.key, sig)


@pytest.mark.parametrize("name", NAMES)
def test_own_and_original_analysis_regions_are_clean(name: str) -> None:
    """The variant's suggested block works, and so does the original's: a campaign can keep
    its protocol's analysis block when it moves to the variant."""
    variant = VARIANTS[name]
    _clean(variant, variant.analysis_block())
    _clean(variant, _original(variant).analysis_block())


@pytest.mark.parametrize("name", NAMES)
def test_stored_optima_reproduce_and_a_quick_search_finds_nothing_better(name: str) -> None:
    variant = VARIANTS[name]
    assert set(variant.optima) == {"yield", "throughput"}
    for opt in variant.optima.values():
        r = predict(variant, opt.conditions)
        assert r["yield"] == pytest.approx(opt.yield_percent, abs=0.01)
        assert r["throughput"] == pytest.approx(opt.throughput_mmol_h, rel=1e-3)
    stored = variant.optima["yield"]
    # the same cheap re-check as the presets' (tests/simulator/test_reactions.py)
    choice = [stored.conditions["photocatalyst"]] if "photocatalyst" in stored.conditions else None
    fresh = find_optimum(variant, "yield", n_samples=64, n_polish=1, seed=7, choices=choice)
    assert fresh.yield_percent <= stored.yield_percent + 0.05
    assert fresh.yield_percent >= stored.yield_percent - 1.0


@pytest.mark.parametrize("name", NAMES)
def test_the_optimum_moved_but_the_tasks_stay_related(name: str) -> None:
    variant = VARIANTS[name]
    base = _original(variant)
    old, new = base.optima["yield"], variant.optima["yield"]
    moved = np.linalg.norm(_unit(base, dict(old.conditions)) - _unit(base, dict(new.conditions)))
    other_catalyst = old.conditions.get("photocatalyst") != new.conditions.get("photocatalyst")
    assert moved >= 0.15 or other_catalyst, moved
    assert abs(new.yield_percent - old.yield_percent) < 10.0
    # the earlier substrate's best conditions are still decent here, and the other way round
    assert predict(variant, old.conditions)["yield"] >= 0.6 * new.yield_percent
    assert predict(base, new.conditions)["yield"] >= 0.6 * old.yield_percent
    # inside the box, as the presets' optima are: a campaign can reach it
    for var in variant.variables:
        if not var.categorical:
            span = var.high - var.low  # type: ignore[operator]
            x = float(new.conditions[var.name])
            assert var.low + 0.02 * span < x < var.high - 0.02 * span, (var.name, x)  # type: ignore[operator]


def test_the_catalyst_ranking_changes_with_the_acceptor() -> None:
    variant = VARIANTS["photoredox-catalyst-choice-b"]
    old_best = PRESETS["photoredox-catalyst-choice"].optima["yield"].conditions["photocatalyst"]
    new = variant.optima["yield"]
    assert new.conditions["photocatalyst"] != old_best
    # a quick search with the original's best catalyst stays well below (dense: 80.3 %)
    quick = find_optimum(variant, "yield", n_samples=64, n_polish=1, seed=7, choices=[old_best])
    assert quick.yield_percent < new.yield_percent - 2.0


@pytest.mark.parametrize("name", NAMES)
def test_dark_control_gives_no_product(name: str) -> None:
    variant = VARIANTS[name]
    result = predict(variant, dict(variant.optima["yield"].conditions, light=0.0))
    assert result["yield"] == pytest.approx(0.0, abs=1e-9)


runner = CliRunner()


def test_cli_predicts_and_lists_variants() -> None:
    cond = dict(VARIANTS["hat-alkylation-b"].optima["yield"].conditions)
    result = runner.invoke(
        app,
        ["reactions", "predict", "hat-alkylation-b", "-c", json.dumps(cond), "--no-concentrations"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["yield"] == pytest.approx(
        VARIANTS["hat-alkylation-b"].optima["yield"].yield_percent, abs=0.01
    )
    listed = runner.invoke(app, ["reactions", "list", "--json", "--variants"])
    assert listed.exit_code == 0, listed.output
    assert {p["name"] for p in json.loads(listed.output)} == set(PRESETS) | set(VARIANTS)


@pytest.mark.parametrize("name", NAMES)
async def test_the_virtual_lab_serves_a_variant_end_to_end(name: str, tmp_path: Path) -> None:
    """Pumps, reactor and NMR over sockets, the spectrum analysed with the variant's block:
    the measured yield is the variant's model, not the original's."""
    variant = VARIANTS[name]
    conditions = dict(variant.optima["yield"].conditions, residence_time=3.0)
    platform = SimulatedPlatform(speed=500, data_root=tmp_path, reaction=name, seed=3)
    set_clock(platform.clock)
    async with platform, connected(platform) as devices:
        assert platform.world.preset is variant
        outcome = await run_experiment(devices, platform, variant, conditions)
    assert outcome.status != "rejected", outcome.reasons
    assert outcome.predicted_yield > 15
    assert outcome.measured_yield == pytest.approx(outcome.predicted_yield, abs=2.0)
    original = predict(_original(variant), conditions)["yield"]
    assert abs(original - outcome.predicted_yield) > 1.0
