"""The YAML layer: positions, duplicates, syntax errors, odd documents."""

from __future__ import annotations

import pytest

from robochem.protocols.errors import ProtocolError
from robochem.protocols.source import parse_yaml


def _errors(text: str) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        parse_yaml(text, "f.yaml")
    return [str(i) for i in info.value.issues]


def test_positions_of_keys_values_and_items() -> None:
    src = parse_yaml("a:\n  b: [1, {c: 2}]\n  d: x\n", "f.yaml")
    assert src.data == {"a": {"b": [1, {"c": 2}], "d": "x"}}
    assert src.locate(("a", "b")) == (2, 6)
    assert src.locate(("a", "b"), at_key=True) == (2, 3)
    assert src.locate(("a", "b", 1, "c")) == (2, 14)
    assert src.locate(("a", "missing")) == (1, 1)  # the key of the mapping that lacks it
    assert src.locate(("a", "b", 1, "zzz")) == (2, 10)


def test_duplicates_at_any_depth_are_all_reported() -> None:
    assert _errors("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n") == [
        "f.yaml:4:3: b.c: duplicate key 'c' (first given at line 3); YAML would silently "
        "keep only the last one",
        "f.yaml:5:1: a: duplicate key 'a' (first given at line 1); YAML would silently keep "
        "only the last one",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "f.yaml:1:1: the file is empty; expected a mapping"),
        ("- a\n- b\n", "f.yaml:1:1: the file must be a mapping of sections (key: value)"),
        (
            "a: 1\n---\nb: 2\n",
            "f.yaml:2:1: YAML syntax error: but found another document "
            "(expected a single document in the stream)",
        ),
        (
            "a:\n\tb: 1\n",
            "f.yaml:2:1: YAML syntax error: found character '\\t' that cannot "
            "start any token (while scanning for the next token)",
        ),
        ("? [a, b]\n: 1\n", "f.yaml:1:3: a key must be a plain name, not a list or mapping"),
    ],
)
def test_odd_documents(text, message) -> None:
    assert _errors(text) == [message]


def test_non_text_keys_become_text() -> None:
    assert parse_yaml("1: a\ntrue: b\n", "f.yaml").data == {"1": "a", "True": "b"}
