"""Chemical structures as numbers for the optimiser: RDKit descriptors of each choice.

A categorical variable whose choices all have structures (``{"choices": [...], "smiles":
{choice: SMILES}}`` in the spec) is encoded by what the molecules are rather than by their
names, so the model can guess how an untried ligand behaves from the ones it has seen.

Every structure is standardised (RDKit's clean-up: explicit hydrogens removed, metals
disconnected, functional groups and charges normalised) and described by the same small set
of well-known descriptors (size, lipophilicity, polar surface, flexibility, hydrogen
bonding, saturation, rings, Gasteiger partial charges, a dipole from Gasteiger charges on
an MMFF geometry as a polarity proxy). Salts and mixtures (dot-separated SMILES) are
described by their largest fragment plus the heaviest other atom's atomic number and
covalent radius (the counter-ion or metal); the molecular weight is the whole's. The
descriptors of one variable's choices are then standardised, constant columns dropped and
projected on their first principal components, so a few well-scaled numbers per choice
reach the GP instead of a dozen correlated ones. Descriptors are cached per standardised
structure for the life of the process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem, Crippen, Descriptors, Lipinski, rdMolDescriptors
from rdkit.Chem.MolStandardize import rdMolStandardize

__all__ = [
    "DEFAULT_COMPONENTS",
    "NAMES",
    "InvalidStructure",
    "choice_descriptors",
    "descriptors",
    "reduced_descriptors",
    "standardise",
]

NAMES = (
    "mol_weight", "logp", "molar_refractivity", "tpsa", "rotatable_bonds", "h_donors",
    "h_acceptors", "fraction_sp3", "rings", "aromatic_rings", "heavy_atoms",
    "charge_max", "charge_min", "charge_abs_mean", "dipole", "counter_ion_z",
    "counter_ion_radius",
)  # fmt: skip
# Principal components kept per variable. Chosen on the direct-arylation replay
# (docs/optimizer.md, "Direct arylation"): 5 beat 2 and 3; bases and solvents have rank 2-3,
# so only a larger set (the 12 ligands) uses all five.
DEFAULT_COMPONENTS = 5

RDLogger.DisableLog("rdApp.*")  # parse failures are reported as InvalidStructure instead


class InvalidStructure(ValueError):
    """A SMILES that RDKit cannot read or sanitise; the message says why."""


@functools.lru_cache(maxsize=1024)
def standardise(smiles: str) -> str:
    """Canonical SMILES of the cleaned-up structure (the cache key of its descriptors)."""
    if not isinstance(smiles, str) or not smiles.strip():
        raise InvalidStructure(f"{smiles!r} is not a SMILES string")
    mol = Chem.MolFromSmiles(smiles.strip(), sanitize=False)
    if mol is None:
        raise InvalidStructure(f"cannot parse SMILES {smiles!r}")
    problems = Chem.DetectChemistryProblems(mol)
    if problems:
        raise InvalidStructure(f"SMILES {smiles!r}: {problems[0].Message()}")
    try:
        Chem.SanitizeMol(mol)
        mol = rdMolStandardize.Cleanup(mol)
    except Exception as exc:  # RDKit raises several unrelated types here; re-raised as ours
        raise InvalidStructure(f"SMILES {smiles!r}: {exc}") from exc
    return str(Chem.MolToSmiles(mol))


def _gasteiger(mol: Chem.Mol) -> np.ndarray:
    work = Chem.Mol(mol)
    AllChem.ComputeGasteigerCharges(work)
    q = np.array([a.GetDoubleProp("_GasteigerCharge") for a in work.GetAtoms()], dtype=float)
    return np.nan_to_num(q)


def _dipole(mol: Chem.Mol, seed: int = 7) -> float:
    """|sum q_i r_i| in e*Angstrom from Gasteiger charges on an MMFF-optimised conformer
    (a cheap polarity proxy; 0 for ions and molecules that cannot be embedded)."""
    if Chem.GetFormalCharge(mol) != 0:
        return 0.0
    h = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(h, params) != 0:
        return 0.0
    if AllChem.MMFFHasAllMoleculeParams(h):
        AllChem.MMFFOptimizeMolecule(h, maxIters=500)
    q = _gasteiger(h)
    r = h.GetConformer().GetPositions()
    return float(np.linalg.norm((q[:, None] * r).sum(axis=0)))


@functools.lru_cache(maxsize=1024)
def _described(canonical: str) -> tuple[float, ...]:
    mol = Chem.MolFromSmiles(canonical)
    frags = sorted(Chem.GetMolFrags(mol, asMols=True), key=lambda m: -m.GetNumHeavyAtoms())
    main, others = frags[0], frags[1:]
    q = _gasteiger(main)
    ion_z = max((a.GetAtomicNum() for m in others for a in m.GetAtoms()), default=0)
    table = Chem.GetPeriodicTable()
    values = (
        Descriptors.MolWt(mol),
        Crippen.MolLogP(main),
        Crippen.MolMR(main),
        rdMolDescriptors.CalcTPSA(main),
        rdMolDescriptors.CalcNumRotatableBonds(main),
        Lipinski.NumHDonors(main),
        Lipinski.NumHAcceptors(main),
        rdMolDescriptors.CalcFractionCSP3(main),
        rdMolDescriptors.CalcNumRings(main),
        rdMolDescriptors.CalcNumAromaticRings(main),
        main.GetNumHeavyAtoms(),
        float(q.max()),
        float(q.min()),
        float(np.abs(q).mean()),
        _dipole(main),
        float(ion_z),
        table.GetRcovalent(ion_z) if ion_z else 0.0,
    )
    return tuple(float(v) for v in values)


def descriptors(smiles: str) -> tuple[float, ...]:
    """Raw descriptor values of one structure, in the order of ``NAMES``."""
    return _described(standardise(smiles))


def reduced_descriptors(
    smiles: Sequence[str], components: int | None = DEFAULT_COMPONENTS
) -> dict[str, list[float]]:
    """Standardised descriptors of one set of structures (all ligands, say), projected on
    at most ``components`` principal components (None: all standardised columns).

    Deterministic: each component's sign is fixed so that its largest loading is positive,
    so the same structures always give the same vectors.
    """
    smiles = list(dict.fromkeys(smiles))
    x = np.array([descriptors(s) for s in smiles], dtype=float)
    sd = x.std(axis=0)
    keep = sd > 1e-9 * (1.0 + np.abs(x).max(axis=0))
    if not keep.any():
        return {s: [0.0] for s in smiles}
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep]
    if components is not None:
        _, s_vals, vt = np.linalg.svd(z, full_matrices=False)
        rank = int((s_vals > 1e-8 * s_vals[0]).sum())
        k = max(1, min(components, rank))
        vt = vt[:k]
        signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
        z = z @ (vt * signs[:, None]).T
    return {s: [float(v) for v in row] for s, row in zip(smiles, z, strict=True)}


def choice_descriptors(
    smiles_of: Mapping[Any, str], components: int | None = DEFAULT_COMPONENTS
) -> dict[Any, list[float]]:
    """Choice -> reduced descriptor vector. Choices with the same structure get the same
    vector: the model cannot tell them apart, as a chemist could not."""
    canonical = {choice: standardise(s) for choice, s in smiles_of.items()}
    vectors = reduced_descriptors(list(canonical.values()), components)
    return {choice: vectors[c] for choice, c in canonical.items()}
