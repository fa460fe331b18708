"""Recipe expansion: RoboChem's worked examples, steady-state flows, corners."""

from __future__ import annotations

import pytest
from protocol_helpers import BASE, edit

from robochem.protocols.checks import reagent_needs
from robochem.protocols.load import parse_protocol
from robochem.protocols.recipe import (
    corners,
    expand,
    flow_for_residence_time,
    format_conditions,
    mixture_concentrations,
    slug_volumes,
    stock_flows,
    throughput_mmol_h,
)

STOCKS = {"A": 2.0, "B": 12.3, "cat": 0.015}


def test_robochem_slug_recipe() -> None:
    # Platform_/Concentration_check.py: [A] 0.2 M, 18 equiv B, 0.03 equiv catalyst, 0.65 mL
    conc = {"A": 0.2, "B": 0.2 * 18, "cat": 0.2 * 0.03}
    volumes, solvent = slug_volumes(0.65, conc, STOCKS)
    assert volumes["A"] == pytest.approx(0.065)
    assert volumes["B"] == pytest.approx(0.190, abs=5e-4)
    assert volumes["cat"] == pytest.approx(0.260)
    assert solvent == pytest.approx(0.135, abs=5e-4)


def test_robochem_throughput_and_flow() -> None:
    assert flow_for_residence_time(3.9, 600) == pytest.approx(0.39)
    assert throughput_mmol_h(0.1, 3.9, 600, 80) == pytest.approx(1.872)


def test_steady_state_flows_and_negative_solvent() -> None:
    flows, solvent = stock_flows(0.39, {"A": 0.2, "B": 3.6, "cat": 0.006}, STOCKS)
    assert flows == pytest.approx({"A": 0.039, "B": 0.39 * 3.6 / 12.3, "cat": 0.156})
    assert solvent == pytest.approx(0.39 - sum(flows.values()))
    _, solvent = stock_flows(1.0, {"A": 1.5}, {"A": 1.0})
    assert solvent == pytest.approx(-0.5)


WORKED = """\
robochem: 1
metadata: {name: robochem-worked-example}
stocks:
  A: {concentration: 2.0 M, role: limiting, pump: pump-substrate, available: 100 mL}
  B: {concentration: 12.3 M, equivalents: 18 equiv, pump: pump-reagent, available: 100 mL}
  cat: {concentration: 15 mM, role: catalyst, pump: pump-catalyst, port: "1",
        available: 100 mL}
solvent: {name: MeCN, pump: pump-solvent, available: 1 L}
variables:
  tau: {type: residence_time, low: 2 min, high: 20 min}
  conc: {type: concentration, stock: A, low: 0.05 M, high: 0.2 M}
  cat_loading: {type: loading, stock: cat, low: 1 mol%, high: 3 mol%}
fixed: {light: 100 %, temperature: 25 degC}
objectives: {yield: {goal: maximize}}
optimizer: {budget: 10}
analysis:
  internal_standard: {name: TMB, region: [5.99, 6.19], nuclei: 3, concentration: 0.05 M}
  product: {name: product, region: [4.32, 4.64], nuclei: 1}
execution: {mode: slug, volume: 650 uL}
cleaning: {volume: 2 mL, flow: 4 mL/min}
safety: {max_pressure: 20 bar, temperature: [5 degC, 70 degC]}
"""


def test_expand_slug_mode_worked_example(sim_platform) -> None:
    protocol = parse_protocol(WORKED, "w.yaml", sim_platform)
    recipe = expand(protocol, sim_platform, {"tau": 600.0, "conc": 0.2, "cat_loading": 0.03})
    assert recipe.feasible
    assert recipe.slug_volumes_ml == pytest.approx({"A": 0.065, "B": 0.1902, "cat": 0.26}, abs=1e-4)
    assert recipe.slug_solvent_ml == pytest.approx(0.1348, abs=1e-4)
    assert recipe.total_flow_ml_min == pytest.approx(0.39)
    assert recipe.carrier_flow_ml_min == pytest.approx(0.39)
    # assembled at the reaction flow, in the slug's ratios
    assert recipe.pump_flows_ml_min["pump-substrate"] == pytest.approx(0.039)
    assert recipe.pump_flows_ml_min["pump-catalyst"] == pytest.approx(0.156)
    assert recipe.light_percent == 100.0 and recipe.temperature_c == 25.0
    assert recipe.concentrations == pytest.approx({"A": 0.2, "B": 3.6, "cat": 0.006})
    # 0.65 mL assembled, then its centre pushed to the cell's centre at Q:
    # mixer 0.05 + reactor 3.9 + transfer 0.5 + cell/2 0.05 - slug/2 0.325 = 4.175 mL
    assert recipe.push_volume_ml == pytest.approx(4.175)
    assert recipe.wait_s == pytest.approx(60 * 0.65 / 0.39 + 60 * 4.175 / 0.39)
    assert recipe.solvent_use_ml == pytest.approx(recipe.slug_solvent_ml + 4.175 + 2.0)


def test_expand_reports_problems_without_clamping(sim_platform) -> None:
    protocol = parse_protocol(WORKED, "w.yaml", sim_platform)
    recipe = expand(protocol, sim_platform, {"tau": 600.0, "conc": 0.4, "cat_loading": 0.03})
    assert not recipe.feasible
    assert recipe.slug_solvent_ml == pytest.approx(0.65 - 2 * 0.515, abs=1e-3)
    assert "solvent would be" in recipe.problems[0]


def test_steady_state_expansion(sim_platform) -> None:
    protocol = parse_protocol(BASE, "p.yaml", sim_platform)
    recipe = expand(
        protocol,
        sim_platform,
        {"residence_time": 600.0, "light": 50.0, "conc": 0.1, "loading": 0.01},
    )
    q = 0.39
    assert recipe.total_flow_ml_min == pytest.approx(q)
    assert recipe.stock_flows_ml_min == pytest.approx(
        {"substrate": q * 0.1, "donor": q * 0.5 / 12.3, "catalyst": q * 0.001 / 0.02}
    )
    assert recipe.pump_flows_ml_min["pump-solvent"] == pytest.approx(
        q - sum(recipe.stock_flows_ml_min.values())
    )
    flushed = 3 * 3.9 + 0.05 + 0.5 + 0.1  # reactor volumes + mixer + transfer + NMR cell
    assert recipe.wait_s == pytest.approx(60 * flushed / q)
    assert recipe.stock_use_ml["substrate"] == pytest.approx(0.1 * flushed)
    assert recipe.solvent_use_ml == pytest.approx(
        recipe.solvent_flow_ml_min * recipe.wait_s / 60 + 2.0  # + cleaning
    )
    assert recipe.carrier_flow_ml_min is None and recipe.slug_volumes_ml is None


def test_corners_cover_bounds_and_choices(sim_platform) -> None:
    text = edit("fixed:\n", "  solvent_label: {type: categorical, choices: [a, b, c]}\nfixed:\n")
    protocol = parse_protocol(text, "p.yaml", sim_platform)
    cs = corners(protocol)
    assert len(cs) == 2**4 * 3
    assert {c["residence_time"] for c in cs} == {120.0, 1200.0}
    assert format_conditions(protocol, cs[0]) == (
        "{residence_time=2 min, light=10 %, conc=0.05 M, loading=0.5 mol%, solvent_label=a}"
    )


def test_categorical_stock_choice_sets_only_the_chosen_stock(sim_platform) -> None:
    text = edit(
        '    port: "1"\n    available: 50 mL\n',
        '    port: "1"\n    available: 50 mL\n'
        "  catalyst2:\n    concentration: 10 mM\n    role: catalyst\n"
        '    pump: pump-catalyst\n    port: "2"\n    available: 200 mL\n',
    )
    text = edit("stock: catalyst,", "stock: cat_choice,", text)
    text = edit(
        "fixed:\n",
        "  cat_choice: {type: categorical, choices: [catalyst, catalyst2]}\nfixed:\n",
        text,
    )
    protocol = parse_protocol(text, "p.yaml", sim_platform)
    point = {
        "residence_time": 600.0,
        "light": 50.0,
        "conc": 0.1,
        "loading": 0.02,
        "cat_choice": "catalyst2",
    }
    conc = mixture_concentrations(protocol, point)
    assert conc["catalyst"] == 0.0 and conc["catalyst2"] == pytest.approx(0.002)
    recipe = expand(protocol, sim_platform, point)
    assert recipe.pump_flows_ml_min["pump-catalyst"] == pytest.approx(0.39 * 0.002 / 0.01)


def test_reagent_needs_use_the_worst_corner_and_priming(sim_platform) -> None:
    protocol = parse_protocol(BASE, "p.yaml", sim_platform)
    needs = reagent_needs(protocol, sim_platform)
    flushed = 3 * 3.9 + 0.65
    # worst substrate corner: [A] 0.2 M from a 1.0 M stock; 20 experiments; 0.1 mL priming
    assert needs["substrate"] == pytest.approx((0.2 * flushed * 20 + 0.1, 100.0))
    assert needs["catalyst"] == pytest.approx((0.2 * 0.02 / 0.02 * flushed * 20 + 0.1, 50.0))
    assert set(needs) == {"substrate", "donor", "catalyst", "MeCN"}


def test_reagent_needs_bound_the_use_on_a_constraint_boundary(sim_platform) -> None:
    """Under a constraint the worst point lies on its boundary, between corners: the estimate
    must still cover it (the HAT example's catalyst was once estimated from the feasible
    corners only, 26 mL short of what a campaign used)."""
    from protocol_helpers import EXAMPLES

    text = (EXAMPLES / "hat-alkylation.yaml").read_text()
    protocol = parse_protocol(text, "hat.yaml", sim_platform)
    needs = reagent_needs(protocol, sim_platform)
    budget = protocol.optimizer.budget
    priming = sim_platform.fluidics.pumps["pump-catalyst"].dead_volume.value
    # just inside concentration * (1.41 + 50 * catalyst_loading) <= 1 (on it the solvent
    # pump would run below its minimum)
    loading = 0.05
    boundary = {
        "residence_time": 600.0,
        "light": 50.0,
        "catalyst_loading": loading,
        "concentration": 0.98 / (1.41 + 50 * loading),
        "temperature": 30.0,
    }
    recipe = expand(protocol, sim_platform, boundary)
    assert recipe.feasible, recipe.problems
    per_experiment = (needs["catalyst"][0] - priming) / budget
    assert per_experiment >= recipe.stock_use_ml["catalyst"]
    # ... which is well above what the best feasible corner would use
    feasible_best = max(
        expand(protocol, sim_platform, c, check=False).stock_use_ml["catalyst"]
        for c in corners(protocol)
        if c["concentration"] * (1.41 + 50 * c["catalyst_loading"]) <= 1
    )
    assert recipe.stock_use_ml["catalyst"] > 4 * feasible_best
    # every example validates with its shipped volumes under this bound
    for name, (needed, available) in needs.items():
        assert needed <= available, name


def test_optimizer_spec_is_canonical(sim_platform) -> None:
    protocol = parse_protocol(BASE, "p.yaml", sim_platform)
    spec = protocol.to_optimizer_spec()
    assert spec["variables"] == {
        "residence_time": {"low": 120.0, "high": 1200.0},
        "light": {"low": 10.0, "high": 100.0},
        "conc": {"low": 0.05, "high": 0.2},
        "loading": {"low": 0.005, "high": 0.02},
    }
    assert spec["objectives"] == {"yield": {"goal": "maximize"}}
    assert spec["stopping"] == {"budget": 20}
    assert spec["initial_experiments"] == 5
