"""Hostile files: refused in one ``FILE:LINE:COL`` line, never a traceback.

The cases are those of benchmarks/hostile_input.py (issue 22: alias bombs, 5,000-deep
nesting, control characters, binary, empty, a 30 MB file, unknown tags, units that do not
parse), each run through ``robochem validate`` as a chemist types it; the benchmark measures
their time and memory. Below them, the YAML door's limits in process: exact bounds, the
size setting, endless input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.hostile_input import CASES, validate
from robochem.protocols.errors import ProtocolError
from robochem.protocols.source import MAX_DEPTH, parse_yaml, read_text, yaml_data
from robochem.protocols.units import UnitError, parse_quantity
from robochem.settings import reset_settings


@pytest.mark.parametrize("name", list(CASES))
def test_validate_refuses_it_in_one_located_line(name: str, tmp_path: Path) -> None:
    path = tmp_path / "protocol.yaml"
    path.write_bytes(CASES[name].make())
    result = validate(path)
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.located
    assert line.startswith(f"{path}:")
    assert CASES[name].expect in result.stderr, result.stderr


def _errors(text: str, **kwargs: int) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        parse_yaml(text, "f.yaml", **kwargs)
    return [str(i) for i in info.value.issues]


def test_nesting_is_refused_one_level_past_the_limit() -> None:
    # the root mapping is the first level
    inner = MAX_DEPTH - 1
    expected: list[object] = []
    for _ in range(inner - 1):
        expected = [expected]
    assert parse_yaml("a: " + "[" * inner + "]" * inner, "f.yaml").data == {"a": expected}
    assert _errors("a: " + "[" * (inner + 1) + "]" * (inner + 1)) == [
        f"f.yaml:1:{4 + inner}: lists and mappings are nested more than {MAX_DEPTH} levels "
        "deep; robochem files need only a few"
    ]


def test_aliases_are_reported_once_with_a_count_and_never_expanded() -> None:
    text = "a: &a [x, y]\nb: [*a, *a, *a]\nc: *a\n"
    assert _errors(text) == [
        "f.yaml:2:5: b.0: aliases ('*a') are not supported; write the value out "
        "(3 more in this file)"
    ]


def test_yaml_own_scalar_tags_are_still_read() -> None:
    data = parse_yaml("a: !!str 1\nb: !!float 2\nc: !!bool true\nd: !!null ''\n", "f").data
    assert data == {"a": "1", "b": 2.0, "c": True, "d": None}


def test_the_size_limit_is_the_max_yaml_bytes_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ROBOCHEM_MAX_YAML_BYTES", "100")
    reset_settings()
    at_limit = "a: " + "x" * 96 + "\n"
    assert len(at_limit) == 100 and parse_yaml(at_limit, "f").data == {"a": "x" * 96}
    over = "a: " + "é" * 49 + "\n"  # 102 bytes in 53 characters: bytes are what count
    assert _errors(over) == [
        "f.yaml:1:1: the file is 102 bytes, over the limit of 100 bytes (setting "
        "max_yaml_bytes); protocol and platform files are a few kB"
    ]
    path = tmp_path / "big.yaml"
    path.write_text(over, encoding="utf-8")
    with pytest.raises(ProtocolError, match="the file is 102 bytes, over the limit of 100"):
        read_text(path)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_input_is_read_only_up_to_the_limit() -> None:
    with pytest.raises(ProtocolError) as info:
        read_text("/dev/zero", max_bytes=1000)
    assert [str(i) for i in info.value.issues] == [
        "/dev/zero:1:1: the file is more, over the limit of 1,000 bytes (setting "
        "max_yaml_bytes); protocol and platform files are a few kB"
    ]


def test_bytes_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes("a: 1\nbé: \xff\n".encode("latin-1").replace(b"\xe9", "é".encode()))
    with pytest.raises(ProtocolError) as info:
        read_text(path)
    (issue,) = info.value.issues
    assert (issue.line, issue.column) == (2, 5)
    assert "not UTF-8 text (byte 0xff" in issue.message


def test_a_lone_surrogate_in_text_from_the_api_is_refused() -> None:
    assert _errors("a: 1\nb: x\udc80\n") == [
        "f.yaml:2:5: U+DC80 is a lone surrogate, which is not a character, which YAML does "
        "not allow; remove it"
    ]


def test_plain_data_of_any_shape_through_the_same_door() -> None:
    assert yaml_data("- a\n- 2\n") == ["a", 2]
    assert yaml_data("# only a comment\n") is None
    with pytest.raises(ProtocolError, match="aliases"):
        yaml_data("- &a x\n- *a\n")


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        (
            "2 furlongs",
            "time",
            "cannot read '2 furlongs': 'furlongs' is not a unit robochem knows; expected a "
            "time such as '2 min'",
        ),
        (
            "5 mmol(",
            "amount",
            "cannot read '5 mmol(' as a quantity; expected an amount of substance such as "
            "'5 mmol'",
        ),
        ("3 kmin", "time", "cannot read '3 kmin': 'kmin' is not a unit robochem knows; "
         "expected a time such as '2 min'"),
        ("1e999 mL", "volume", "'1e999 mL' is not a finite number"),
    ],
)  # fmt: skip
def test_units_that_do_not_parse_say_so(text: str, kind: str, message: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_quantity(text, kind)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [("145 psi", "pressure", 9.9974), ("2 hours", "time", 7200.0), ("5 mol %", "ratio", 0.05),
     ("2.5e-3 M", "concentration", 0.0025), ("1 atm", "pressure", 1.01325)],
)  # fmt: skip
def test_a_labs_units_still_parse(text: str, kind: str, value: float) -> None:
    assert parse_quantity(text, kind) == pytest.approx(value, rel=1e-4)
