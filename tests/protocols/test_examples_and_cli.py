"""Shipped examples validate and drive the optimiser; `robochem validate` / `schema` CLI."""

from __future__ import annotations

import json

import pytest
from protocol_helpers import BASE, EXAMPLES, SIMULATED, edit
from typer.testing import CliRunner

from robochem.analysis.config import AnalysisConfig
from robochem.cli import app
from robochem.optimizer import Optimizer
from robochem.protocols.load import load_protocol
from robochem.protocols.model import SlugMode, SteadyStateMode

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_examples_cover_the_presets_and_modes(sim_platform) -> None:
    from robochem.simulator.reactions import PRESETS

    assert {p.stem for p in EXAMPLE_FILES} == set(PRESETS)
    protocols = [load_protocol(p, sim_platform) for p in EXAMPLE_FILES]
    modes = {type(p.execution) for p in protocols}
    assert modes == {SlugMode, SteadyStateMode}
    assert any(len(p.objectives) > 1 for p in protocols)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_is_valid_and_feeds_the_optimizer(path, sim_platform) -> None:
    protocol = load_protocol(path, sim_platform)
    assert isinstance(protocol.analysis, AnalysisConfig)
    optimizer = Optimizer.from_spec(protocol.to_optimizer_spec())
    points = optimizer.ask(protocol.optimizer.batch_size)
    assert len(points) == protocol.optimizer.batch_size
    assert set(points[0]) == set(protocol.variables)


def test_two_objective_protocol_can_ask_for_ehvi(sim_platform, tmp_path) -> None:
    text = (EXAMPLES / "hat-alkylation.yaml").read_text()
    path = tmp_path / "hat-ehvi.yaml"
    path.write_text(edit("strategy: parego", "strategy: ehvi", text))
    protocol = load_protocol(path, sim_platform)
    optimizer = Optimizer.from_spec(protocol.to_optimizer_spec())
    assert optimizer.strategy == "ehvi"


def test_example_variables_match_the_preset(sim_platform) -> None:
    from robochem.simulator.reactions import PRESETS

    for path in EXAMPLE_FILES:
        protocol = load_protocol(path, sim_platform)
        preset = PRESETS[path.stem]
        continuous = {v.name for v in preset.variables if not v.categorical}
        assert continuous <= set(protocol.variables), path.stem


runner = CliRunner()


def test_validate_ok_prints_a_summary() -> None:
    path = EXAMPLES / "hat-alkylation.yaml"
    result = runner.invoke(app, ["validate", str(path), "--platform", str(SIMULATED)])
    assert result.exit_code == 0, result.output
    assert "protocol 'hat-alkylation': OK" in result.stdout
    assert "total flow 0.195 .. 3.9 mL/min" in result.stdout
    assert "substrate: up to" in result.stdout


def test_validate_errors_go_to_stderr_with_exit_1(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit("high: 20 min}", "hihg: 20 min}", edit("low: 2 min", "low: 2 kg", BASE)))
    result = runner.invoke(app, ["validate", str(bad), "--platform", str(SIMULATED)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{bad}:22:47: variables.residence_time.low: '2 kg' is a mass, expected a time such "
        "as '2 min'",
        f"{bad}:22:53: variables.residence_time.hihg: unknown key 'hihg'; did you mean 'high'?",
        "2 problems found",
    ]


def test_validate_reports_a_broken_platform_file(tmp_path) -> None:
    plat = tmp_path / "lab.yaml"
    plat.write_text(SIMULATED.read_text().replace("simulated: true", "simulated: nope"))
    result = runner.invoke(
        app, ["validate", str(EXAMPLES / "hat-alkylation.yaml"), "--platform", str(plat)]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{plat}:15:12: simulated: got 'nope'; input should be")


def test_validate_missing_file(tmp_path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "none.yaml")])
    assert result.exit_code == 1
    assert "none.yaml:1:1: cannot read the file" in result.stderr


def test_validate_without_platform(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BASE)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0
    assert "no --platform given" in result.stdout


def test_schema_commands() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert {"robochem", "stocks", "variables", "objectives", "analysis"} <= set(
        schema["properties"]
    )
    assert "measure" not in schema["$defs"]["Objective"].get("required", [])
    conc = schema["$defs"]["LimitingReagent"]["properties"]["concentration"]
    assert {"type": "string", "examples": ["0.05 M"]} in conc["anyOf"]
    result = runner.invoke(app, ["schema", "--platform"])
    assert result.exit_code == 0
    assert "fluidics" in json.loads(result.stdout)["properties"]


def test_schema_accepts_the_examples() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json.loads(runner.invoke(app, ["schema"]).stdout)
    for path in EXAMPLE_FILES:
        data = yaml.safe_load(path.read_text())
        data = json.loads(json.dumps(data, default=str))  # dates as text
        jsonschema.validate(data, schema)
