"""The platform's safe temperature, applied by ``Lab.safe_state`` and by the supervisor's
``make_safe`` to the simulated lab through real sockets, and read back from the
simulators (never from a driver)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from robochem.clock import set_clock
from robochem.protocols.load import parse_platform
from robochem.protocols.platform import Platform
from robochem.protocols.runtime.lab import connect_lab, safety_devices
from robochem.protocols.runtime.supervisor import make_safe
from robochem.simulator.runner import SimulatedPlatform

PUMPS = ("pump-substrate", "pump-reagent", "pump-catalyst", "pump-solvent")


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimulatedPlatform]:
    lab = SimulatedPlatform(speed=10, data_root=tmp_path / "nmr", reaction=None)
    await lab.start()
    set_clock(lab.clock)
    try:
        yield lab
    finally:
        await lab.stop()
        set_clock(None)


def platform(sim: SimulatedPlatform, safe_temperature: str | None) -> Platform:
    data = sim.platform()
    if safe_temperature is not None:
        data["safe_state"] = {"temperature": safe_temperature}
    return parse_platform(yaml.safe_dump(data), "lab.yaml")


async def running_lab(sim: SimulatedPlatform, plat: Platform) -> None:
    """Pumps running, light on, reactor held at 40 degC, collection valve to collect."""
    async with await connect_lab(plat, only=safety_devices(plat)) as lab:
        for name in PUMPS:
            await lab.pump(name).set_flow_rate(0.5)
            await lab.pump(name).start()
        assert lab.light is not None and lab.temperature is not None
        await lab.light.set_intensity(60)
        await lab.light.light_on()
        await lab.temperature.set_setpoint(40)
        await lab.temperature.run()
        await lab.valve("valve-collect").set_position("2")
        state = sim.state()["devices"]
        assert all(state[p]["running"] for p in PUMPS)
        assert state["reactor"]["temperature"] == {**state["reactor"]["temperature"],
                                                   "control": True, "setpoint_c": 40.0}  # fmt: skip
        # the devices keep it all up when the driver disconnects (as when a process dies)
        lab.light._heartbeat_task.cancel()  # type: ignore[attr-defined, union-attr]


def assert_safe(sim: SimulatedPlatform) -> None:
    state = sim.state()["devices"]
    for name in PUMPS:
        assert state[name]["running"] is False and state[name]["flow_ml_min"] == 0.0, name
    assert state["reactor"]["light"] == {"on": False, "output_percent": 0.0}
    assert state["valve-collect"]["position"] == "1"


@pytest.mark.parametrize(
    ("safe", "control", "setpoint"),
    [(None, False, 40.0), ("off", False, 40.0), ("25 degC", True, 25.0)],
)
async def test_lab_safe_state_applies_the_platform_temperature(
    sim: SimulatedPlatform, safe: str | None, control: bool, setpoint: float
) -> None:
    plat = platform(sim, safe)
    async with await connect_lab(plat, only=safety_devices(plat)) as lab:
        await lab.temperature.set_setpoint(40)  # type: ignore[union-attr]
        await lab.temperature.run()  # type: ignore[union-attr]
        await lab.safe_state()  # between experiments: temperature untouched
        assert sim.state()["devices"]["reactor"]["temperature"]["control"] is True
        report = await lab.safe_state(temperature=True)
        assert report.ok, report.failed
    temperature = sim.state()["devices"]["reactor"]["temperature"]
    assert temperature["control"] is control and temperature["setpoint_c"] == setpoint


@pytest.mark.parametrize(
    ("safe", "control", "setpoint"), [(None, False, 40.0), ("25 degC", True, 25.0)]
)
async def test_supervisor_make_safe_finds_the_lab_running_and_leaves_it_safe(
    sim: SimulatedPlatform, safe: str | None, control: bool, setpoint: float
) -> None:
    plat = platform(sim, safe)
    await running_lab(sim, plat)
    findings = await make_safe(plat)
    assert not findings.failed, findings.failed
    assert_safe(sim)
    temperature = sim.state()["devices"]["reactor"]["temperature"]
    assert temperature["control"] is control and temperature["setpoint_c"] == setpoint
    # what it found: the collection valve where the dead controller left it, the setpoints
    assert findings.found["valve-collect"] == {"position": "2"}
    assert findings.found["pump-substrate"]["flow_ml_min"] == pytest.approx(0.5)
    assert findings.found["reactor"]["temperature"]["setpoint_c"] == 40.0
    assert "nmr" not in findings.found  # the NMR holds no energy: not touched
    assert findings.safe_after_s < 5.0
