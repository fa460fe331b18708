"""Issue 4 acceptance: a scripted run through the real drivers against the virtual lab.

Pumps, valves, reactor and NMR are driven over sockets exactly as the engine will drive
them; the yield comes out of the spectrum the NMR simulator wrote, through the analysis.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.virtual_lab import connected, flow_plan, run_experiment
from robochem.clock import set_clock
from robochem.simulator.reactions import get_preset
from robochem.simulator.runner import SimulatedPlatform

SPEED = 100.0
CONDITIONS = {
    "residence_time": 5.0,
    "light": 60.0,
    "catalyst_loading": 2.0,
    "concentration": 0.1,
    "temperature": 25.0,
}


@pytest.fixture
async def lab(tmp_path: Path):
    platform = SimulatedPlatform(speed=SPEED, data_root=tmp_path, reaction="hat-alkylation", seed=3)
    set_clock(platform.clock)
    async with platform, connected(platform) as devices:
        yield platform, devices


@pytest.mark.slow
async def test_yield_from_the_spectrum_matches_the_kinetic_model(lab) -> None:
    platform, devices = lab
    preset = get_preset("hat-alkylation")
    outcome = await run_experiment(devices, platform, preset, CONDITIONS)
    assert outcome.status != "rejected", outcome.reasons
    assert outcome.measured_yield == pytest.approx(outcome.predicted_yield, abs=2.0)
    assert outcome.predicted_yield > 20  # a real reaction, not a trivially small number
    # The simulated time passed at the clock's pace (the world kept up with x100).
    assert outcome.simulated_s / outcome.wall_s > 0.8 * SPEED


@pytest.mark.slow
async def test_light_off_gives_no_product(lab) -> None:
    platform, devices = lab
    preset = get_preset("hat-alkylation")
    dark = {**CONDITIONS, "light": 0.0, "residence_time": 2.0}
    outcome = await run_experiment(devices, platform, preset, dark)
    assert outcome.predicted_yield < 0.01
    if outcome.measured_yield is not None:
        assert abs(outcome.measured_yield) < 1.0
    # Whatever the verdict, the product signal is absent from the cell.
    cell = platform.world.path.contents("nmr_cell").concentrations
    assert cell.get(preset.product, 0.0) < 1e-6
    assert cell[preset.substrate] == pytest.approx(0.1, rel=0.02)


def test_flow_plan_makes_the_requested_concentrations() -> None:
    preset = get_preset("hat-alkylation")
    flows = flow_plan(preset, CONDITIONS)
    q = sum(flows.values())
    assert q == pytest.approx(3.9 / 5.0)
    substrate, reagent, catalyst = preset.stocks
    assert flows["pump-substrate"] * substrate.species["BMN"] / q == pytest.approx(0.1)
    assert flows["pump-reagent"] * reagent.species["THF"] / q == pytest.approx(0.5)
    assert flows["pump-catalyst"] * catalyst.species["TBADT"] / q == pytest.approx(0.002)
