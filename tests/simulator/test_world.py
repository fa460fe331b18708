"""The virtual lab's physics as the drivers see it: pressure, blockage, lamp, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robochem.clock import set_clock
from robochem.drivers import DeviceFault, open_device
from robochem.simulator.reactions import get_preset
from robochem.simulator.runner import SimulatedPlatform
from robochem.simulator.world import ScheduledFault, parse_fault


@pytest.fixture
async def platform(tmp_path: Path):
    lab = SimulatedPlatform(speed=1000, data_root=tmp_path, reaction="hat-alkylation", seed=7)
    set_clock(lab.clock)
    async with lab:
        yield lab


def url(lab: SimulatedPlatform, name: str) -> str:
    return lab.device_urls()[name]["url"]


async def test_pump_pressure_reading_follows_the_flow_through_the_line(platform) -> None:
    # A partly restricted transfer line, so the viscous loss shows at 1 bar resolution.
    platform.world.path.blockage["transfer"] = 2e5
    async with open_device("knauer-azura", url(platform, "pump-solvent")) as pump:
        await pump.set_flow_rate(0.5)
        await pump.start()
        await platform.clock.sleep(5)
        low = await pump.get_pressure()
        await pump.set_flow_rate(4.0)
        await platform.clock.sleep(5)
        high = await pump.get_pressure()
        await pump.stop()
    assert low is not None and high is not None
    bpr = platform.world.path.bpr_bar
    assert low >= bpr and high > low
    # Hagen-Poiseuille: the loss above the regulator scales with flow (1 bar resolution).
    assert high - bpr == pytest.approx(8 * (low - bpr), abs=1.5)


async def test_a_blockage_raises_pressure_until_the_pump_trips_at_pmax(platform) -> None:
    async with open_device("knauer-azura", url(platform, "pump-solvent")) as pump:
        await pump.set_max_pressure(50)
        await pump.set_flow_rate(1.0)
        await pump.start()
        await platform.clock.sleep(10)
        assert (await pump.status()).state.value == "running"
        platform.world.path.blockage["transfer"] = 1e7
        await platform.clock.sleep(10)
        with pytest.raises(DeviceFault):
            await pump.status()
    assert platform.servers["pump-solvent"].flow_ml_min == 0.0


async def test_the_lamp_feeds_the_kinetics_and_degrades_on_schedule(tmp_path: Path) -> None:
    lab = SimulatedPlatform(
        speed=1000,
        data_root=tmp_path,
        reaction="hat-alkylation",
        faults=[ScheduledFault("lamp_degradation", 0.0, {"percent_per_hour": 50.0})],
    )
    set_clock(lab.clock)
    async with lab, open_device("modbus-photoreactor", url(lab, "reactor")) as reactor:
        await reactor.light.set_intensity(80)
        await reactor.light.light_on()
        await lab.clock.sleep(60)
        lab.world.update()
        early, t_early = lab.world.lamp_factor, lab.clock.now() - lab.world.started_at
        flux = lab.world.reactor_conditions().photon_flux_umol_s
        await lab.clock.sleep(3600)
        lab.world.update()
        late, t_late = lab.world.lamp_factor, lab.clock.now() - lab.world.started_at
        await reactor.light.light_off()
        await lab.clock.sleep(5)
        dark = lab.world.reactor_conditions().photon_flux_umol_s
    full = get_preset("hat-alkylation").full_flux_umol_s
    assert early == pytest.approx(1 - 0.5 * t_early / 3600, abs=1e-3)
    assert late == pytest.approx(1 - 0.5 * t_late / 3600, abs=1e-3) and late < 0.55
    assert flux == pytest.approx(0.8 * full * early, rel=0.01)
    assert dark == 0.0


def test_the_same_seed_gives_the_same_spectrum(tmp_path: Path) -> None:
    def fid(seed: int) -> np.ndarray:
        lab = SimulatedPlatform(speed=1000, data_root=tmp_path, reaction="cf3-trifluoromethylation")
        from robochem.simulator.reactions import get_preset
        from robochem.simulator.world import VirtualLab

        class FakeNMR:
            clock = lab.clock
            noise_sd = 0.01
            spectrum_source = None

        class FakeReactor:
            wavelength_nm = 0
            photon_flux_full_umol_s = 0.0

        preset = get_preset("cf3-trifluoromethylation")
        from robochem.simulator.runner import reference_layout

        layout = reference_layout(preset)
        servers = {"nmr": FakeNMR(), "reactor": FakeReactor()}
        world = VirtualLab.__new__(VirtualLab)
        # Only the spectrum synthesis is exercised: no device servers are needed.
        world.preset, world.layout, world.servers = preset, layout, servers
        world.rng = np.random.default_rng(seed)
        world.phase_error = True
        world.clock = lab.clock
        world.cell_average = lambda start, end: ({"PhCF3": 0.02, "NMP": 0.05}, 1.0)
        context = {
            "nucleus": "19F",
            "b1_freq_mhz": 40.9,
            "n_points": 4096,
            "bandwidth_hz": 20000.0,
            "center_ppm": -100.0,
            "scans": 4,
            "options": {"RepetitionTime": "10"},
            "time": 0.0,
        }
        return world.spectrum(context)

    assert np.array_equal(fid(1), fid(1))
    assert not np.array_equal(fid(1), fid(2))


@pytest.mark.parametrize(
    ("text", "kind", "at", "params"),
    [
        (
            "blockage@1800:segment=transfer,factor=1e5",
            "blockage",
            1800.0,
            {"segment": "transfer", "factor": 1e5},
        ),
        (
            "lamp_degradation@600:percent_per_hour=30",
            "lamp_degradation",
            600.0,
            {"percent_per_hour": 30.0},
        ),
        ("lamp_failure@60", "lamp_failure", 60.0, {}),
    ],
)
def test_fault_schedule_syntax(text: str, kind: str, at: float, params: dict) -> None:
    fault = parse_fault(text)
    assert (fault.kind, fault.at_s, fault.params) == (kind, at, params)


@pytest.mark.parametrize("text", ["explode@10", "blockage", "blockage@soon", "blockage@1:x"])
def test_bad_fault_schedules_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="fault"):
        parse_fault(text)
