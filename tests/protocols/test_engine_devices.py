"""One rule for a step whose device is missing (issue 30): the checks refuse such a
protocol before the run; a lab connected without the device trips the step, never skips it.
Before, ``WaitTemperature`` was skipped silently, ``LightOff`` was a silent no-op and only
``SetTemperature`` tripped."""

from __future__ import annotations

import pytest
from engine_kit import Env

from robochem.protocols.runtime.engine import Engine, InterlockTrip
from robochem.protocols.runtime.lab import Lab
from robochem.protocols.steps import LightOff, SetLight, SetTemperature, Step, WaitTemperature


@pytest.mark.parametrize(
    "step", [SetTemperature(30.0), WaitTemperature(30.0), SetLight(50.0), LightOff()]
)
async def test_a_step_whose_device_is_not_connected_trips(env: Env, step: Step) -> None:
    reactor = env.platform.fluidics.reactor.device
    without = Lab(env.platform, {n: d for n, d in env.lab.devices.items() if n != reactor})
    engine = Engine(env.db, env.bus, without, env.campaign(), clock=env.sim.clock)
    with pytest.raises(InterlockTrip) as trip:
        await engine.run_step(step)
    assert trip.value.kind == "configuration"
    assert trip.value.device == reactor
    assert "does not have" in trip.value.message


async def test_the_same_steps_run_on_the_connected_lab(env: Env) -> None:
    engine = env.engine(env.campaign())
    await engine.run_step(SetLight(50.0))
    assert env.sim.servers["reactor"].led_enabled
    await engine.run_step(LightOff())
    assert not env.sim.servers["reactor"].led_enabled
