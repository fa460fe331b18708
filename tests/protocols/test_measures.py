"""One registry of measures (issue 30): the model, the checks, the engine, the CLI and the
dashboard read it; a measure the analysis cannot produce is rejected at validation."""

from __future__ import annotations

import dataclasses

import pytest
from protocol_helpers import BASE, SIMULATED, edit, problems

from robochem.analysis.result import AnalysisResult
from robochem.protocols import measures
from robochem.protocols.load import load_platform, parse_protocol
from robochem.protocols.measures import MEASURES, canonical_goal, measured, pick_best
from robochem.storage.models import Measurement


def _result(**values: float | None) -> AnalysisResult:
    base = AnalysisResult.rejected([], source={}, software={})
    return dataclasses.replace(base, status="ok", **values)


def test_every_measured_measure_names_a_real_analysis_field_and_column() -> None:
    fields = {f.name for f in dataclasses.fields(AnalysisResult)}
    columns = set(Measurement.__table__.columns.keys())
    assert list(MEASURES) == ["yield", "conversion", "selectivity", "throughput"]
    for m in measured().values():
        assert m.field in fields, m
        assert m.column in columns, m
    assert [m.header for m in measured().values()] == [
        "yield (%)", "conversion (%)", "throughput (mmol/h)"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("spelling", "goal"),
    [("maximize", "maximize"), ("maximise", "maximize"), ("minimize", "minimize"),
     ("minimise", "minimize")],
)  # fmt: skip
def test_one_place_folds_goal_spellings_and_the_model_uses_it(spelling: str, goal: str) -> None:
    assert canonical_goal(spelling) == goal
    text = edit("yield: {goal: maximize}", f"yield: {{goal: {spelling}}}")
    protocol = parse_protocol(text, "p.yaml")
    assert protocol.objectives["yield"].canonical_goal == goal
    assert protocol.to_optimizer_spec()["objectives"]["yield"]["goal"] == goal


def test_an_unknown_goal_spelling_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown goal 'max'"):
        canonical_goal("max")


def test_best_honours_the_goal() -> None:
    assert pick_best("minimise", [40.0, None, 20.0, 60.0]) == 20.0
    assert pick_best("maximize", [40.0, None, 20.0, 60.0]) == 60.0
    assert pick_best("maximize", [None]) is None


def test_each_objective_is_read_from_the_registry() -> None:
    text = edit(
        "yield: {goal: maximize}",
        "yield: {goal: maximize}\n  rate: {measure: throughput, goal: minimize}",
    )
    protocol = parse_protocol(text, "p.yaml")
    result = _result(yield_percent=71.5, throughput_mmol_h=1.25, conversion_percent=90.0)
    assert measures.objective_values(protocol.objectives, result) == {"yield": 71.5, "rate": 1.25}
    assert measures.objective_values(protocol.objectives, None) is None


def test_a_selectivity_objective_is_rejected_at_its_line() -> None:
    """Today's analysis gives no selectivity: the engine would tell the optimiser a failure
    for every experiment. The protocol is refused before it runs, at the objective."""
    text = edit("yield: {goal: maximize}", "selectivity: {goal: maximize}")
    (line,) = problems(text, None)
    assert line.startswith("p.yaml:29:3: objectives.selectivity.measure: selectivity is not ")
    assert "not measured yet" in line and "use one of yield, conversion, throughput" in line

    named = edit(
        "yield: {goal: maximize}", "yield: {goal: maximize}\n  sel: {measure: selectivity}"
    )
    (line,) = problems(named, load_platform(SIMULATED))
    assert line.startswith("p.yaml:30:18: objectives.sel.measure: selectivity is not measured yet")


def test_every_other_measure_still_validates() -> None:
    for name in measured():
        text = edit("yield: {goal: maximize}", f"{name}: {{goal: maximize}}")
        text = edit(
            "  product: {name: product",
            "  substrate: {name: acid, region: [2.0, 2.2], nuclei: 1}\n  product: {name: product",
            text,
        )
        assert problems(text, load_platform(SIMULATED)) == [], name


def test_the_model_keeps_no_second_measure_table() -> None:
    from robochem.protocols import model

    assert model.MEASURES is MEASURES
    assert not hasattr(model, "ConcentrationOrZero")
    assert BASE  # the base protocol is valid on its own
    assert problems(BASE, None) == []
