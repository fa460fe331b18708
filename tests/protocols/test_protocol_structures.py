"""Structures in protocols: a stock's `smiles`, a categorical's `smiles`, and what the
optimiser receives; a bad structure is an error at its line naming the stock."""

from __future__ import annotations

from pathlib import Path

import pytest

from robochem.protocols.errors import ProtocolError
from robochem.protocols.load import parse_protocol

EXAMPLE = Path(__file__).resolve().parents[2] / "protocols/examples/photoredox-catalyst-choice.yaml"
TEXT = EXAMPLE.read_text(encoding="utf-8")
BPY = "c1ccc(-c2ccccn2)nc1"
RU = f'    smiles: "[Ru+2].{BPY}.{BPY}.{BPY}.[Cl-].[Cl-]"\n'


def _issue(text: str) -> tuple[int, str, str]:
    with pytest.raises(ProtocolError) as failure:
        parse_protocol(text, "catalysts.yaml")
    (issue,) = failure.value.issues
    assert issue.file == "catalysts.yaml"
    return issue.line, issue.path, issue.message


def _line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_catalyst_stocks_with_structures_reach_the_optimiser_as_structures() -> None:
    spec = parse_protocol(TEXT).to_optimizer_spec()
    catalyst = spec["variables"]["photocatalyst"]
    assert set(catalyst["smiles"]) == {"cat_4czipn", "cat_ir", "cat_ru", "cat_eosin"}
    assert catalyst["smiles"]["cat_ru"].startswith("[Ru+2]")


def test_an_invalid_stock_structure_is_an_error_at_its_line_naming_the_stock() -> None:
    assert RU in TEXT
    text = TEXT.replace(RU, f'    smiles: "[Ru+2].{BPY}.c1cccc1"\n')
    line, path, message = _issue(text)
    assert line == _line_of(text, "c1cccc1")
    assert path == "stocks.cat_ru.smiles"
    assert message.startswith("stock 'cat_ru': ") and "kekulize" in message


def test_structures_for_some_choices_only_are_refused_naming_the_others() -> None:
    text = TEXT.replace(RU, "")
    line, path, message = _issue(text)
    assert path == "variables.photocatalyst.choices"
    assert line == _line_of(text, "photocatalyst: {type: categorical")
    assert "'cat_ru' has no structure" in message and "or none to search by name" in message


def test_without_structures_the_choices_go_by_name() -> None:
    bare = "".join(line for line in TEXT.splitlines(True) if not line.startswith("    smiles:"))
    spec = parse_protocol(bare).to_optimizer_spec()
    assert spec["variables"]["photocatalyst"] == {
        "choices": ["cat_4czipn", "cat_ir", "cat_ru", "cat_eosin"]
    }


SOLVENT_CHOICE = (
    "  solvent_choice: {type: categorical, choices: [dmf, dmso],\n"
    '                   smiles: {dmf: "CN(C)C=O", dmso: "CS(C)=O"}}\n'
)


def _with_label_choice(variable: str) -> str:
    anchor = "  residence_time: {type: residence_time"
    assert anchor in TEXT
    return TEXT.replace(anchor, variable + anchor, 1)


def test_a_choice_that_is_not_a_stock_carries_its_structure_on_the_variable() -> None:
    spec = parse_protocol(_with_label_choice(SOLVENT_CHOICE)).to_optimizer_spec()
    assert spec["variables"]["solvent_choice"] == {
        "choices": ["dmf", "dmso"], "smiles": {"dmf": "CN(C)C=O", "dmso": "CS(C)=O"}
    }


def test_a_structure_for_an_unknown_choice_is_refused_at_its_key() -> None:
    text = _with_label_choice(SOLVENT_CHOICE.replace("dmso: ", "dmsoo: "))
    line, path, message = _issue(text)
    assert path == "variables.solvent_choice.smiles.dmsoo"
    assert line == _line_of(text, "dmsoo")
    assert "unknown choice 'dmsoo'" in message


def test_a_stock_choice_takes_its_structure_from_the_stock_not_the_variable() -> None:
    old = "  photocatalyst: {type: categorical, choices: [cat_4czipn, cat_ir, cat_ru, cat_eosin]}"
    assert old in TEXT
    text = TEXT.replace(old, old[:-1] + ', smiles: {cat_ru: "C"}}')
    _, path, message = _issue(text)
    assert path == "variables.photocatalyst.smiles"
    assert "stocks.<name>.smiles" in message
