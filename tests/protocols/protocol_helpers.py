"""Helpers of the protocol tests: a valid base protocol (its line numbers matter) and paths."""

from __future__ import annotations

from pathlib import Path

from robochem.protocols.errors import ProtocolError
from robochem.protocols.load import parse_protocol
from robochem.protocols.platform import Platform

ROOT = Path(__file__).resolve().parents[2]
SIMULATED = ROOT / "protocols" / "platforms" / "simulated.yaml"
TEMPLATE = ROOT / "protocols" / "platforms" / "template.yaml"
EXAMPLES = ROOT / "protocols" / "examples"

# Line numbers in the expected messages of test_malformed.py refer to this text.
BASE = """\
robochem: 1
metadata: {name: test}
stocks:
  substrate:
    concentration: 1.0 M
    role: limiting
    pump: pump-substrate
    available: 100 mL
  donor:
    concentration: 12.3 M
    equivalents: 5 equiv
    pump: pump-reagent
    available: 50 mL
  catalyst:
    concentration: 20 mM
    role: catalyst
    pump: pump-catalyst
    port: "1"
    available: 50 mL
solvent: {name: MeCN, pump: pump-solvent, available: 500 mL}
variables:
  residence_time: {type: residence_time, low: 2 min, high: 20 min}
  light: {type: light, low: 10 %, high: 100 %}
  conc: {type: concentration, stock: substrate, low: 0.05 M, high: 0.2 M}
  loading: {type: loading, stock: catalyst, low: 0.5 mol%, high: 2 mol%}
fixed:
  temperature: 25 degC
objectives:
  yield: {goal: maximize}
optimizer:
  budget: 20
  initial_experiments: 5
analysis:
  internal_standard: {name: TMB, region: [5.99, 6.19], nuclei: 3, concentration: 0.05 M}
  product: {name: product, region: [4.32, 4.64], nuclei: 1}
execution:
  mode: steady-state
  reactor_volumes: 3
cleaning: {volume: 2 mL, flow: 4 mL/min}
safety:
  max_pressure: 20 bar
  temperature: [5 degC, 70 degC]
"""


def problems(text: str, platform: Platform | None) -> list[str]:
    """The error lines a protocol text gives (empty when it is valid)."""
    try:
        parse_protocol(text, "p.yaml", platform)
    except ProtocolError as exc:
        return [str(i) for i in exc.issues]
    return []


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)
