"""Drivers declare their required options; a real platform lacking one is rejected.

A syringe pump on real hardware needs its syringe (diameter and volume): before, the lab
silently gave the Chemyx pump a 10 mL syringe, and the driver names were written in the
protocol runtime. Now each driver class declares what it needs (a pure table that the
language can import without any driver I/O), platform loading rejects a device that lacks
one with FILE:LINE:COL naming the device and the option, and a simulated platform gets the
documented simulator values from the same declaration.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from robochem.drivers.options import REQUIRED_OPTIONS, options_for
from robochem.drivers.registry import DRIVERS, driver_class
from robochem.protocols.errors import ProtocolError
from robochem.protocols.load import load_platform, parse_platform
from robochem.protocols.runtime import lab
from robochem.protocols.scaleup import SYRINGE_DRIVERS

PLATFORMS = Path(__file__).resolve().parents[2] / "protocols" / "platforms"
TEMPLATE = (PLATFORMS / "template.yaml").read_text(encoding="utf-8")
CATALYST_OPTIONS = (
    "    options: {diameter_mm: 14.567, syringe_volume_ml: 10}\n    role: photocatalyst"
)


def _without(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_the_shipped_platforms_give_what_their_drivers_need() -> None:
    load_platform(PLATFORMS / "template.yaml")
    load_platform(PLATFORMS / "simulated.yaml")


def test_a_real_syringe_pump_without_its_syringe_volume_is_rejected() -> None:
    text = _without(
        TEMPLATE, CATALYST_OPTIONS, "    options: {diameter_mm: 14.567}\n    role: photocatalyst"
    )
    with pytest.raises(ProtocolError) as failure:
        parse_platform(text, "my-lab.yaml")
    (issue,) = failure.value.issues
    line = text.splitlines().index("    options: {diameter_mm: 14.567}") + 1
    assert (issue.file, issue.line) == ("my-lab.yaml", line)
    assert issue.path == "devices.pump-catalyst.options"
    assert "'pump-catalyst'" in issue.message and "'syringe_volume_ml'" in issue.message
    assert re.match(
        rf"my-lab\.yaml:{line}:\d+: devices\.pump-catalyst\.options: device 'pump-catalyst'",
        str(failure.value),
    )


def test_a_device_without_options_is_rejected_for_each_missing_option() -> None:
    text = _without(TEMPLATE, CATALYST_OPTIONS, "    role: photocatalyst")
    with pytest.raises(ProtocolError) as failure:
        parse_platform(text, "my-lab.yaml")
    messages = [str(i) for i in failure.value.issues]
    assert len(messages) == 2
    assert "'diameter_mm'" in messages[0] and "'syringe_volume_ml'" in messages[1]
    assert all(m.startswith("my-lab.yaml:") and "'pump-catalyst'" in m for m in messages)


def test_a_simulated_platform_uses_the_documented_simulator_syringe() -> None:
    platform = load_platform(PLATFORMS / "simulated.yaml")
    assert "syringe_volume_ml" not in platform.devices["pump-catalyst"].options
    assert lab._driver_options(platform, "pump-catalyst") == {"syringe_volume_ml": 10.0}
    assert lab._driver_options(platform, "pump-reagent") == {"syringe_volume_ml": 10.0}
    assert lab._driver_options(platform, "pump-substrate") == {"head_ml": 10, "model": "P4.1S"}


def test_a_real_platform_gets_exactly_its_own_options() -> None:
    platform = load_platform(PLATFORMS / "template.yaml")
    for name, spec in platform.devices.items():
        assert lab._driver_options(platform, name) == spec.options


def test_options_required_everywhere_are_required_on_simulated_platforms_too() -> None:
    assert options_for("manson-hcs", {}, simulated=True) == {}
    text = (PLATFORMS / "simulated.yaml").read_text(encoding="utf-8")
    text = _without(text, "    driver: chemyx-fusion\n", "    driver: manson-hcs\n")
    with pytest.raises(ProtocolError, match="'led_voltage_v'"):
        parse_platform(text, "sim.yaml")


def test_each_driver_class_declares_its_entry() -> None:
    for name in DRIVERS:
        cls = driver_class(name)
        assert cls.required_options == REQUIRED_OPTIONS.get(name, ()), name
        for option in cls.required_options:
            assert option.name in cls.__init__.__code__.co_varnames, (name, option.name)


def test_the_runtime_names_no_driver() -> None:
    source = Path(lab.__file__).read_text(encoding="utf-8")
    assert [name for name in DRIVERS if name in source] == []


def test_the_scale_up_syringe_default_is_the_declared_simulator_syringe() -> None:
    assert {
        name: option.simulated
        for name, options in REQUIRED_OPTIONS.items()
        for option in options
        if option.name == "syringe_volume_ml"
    } == SYRINGE_DRIVERS
