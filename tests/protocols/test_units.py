"""Quantities: text with units in, canonical floats out; wrong dimensions named."""

from __future__ import annotations

import pytest

from robochem.protocols.units import UnitError, parse_quantity


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("2 min", "time", 120.0),
        ("1.5 h", "time", 5400.0),
        ("650 uL", "volume", 0.65),
        ("650 µL", "volume", 0.65),
        ("1 L", "volume", 1000.0),
        ("60 mL/h", "flow", 1.0),
        ("20 uL/min", "flow", 0.02),
        ("50 mM", "concentration", 0.05),
        ("0.1 mol/L", "concentration", 0.1),
        ("0.1 M", "concentration", 0.1),
        ("25 degC", "temperature", 25.0),
        ("25 °C", "temperature", 25.0),
        ("298.15 K", "temperature", 25.0),
        ("1 MPa", "pressure", 10.0),
        ("80 %", "percent", 80.0),
        (80, "percent", 80.0),
        ("5 mol%", "ratio", 0.05),
        ("5 mol %", "ratio", 0.05),
        ("18 equiv", "ratio", 18.0),
        ("1.5 eq", "ratio", 1.5),
        (1.5, "ratio", 1.5),
        ("450 nm", "wavelength", 450.0),
        ("1.87 mmol/h", "throughput", 1.87),
    ],
)
def test_parse(text, kind, value) -> None:
    assert parse_quantity(text, kind) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("2 kg", "time", "'2 kg' is a mass, expected a time such as '2 min'"),
        (
            "2 mL",
            "flow",
            "'2 mL' is a volume, expected a flow rate (volume per time) such as '0.5 mL/min'",
        ),
        (2, "time", "2 has no unit; write a time with its unit, e.g. '2 min'"),
        ("2", "volume", "'2' has no unit; write a volume with its unit, e.g. '0.65 mL'"),
        (
            "two minutes",
            "time",
            "cannot read 'two minutes' as a quantity; expected a time such as '2 min'",
        ),
        (True, "percent", "expected a percentage such as '80 %', got True"),
        (
            "0.1 M",
            "ratio",
            "'0.1 M' is a concentration (amount per volume), expected "
            "equivalents or mol% such as '1.5 equiv'",
        ),
    ],
)
def test_errors_name_given_and_expected(text, kind, message) -> None:
    with pytest.raises(UnitError) as info:
        parse_quantity(text, kind)
    assert str(info.value) == message
