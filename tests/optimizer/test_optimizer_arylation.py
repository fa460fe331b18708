"""Short replay on real data (direct arylation, 1,728 measured yields) with the structures
of the chemicals: the optimiser must beat the published expert and Bayesian-optimisation
figures and never repeat a condition."""

from __future__ import annotations

import os

import numpy as np
import pytest

from benchmarks import optimizer_arylation as aryl

# CI always has shared/ beside the checkout: there a missing table fails the test.
IN_CI = bool(os.environ.get("CI"))
needs_data = pytest.mark.skipif(
    not aryl.DATA.exists() and not IN_CI, reason="shared/data is not beside the checkout"
)


@needs_data
def test_arylation_replay_beats_published_figures() -> None:
    table, levels = aryl.load()
    assert len(table) == 1728
    default = aryl.Settings()
    assert default.encoding == "descriptors"
    spec = aryl.spec_for(levels, seed=0, batch=5, components=default.components)
    ligand = spec["variables"]["ligand"]
    assert set(ligand["smiles"]) == set(ligand["choices"]) and len(ligand["choices"]) == 12
    traces = aryl.replay(range(10), aryl.Settings())  # raises on a repeated condition
    assert traces.shape == (10, 30)
    assert np.all(np.diff(traces, axis=1) >= 0)
    # Shields et al.: mean best after 20 / 30 experiments, experts 87.5 / 92.2, EDBO 91.6 /
    # 97.5. Ten seeds of the full benchmark's fifty (97.6 / 99.95 here; before the
    # descriptor prior and the exploring batch points, 78.8 / 92.9).
    result = aryl.summary(traces, marks=(10, 20, 30))
    assert result["mean"][1] > 87.5
    assert result["mean"][2] >= 97.5
    text = aryl.table_text(result)
    assert "EDBO" in text and "experts" in text and "random" in text
