"""Short replay on real data (direct arylation, 1,728 measured yields) with RDKit descriptors
of the chemicals: the optimiser must beat the published expert and Bayesian-optimisation
figures and never repeat a condition; the descriptors must be physically sensible and
deterministic."""

from __future__ import annotations

import os

import numpy as np
import pytest

from benchmarks import chem_descriptors as chem
from benchmarks import optimizer_arylation as aryl

# CI always has shared/ beside the checkout and installs RDKit (pyproject's test extra):
# there a missing table or a missing RDKit fails the tests instead of skipping them.
IN_CI = bool(os.environ.get("CI"))
needs_rdkit = pytest.mark.skipif(not chem.available() and not IN_CI, reason="RDKit missing")
needs_data = pytest.mark.skipif(
    not aryl.DATA.exists() and not IN_CI, reason="shared/data is not beside the checkout"
)

DMAC, XYLENE, BUCN = "CC(N(C)C)=O", "CC1=CC=C(C)C=C1", "CCCC#N"
KOAC, CSOAC = "O=C([O-])C.[K+]", "O=C([O-])C.[Cs+]"
PPH3, PCY3 = "P(C1=CC=CC=C1)(C2=CC=CC=C2)C3=CC=CC=C3", "P(C1CCCCC1)(C2CCCCC2)C3CCCCC3"


def _d(smiles: str) -> dict[str, float]:
    return dict(zip(chem.NAMES, chem.descriptors(smiles), strict=True))


@needs_rdkit
def test_descriptors_are_physically_sensible() -> None:
    dmac, xylene = _d(DMAC), _d(XYLENE)
    assert dmac["tpsa"] > 15 and xylene["tpsa"] == 0
    assert dmac["dipole"] > 5 * xylene["dipole"]  # amide far more polar than p-xylene
    assert xylene["aromatic_rings"] == 1 and dmac["aromatic_rings"] == 0
    assert xylene["logp"] > dmac["logp"]
    koac, csoac = _d(KOAC), _d(CSOAC)
    assert (koac["counter_ion_z"], csoac["counter_ion_z"]) == (19, 55)
    assert csoac["mol_weight"] - koac["mol_weight"] == pytest.approx(132.9 - 39.1, abs=0.1)
    assert csoac["counter_ion_radius"] > koac["counter_ion_radius"]
    assert _d(PCY3)["fraction_sp3"] == 1.0 and _d(PPH3)["fraction_sp3"] == 0.0
    with pytest.raises(ValueError, match="SMILES"):
        chem.descriptors("C1CC(")


@needs_rdkit
def test_reduced_descriptors_standardised_and_deterministic() -> None:
    solvents = [DMAC, XYLENE, BUCN, "CCCCOC(C)=O"]
    red = chem.reduced_descriptors(solvents, components=2)
    x = np.array([red[s] for s in solvents])
    assert x.shape == (4, 2)
    assert np.allclose(x.mean(axis=0), 0.0, atol=1e-9)
    assert x[:, 0].var() >= x[:, 1].var()  # components in order of explained variance
    assert chem.reduced_descriptors(solvents, components=2) == red
    # two choices span one direction only, however many components are asked for
    assert np.array(list(chem.reduced_descriptors([DMAC, XYLENE], 3).values())).shape == (2, 1)
    raw = chem.reduced_descriptors(solvents, components=None)
    assert len(raw[DMAC]) > 2


@needs_rdkit
@needs_data
def test_arylation_replay_beats_published_figures() -> None:
    table, levels = aryl.load()
    assert len(table) == 1728
    default = aryl.Settings()
    assert default.encoding == "descriptors"
    spec = aryl.spec_for(levels, seed=0, batch=5, components=default.components)
    ligand = spec["variables"]["ligand"]
    assert set(ligand["descriptors"]) == set(ligand["choices"]) and len(ligand["choices"]) == 12
    assert all(len(v) == default.components for v in ligand["descriptors"].values())
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
