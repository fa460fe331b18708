"""One rule for a step whose device is missing (issue 30): a validation error before the run,
at the field that makes the step, naming the device kind needed and what the platform has.

Before, a reactor without temperature control skipped WaitTemperature silently and tripped
an interlock on SetTemperature mid-run; one without a light source made LightOff a no-op.
"""

from __future__ import annotations

import pytest
from protocol_helpers import BASE, SIMULATED, edit, problems

from robochem.protocols.checks import reactor_capabilities
from robochem.protocols.load import load_platform, parse_platform
from robochem.protocols.platform import Platform


def _with_reactor(driver: str) -> Platform:
    text = SIMULATED.read_text(encoding="utf-8")
    assert text.count("driver: modbus-photoreactor") == 1
    text = text.replace("driver: modbus-photoreactor", f"driver: {driver}")
    if driver == "manson-hcs":  # its required options (drivers/options.py)
        text = text.replace("    options:\n      watchdog_s: 5", "    options:\n      "
                            "led_voltage_v: 3.6\n      max_current_a: 1.0\n      watchdog_s: 5")
    return parse_platform(text, "pl")


def test_the_simulated_photoreactor_has_both() -> None:
    found = reactor_capabilities(load_platform(SIMULATED))
    assert found is not None and found[0] == {"light", "temperature"}
    assert problems(BASE, load_platform(SIMULATED)) == []


@pytest.mark.parametrize("driver", ["modbus-led", "manson-hcs"])
def test_temperature_steps_without_a_temperature_controller_are_refused(driver: str) -> None:
    (line,) = problems(BASE, _with_reactor(driver))
    assert line == (
        "p.yaml:27:3: fixed.temperature: the SetTemperature and WaitTemperature steps need a "
        "temperature controller on the reactor; platform 'simulated-lab' has none: its "
        f"reactor 'reactor' (driver {driver!r}) is a light source only"
    )


def test_a_temperature_variable_is_named_when_it_makes_the_steps() -> None:
    text = edit("fixed:\n  temperature: 25 degC\n", "")
    text = edit(
        "  loading: {type: loading",
        "  temp: {type: temperature, low: 20 degC, high: 40 degC}\n  loading: {type: loading",
        text,
    )
    (line,) = problems(text, _with_reactor("modbus-led"))
    assert line.startswith("p.yaml:25:3: variables.temp: the SetTemperature and WaitTemperature")


def test_light_steps_without_a_light_source_are_refused() -> None:
    """LightOff ends the reaction of every experiment: without a light source it was a
    silent no-op; now the protocol is refused at its light variable."""
    (line,) = problems(BASE, _with_reactor("omron-e5cc"))
    assert line == (
        "p.yaml:23:3: variables.light: the SetLight and LightOff steps need a light source on "
        "the reactor; platform 'simulated-lab' has none: its reactor 'reactor' (driver "
        "'omron-e5cc') is a temperature controller only"
    )


def test_a_reactor_that_is_neither_reports_both_steps() -> None:
    lines = problems(BASE, _with_reactor("knauer-valve"))
    assert len(lines) == 2
    assert all(
        "is a valve, neither a light source nor a temperature controller" in x for x in lines
    )
    assert lines[0].startswith("p.yaml:23:3: variables.light: the SetLight and LightOff")
    assert lines[1].startswith("p.yaml:27:3: fixed.temperature: the SetTemperature and")
