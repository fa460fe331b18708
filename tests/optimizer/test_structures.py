"""Choices given as structures (SMILES): described by RDKit, searched by what they are."""

from __future__ import annotations

import numpy as np
import pytest

from robochem.optimizer import Optimizer, SpecError, structures

DMAC, XYLENE, BUCN = "CC(N(C)C)=O", "CC1=CC=C(C)C=C1", "CCCC#N"
KOAC, CSOAC = "O=C([O-])C.[K+]", "O=C([O-])C.[Cs+]"
PPH3, PCY3 = "P(C1=CC=CC=C1)(C2=CC=CC=C2)C3=CC=CC=C3", "P(C1CCCCC1)(C2CCCCC2)C3CCCCC3"
ALCOHOLS = {f"C{n}": "C" * n + "O" for n in range(1, 9)}  # methanol .. octanol


def _d(smiles: str) -> dict[str, float]:
    return dict(zip(structures.NAMES, structures.descriptors(smiles), strict=True))


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


def test_one_structure_written_two_ways_is_described_once() -> None:
    assert structures.standardise("OCC") == structures.standardise("C(O)C")
    assert structures.descriptors("c1ccccc1C") == structures.descriptors("Cc1ccccc1")


@pytest.mark.parametrize(
    ("smiles", "reason"),
    [("C1CC(", "cannot parse"), ("c1cccc1", "kekulize"), ("FC(F)(F)(F)F", "valence"),
     ("", "not a SMILES")],
)  # fmt: skip
def test_an_invalid_structure_is_refused_with_the_reason(smiles: str, reason: str) -> None:
    with pytest.raises(structures.InvalidStructure, match=reason):
        structures.standardise(smiles)
    with pytest.raises(SpecError, match=rf"variable 'solvent', choice 'bad'.*{reason}"):
        Optimizer.from_spec(
            {"variables": {"solvent": {"choices": ["dmac", "bad"],
                                       "smiles": {"dmac": DMAC, "bad": smiles}}},
             "objectives": {"yield": {"goal": "maximize"}}}
        )  # fmt: skip


def test_reduced_descriptors_standardised_and_deterministic() -> None:
    solvents = [DMAC, XYLENE, BUCN, "CCCCOC(C)=O"]
    red = structures.reduced_descriptors(solvents, components=2)
    x = np.array([red[s] for s in solvents])
    assert x.shape == (4, 2)
    assert np.allclose(x.mean(axis=0), 0.0, atol=1e-9)
    assert x[:, 0].var() >= x[:, 1].var()  # components in order of explained variance
    assert structures.reduced_descriptors(solvents, components=2) == red
    # two choices span one direction only, however many components are asked for
    two = structures.reduced_descriptors([DMAC, XYLENE], 3)
    assert np.array(list(two.values())).shape == (2, 1)
    assert len(structures.reduced_descriptors(solvents, components=None)[DMAC]) > 2


def _spec(smiles: dict[str, str] | None) -> dict[str, object]:
    variable: dict[str, object] = {"choices": list(ALCOHOLS)}
    if smiles is not None:
        variable["smiles"] = smiles
    return {"variables": {"alcohol": variable}, "objectives": {"yield": {"goal": "maximize"}},
            "initial_experiments": 4, "seed": 0}  # fmt: skip


def test_structures_let_the_model_guess_untried_choices() -> None:
    """Yield rising with chain length (methanol, ethanol low; hexanol, heptanol high): by
    structure the next suggestion is never propanol, the untried alcohol most like the poor
    ones; by name nothing tells the untried ones apart, and propanol comes up."""
    tried = {"C1": 5.0, "C2": 10.0, "C6": 60.0, "C7": 70.0}
    points = [{"alcohol": k} for k in tried]

    def suggestions(smiles: dict[str, str] | None) -> set[str]:
        out = set()
        for seed in range(8):
            opt = Optimizer.from_spec({**_spec(smiles), "seed": seed})
            opt.tell(points, list(tried.values()))
            out.add(opt.ask(1)[0]["alcohol"])
        return out

    assert "C3" not in suggestions(ALCOHOLS)
    assert "C3" in suggestions(None)


def test_the_spec_keeps_structures_through_a_saved_state() -> None:
    opt = Optimizer.from_spec(_spec(ALCOHOLS))
    assert opt.spec()["variables"]["alcohol"]["smiles"] == ALCOHOLS
    again = Optimizer.from_state(opt.state())
    assert again.spec()["variables"]["alcohol"]["smiles"] == ALCOHOLS


@pytest.mark.parametrize(
    ("variable", "message"),
    [({"choices": ["a", "b"], "smiles": {"a": "CO"}}, "no structure for choice 'b'"),
     ({"choices": ["a"], "smiles": {"a": "CO", "z": "CCO"}}, "unknown choices"),
     ({"choices": ["a"], "smiles": {"a": "CO"}, "descriptors": {"a": [1.0]}}, "not both"),
     ({"choices": ["a"], "smiles": ["CO"]}, "must map each choice")],
)  # fmt: skip
def test_structures_must_cover_every_choice(variable: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Optimizer.from_spec({"variables": {"x": variable},
                             "objectives": {"yield": {"goal": "maximize"}}})
