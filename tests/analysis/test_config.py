"""The analysis block: parsing, units, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from nmr_test_data import BASIC_ANALYSIS
from pydantic import ValidationError

from robochem.analysis import AnalysisConfig, parse_concentration


@pytest.mark.parametrize(
    ("text", "molar"),
    [("0.05 M", 0.05), ("50 mM", 0.05), ("0.05 mol/L", 0.05), ("50 mmol/L", 0.05), (0.1, 0.1)],
)
def test_concentrations_with_units(text: object, molar: float) -> None:
    assert parse_concentration(text) == pytest.approx(molar)


@pytest.mark.parametrize("bad", ["0.05 g", "-1 M", "0 M", "lots", True, None, "nan M"])
def test_bad_concentrations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_concentration(bad)


def test_example_block_from_issue() -> None:
    cfg = AnalysisConfig.model_validate(
        {
            "nucleus": "1H",
            "internal_standard": {
                "name": "TMB",
                "region": [6.20, 5.95],
                "nuclei": 3,
                "concentration": "0.05 M",
            },
            "product": {"name": "product", "region": [7.35, 7.05], "nuclei": 2},
            "limiting_reagent": {"concentration": "0.1 M"},
        }
    )
    assert cfg.internal_standard.region == (5.95, 6.20)  # either order accepted
    assert cfg.product.region == (7.05, 7.35)
    assert cfg.internal_standard.concentration == pytest.approx(0.05)
    assert cfg.limiting_reagent.concentration == pytest.approx(0.1)
    assert cfg.internal_standard.nominal_shift == pytest.approx(6.075)
    assert [role for role, _ in cfg.species()] == ["internal_standard", "product"]


def test_unknown_keys_rejected() -> None:
    block = {**BASIC_ANALYSIS, "colour": "blue"}
    with pytest.raises(ValidationError):
        AnalysisConfig.model_validate(block)
    block = {**BASIC_ANALYSIS, "product": {"name": "p", "region": [7, 7.2], "nuclei": 1, "x": 1}}
    with pytest.raises(ValidationError):
        AnalysisConfig.model_validate(block)


def test_overlapping_regions_rejected() -> None:
    block = {**BASIC_ANALYSIS, "product": {"name": "p", "region": [6.1, 6.5], "nuclei": 1}}
    with pytest.raises(ValidationError, match="overlap"):
        AnalysisConfig.model_validate(block)


def test_substrate_and_side_products() -> None:
    block = {
        **BASIC_ANALYSIS,
        "limiting_reagent": {
            "name": "ArBr",
            "concentration": "100 mM",
            "region": [7.6, 7.9],
            "nuclei": 2,
        },
        "side_products": [{"name": "dimer", "region": [8.0, 8.2], "nuclei": 1}],
    }
    cfg = AnalysisConfig.model_validate(block)
    assert [r for r, _ in cfg.species()] == [
        "internal_standard",
        "product",
        "substrate",
        "side_product",
    ]
    half = {**block, "limiting_reagent": {"concentration": "0.1 M", "region": [7.6, 7.9]}}
    with pytest.raises(ValidationError):
        AnalysisConfig.model_validate(half)


def test_from_yaml_accepts_block_or_protocol(tmp_path: Path) -> None:
    text = """
nucleus: 19F
internal_standard: {name: PhCF3, region: [-63.5, -64.0], nuclei: 3, concentration: 50 mM}
product: {name: product, region: [-110, -112], nuclei: 1}
limiting_reagent: {concentration: 0.1 M}
"""
    (tmp_path / "a.yaml").write_text(text)
    indented = "\n".join("  " + line for line in text.strip().splitlines())
    (tmp_path / "p.yaml").write_text("name: demo\nanalysis:\n" + indented + "\n")
    a = AnalysisConfig.from_yaml(tmp_path / "a.yaml")
    p = AnalysisConfig.from_yaml(tmp_path / "p.yaml")
    assert a == p
    assert a.nucleus == "19F"
    assert a.internal_standard.concentration == pytest.approx(0.05)
