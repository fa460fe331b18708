"""Short replay on real data (direct arylation, 1,728 measured yields): the optimiser must
beat the published random-search figure and never repeat a condition."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSV = ROOT / ".." / "shared" / "data" / "direct_arylation.csv"
_spec = importlib.util.spec_from_file_location(
    "optimizer_arylation", ROOT / "benchmarks" / "optimizer_arylation.py"
)
assert _spec is not None and _spec.loader is not None
aryl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(aryl)


# CI always has shared/ beside the checkout: there a missing table fails the test.
@pytest.mark.skipif(
    not CSV.exists() and not os.environ.get("CI"), reason="shared/data is not beside the checkout"
)
def test_arylation_replay_beats_random_search() -> None:
    table, levels = aryl.load(CSV)
    assert len(table) == 1728
    spec = aryl.spec_for(levels, seed=0, batch=5)
    assert spec["variables"]["ligand"]["choices"]  # nothing table-specific in optimizer/
    traces = [aryl.run((seed, 5, 20, {})) for seed in (0, 1)]
    # random search: 78.1 mean best yield after 20 (500 seeds, Shields et al.)
    assert sum(t[-1] for t in traces) / len(traces) > 78.1
