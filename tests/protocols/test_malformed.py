"""Malformed protocols: each gives its precise message at the right line and column.

Every case edits the valid BASE protocol of conftest.py; line numbers refer to that text.
"""

from __future__ import annotations

import pytest
from protocol_helpers import BASE, edit, problems

SLUG = ("mode: steady-state\n  reactor_volumes: 3", "mode: slug\n  volume: 0.65 mL")

CASES: list[tuple[str, str, str, list[str]]] = [
    (
        "unknown key, with a suggestion (and no 'missing high' echo)",
        "high: 20 min}",
        "hihg: 20 min}",
        ["p.yaml:22:54: variables.residence_time.hihg: unknown key 'hihg'; did you mean 'high'?"],
    ),
    (
        "unknown section",
        "optimizer:\n",
        "optimiser:\n",
        ["p.yaml:30:1: optimiser: unknown key 'optimiser'; did you mean 'optimizer'?"],
    ),
    (
        "wrong unit dimension",
        "low: 2 min",
        "low: 2 kg",
        [
            "p.yaml:22:47: variables.residence_time.low: '2 kg' is a mass, expected a time "
            "such as '2 min'"
        ],
    ),
    (
        "a quantity without a unit",
        "available: 100 mL",
        "available: 100",
        [
            "p.yaml:8:16: stocks.substrate.available: 100 has no unit; write a volume with its "
            "unit, e.g. '0.65 mL'"
        ],
    ),
    (
        "low not below high",
        "low: 2 min, high: 20 min",
        "low: 20 min, high: 2 min",
        ["p.yaml:22:61: variables.residence_time.high: high '2 min' must be above low '20 min'"],
    ),
    (
        "missing required section",
        "safety:\n  max_pressure: 20 bar\n  temperature: [5 degC, 70 degC]\n",
        "",
        ["p.yaml:1:1: safety: missing required key 'safety'"],
    ),
    (
        "bad execution mode",
        "mode: steady-state",
        "mode: steady",
        [
            "p.yaml:37:9: execution.mode: 'steady' is not allowed; did you mean "
            "'steady-state'? (expected one of 'steady-state', 'slug')"
        ],
    ),
    (
        "bad enum",
        "role: limiting",
        "role: limitting",
        [
            "p.yaml:6:11: stocks.substrate.role: 'limitting' is not allowed; did you mean "
            "'limiting'? (expected 'limiting', 'reagent', 'catalyst' or 'additive')"
        ],
    ),
    (
        "bad goal",
        "goal: maximize",
        "goal: maximum",
        [
            "p.yaml:29:17: objectives.yield.goal: 'maximum' is not allowed; did you mean "
            "'maximize'? (expected 'maximize', 'minimize', 'maximise' or 'minimise')"
        ],
    ),
    (
        "duplicate key",
        "  catalyst:\n    concentration: 20 mM",
        "  donor:\n    concentration: 20 mM",
        [
            "p.yaml:14:3: stocks.donor: duplicate key 'donor' (first given at line 9); YAML "
            "would silently keep only the last one"
        ],
    ),
    (
        "YAML syntax error",
        "metadata: {name: test}",
        "metadata: {name: test",
        [
            "p.yaml:3:7: YAML syntax error: expected ',' or '}', but got ':' (while parsing a "
            "flow mapping)"
        ],
    ),
    (
        "YAML merge key",
        "metadata: {name: test}",
        "base: &b {name: test}\nmetadata:\n  <<: *b",
        ["p.yaml:4:3: metadata: merge keys ('<<') are not supported; write the fields out"],
    ),
    (
        "unknown stock in a variable",
        "stock: catalyst,",
        "stock: catalyts,",
        [
            "p.yaml:25:35: variables.loading.stock: unknown stock 'catalyts'; did you mean "
            "'catalyst'?"
        ],
    ),
    (
        "pump missing from the platform",
        "pump: pump-reagent",
        "pump: pump-regent",
        [
            "p.yaml:12:11: stocks.donor.pump: unknown pump 'pump-regent'; did you mean "
            "'pump-reagent'? (the pumps of platform 'simulated-lab')"
        ],
    ),
    (
        "infeasible corner: a pump above its maximum",
        "low: 2 min",
        "low: 20 s",
        [
            "p.yaml:21:1: variables: infeasible corner {residence_time=20 s, light=10 %, "
            "conc=0.05 M, loading=0.5 mol%}: pump-solvent (solvent MeCN) would run at "
            "10.73 mL/min, above its maximum 10 mL/min (and 3 more corners)"
        ],
    ),
    (
        "infeasible corner: the stocks leave no room for solvent",
        "high: 2 mol%",
        "high: 8 mol%",
        [
            "p.yaml:21:1: variables: infeasible corner {residence_time=2 min, light=10 %, "
            "conc=0.2 M, loading=8 mol%}: the stocks need 2.109 mL/min of the 1.95 mL/min "
            "total flow (solvent would be -0.1585 mL/min) (and 3 more corners)"
        ],
    ),
    (
        "reagent shortage over the budget",
        'port: "1"\n    available: 50 mL',
        'port: "1"\n    available: 20 mL',
        [
            "p.yaml:19:16: stocks.catalyst.available: '20 mL' is not enough: the budget of 20 "
            "experiments may need up to 49.5 mL (worst corner, priming included)"
        ],
    ),
    (
        "unknown schema version",
        "robochem: 1",
        "robochem: 2",
        [
            "p.yaml:1:11: robochem: 2 is not a known protocol file version; this robochem reads "
            "version 1"
        ],
    ),
    (
        "no schema version",
        "robochem: 1\n",
        "",
        [
            "p.yaml:1:1: missing the file format version: add 'robochem: 1' as the first line of "
            "a protocol file"
        ],
    ),
    (
        "negative volume",
        "available: 100 mL",
        "available: -5 mL",
        ["p.yaml:8:16: stocks.substrate.available: '-5 mL' must be greater than 0 mL"],
    ),
    (
        "categorical with empty choices",
        "fixed:\n",
        "  cat: {type: categorical, choices: []}\nfixed:\n",
        ["p.yaml:26:37: variables.cat.choices: [] is empty; give at least 1"],
    ),
    (
        "objective on an unknown measure",
        "yield: {goal: maximize}",
        "purity: {goal: maximize}",
        [
            "p.yaml:29:3: objectives.purity.measure: 'purity' is not a measure; expected one "
            "of yield, conversion, selectivity, throughput"
        ],
    ),
    (
        "conversion without a substrate signal",
        "yield: {goal: maximize}",
        "conversion: {goal: maximize}",
        [
            "p.yaml:29:3: objectives.conversion.measure: 'conversion' needs the substrate's "
            "signal: give analysis.substrate (or region and nuclei in "
            "analysis.limiting_reagent)"
        ],
    ),
    (
        "analysis block: unknown key",
        "  product: {name: product",
        "  nucleis: 1H\n  product: {name: product",
        ["p.yaml:35:3: analysis.nucleis: unknown key 'nucleis'; did you mean 'nucleus'?"],
    ),
    (
        "analysis block: overlapping regions",
        "region: [4.32, 4.64]",
        "region: [6.0, 6.4]",
        ["p.yaml:34:3: analysis: regions of 'TMB' [5.99, 6.19] and 'product' [6.0, 6.4] overlap"],
    ),
    (
        "slug larger than the reactor",
        SLUG[0],
        "mode: slug\n  volume: 5 mL",
        [
            "p.yaml:38:11: execution.volume: a '5 mL' slug does not fit in the reactor (3.9 mL); "
            "make it smaller"
        ],
    ),
    (
        "gas segments without a gas inlet",
        SLUG[0],
        SLUG[1] + "\n  gas_segment: 50 uL",
        [
            "p.yaml:39:16: execution.gas_segment: platform 'simulated-lab' has no gas inlet "
            "(fluidics.gas_inlet) to make gas segments"
        ],
    ),
    (
        "light both fixed and a variable",
        "fixed:\n",
        "fixed:\n  light: 50 %\n",
        [
            "p.yaml:27:3: fixed.light: light is both fixed ('50 %') and the variable 'light'; "
            "keep one"
        ],
    ),
    (
        "light above 100 %",
        "high: 100 %",
        "high: 150 %",
        ["p.yaml:23:41: variables.light.high: '150 %': light is 0-100 %"],
    ),
    (
        "constraint on an unknown variable",
        "objectives:\n",
        "constraints: ['conc * loadng <= 0.002']\nobjectives:\n",
        [
            "p.yaml:28:15: constraints.0: constraint 'conc * loadng <= 0.002': unknown name "
            "'loadng'; variables are ['conc', 'light', 'loading', 'residence_time']"
        ],
    ),
    (
        "safety pressure above a pump's rating",
        "max_pressure: 20 bar",
        "max_pressure: 500 bar",
        [
            "p.yaml:41:17: safety.max_pressure: '500 bar' is above the rating of "
            "pump-substrate (400 bar)",
            "p.yaml:41:17: safety.max_pressure: '500 bar' is above the rating of "
            "pump-solvent (400 bar)",
        ],
    ),
    (
        "temperature outside the safety range",
        "temperature: 25 degC",
        "temperature: 90 degC",
        [
            "p.yaml:27:16: fixed.temperature: '90 degC' is outside the safety range "
            "[5 degC, 70 degC]"
        ],
    ),
    (
        "stopping target on an unknown objective",
        "  initial_experiments: 5",
        "  initial_experiments: 5\n  stopping: {target: {yeild: 90 %}}",
        [
            "p.yaml:33:23: optimizer.stopping.target.yeild: unknown objective 'yeild'; did you "
            "mean 'yield'?"
        ],
    ),
    (
        "more initial experiments than the budget",
        "initial_experiments: 5",
        "initial_experiments: 25",
        [
            "p.yaml:32:24: optimizer.initial_experiments: 25 initial experiments exceed the "
            "budget of 20"
        ],
    ),
    (
        "a stock without an amount",
        "    equivalents: 5 equiv\n",
        "",
        [
            "p.yaml:9:3: stocks.donor: no amount for this stock: give equivalents or vary it "
            "with a variable"
        ],
    ),
    (
        "two stocks on one pump",
        "pump: pump-reagent",
        "pump: pump-substrate",
        ["p.yaml:12:11: stocks.donor.pump: 'pump-substrate' already carries stock 'substrate'"],
    ),
    (
        "selector port the valve does not have",
        'port: "1"',
        'port: "9"',
        [
            "p.yaml:18:11: stocks.catalyst.port: '9' is not a position of 'valve-catalyst'; "
            "positions are '1', '2', '3', '4', '5', '6'"
        ],
    ),
    (
        "variable type outside the list, no close match",
        "{type: light,",
        "{type: brightness,",
        [
            "p.yaml:23:17: variables.light.type: 'brightness' is not allowed; expected one of "
            "'residence_time', 'light', 'temperature', 'concentration', 'equivalents', "
            "'loading', 'categorical'"
        ],
    ),
    (
        "variable without a type",
        "{type: light, low",
        "{low",
        [
            "p.yaml:23:3: variables.light: missing 'type', which says what kind of entry this "
            "is (residence_time, light, temperature, concentration, equivalents, loading, "
            "categorical)"
        ],
    ),
    (
        "unknown key without a close match lists the allowed keys",
        "  residence_time: {type: residence_time,",
        "  residence_time: {type: residence_time, colour: red,",
        [
            "p.yaml:22:42: variables.residence_time.colour: unknown key 'colour'; allowed: "
            "description, log, type, low, high"
        ],
    ),
    (
        "constraints that exclude every point",
        "objectives:\n",
        "constraints: ['conc > 1']\nobjectives:\n",
        [
            "p.yaml:28:1: constraints: the optimiser refuses this protocol: the constraints "
            "leave no feasible point that random sampling of 20,000 points could find; check "
            "their directions and units"
        ],
    ),
    (
        "an optimiser strategy that does not fit the objectives",
        "  yield: {goal: maximize}\noptimizer:\n",
        "  yield: {goal: maximize}\n  throughput: {}\noptimizer:\n  strategy: single\n",
        [
            "p.yaml:31:1: optimizer: the optimiser refuses this protocol: strategy 'single' "
            "needs exactly one objective"
        ],
    ),
    (
        "expected hypervolume improvement asked for with one objective",
        "optimizer:\n",
        "optimizer:\n  strategy: ehvi\n",
        [
            "p.yaml:30:1: optimizer: the optimiser refuses this protocol: strategy 'ehvi' is "
            "implemented for exactly two objectives"
        ],
    ),
    (
        "a unit robochem does not read: said so, no dimension guessed",
        "low: 2 min",
        "low: 2 furlongs",
        [
            "p.yaml:22:47: variables.residence_time.low: cannot read '2 furlongs': 'furlongs' "
            "is not a unit robochem knows; expected a time such as '2 min'"
        ],
    ),
    (
        "a quantity that does not parse",
        "available: 100 mL",
        "available: 5 mmol(",
        [
            "p.yaml:8:16: stocks.substrate.available: cannot read '5 mmol(' as a quantity; "
            "expected a volume such as '0.65 mL'"
        ],
    ),
    (
        "a power tower is not evaluated",
        "available: 100 mL",
        "available: 9**9**9 mL",
        [
            "p.yaml:8:16: stocks.substrate.available: cannot read '9**9**9 mL' as a quantity; "
            "expected a volume such as '0.65 mL'"
        ],
    ),
    (
        "a length is a length, not a wavelength",
        "low: 2 min",
        "low: 2 mm",
        [
            "p.yaml:22:47: variables.residence_time.low: '2 mm' is a length, expected a time "
            "such as '2 min'"
        ],
    ),
    (
        "YAML alias",
        "metadata: {name: test}",
        "metadata: &m {name: test, tags: [*m]}",
        ["p.yaml:2:34: metadata.tags.0: aliases ('*m') are not supported; write the value out"],
    ),
    (
        "unknown tag on a mapping",
        "metadata: {name: test}",
        "metadata: !foo {name: test}",
        ["p.yaml:2:11: metadata: unknown tag '!foo'; robochem files are plain YAML, without tags"],
    ),
    (
        "python tag on a value",
        "metadata: {name: test}",
        "metadata: {name: !!python/name:os.system test}",
        [
            "p.yaml:2:18: metadata.name: unknown tag '!!python/name:os.system'; robochem files "
            "are plain YAML, without tags"
        ],
    ),
    (
        "unknown tag on a key",
        "metadata: {name: test}",
        "metadata: {!foo name: test}",
        ["p.yaml:2:12: metadata: unknown tag '!foo'; robochem files are plain YAML, without tags"],
    ),
    (
        "a C1 control character",
        "metadata: {name: test}",
        'metadata: {name: "te\u009bst"}',
        ["p.yaml:2:21: U+009B is a control character, which YAML does not allow; remove it"],
    ),
    (
        "nesting deeper than the limit",
        "metadata: {name: test}",
        "metadata: {name: test, tags: " + "[" * 40 + "]" * 40 + "}",
        [
            "p.yaml:2:60: lists and mappings are nested more than 32 levels deep; robochem "
            "files need only a few"
        ],
    ),
    (
        "a value its explicit tag cannot read",
        "budget: 20",
        "budget: !!int twenty",
        [
            "p.yaml:31:11: optimizer.budget: cannot read 'twenty' as !!int (invalid literal for "
            "int() with base 10: 'twenty')"
        ],
    ),
    (
        "wrong type",
        "budget: 20",
        "budget: twenty",
        [
            "p.yaml:31:11: optimizer.budget: got 'twenty'; input should be a valid integer, "
            "unable to parse string as an integer"
        ],
    ),
]


def test_base_protocol_is_valid(sim_platform) -> None:
    assert problems(BASE, sim_platform) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_protocol_gives_its_message(sim_platform, old, new, expected) -> None:
    assert problems(edit(old, new), sim_platform) == expected


def test_slug_overfull_names_the_corner(sim_platform) -> None:
    text = edit("high: 2 mol%", "high: 8 mol%", edit(*SLUG))
    assert problems(text, sim_platform) == [
        "p.yaml:21:1: variables: infeasible corner {residence_time=2 min, light=10 %, "
        "conc=0.2 M, loading=8 mol%}: the stocks need 0.7028 mL of the 0.65 mL slug "
        "(solvent would be -0.05285 mL) (and 3 more corners)"
    ]


def test_all_problems_of_a_file_are_reported_in_line_order(sim_platform) -> None:
    text = edit("low: 2 min", "low: 2 kg", edit("role: limiting", "role: limitting"))
    got = problems(text, sim_platform)
    assert [g.split(":")[1] for g in got] == ["6", "22"]


def test_without_a_platform_only_the_protocol_is_checked() -> None:
    assert problems(edit("pump: pump-reagent", "pump: pump-regent"), None) == []


def test_a_platform_file_given_as_protocol_is_recognised(sim_platform) -> None:
    from protocol_helpers import SIMULATED

    got = problems(SIMULATED.read_text(), None)
    assert got == ["p.yaml:13:1: this is a platform file, not a protocol file"]


def test_corners_excluded_by_constraints_are_not_checked(sim_platform) -> None:
    text = edit("high: 2 mol%", "high: 8 mol%")
    text = edit("objectives:\n", "constraints: ['conc * loading <= 0.004']\nobjectives:\n", text)
    assert problems(text, sim_platform) == []
