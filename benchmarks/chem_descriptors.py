"""Physical descriptors of reagents computed from SMILES with RDKit, for the optimiser's
categorical ``descriptors``.

    table = descriptor_table(["CC(N(C)C)=O", "CCCC#N"])       # name -> raw values
    vectors = reduced_descriptors(["CC(N(C)C)=O", "CCCC#N", ...], components=3)

Every molecule gets the same small set of well-known descriptors (size, lipophilicity, polar
surface, flexibility, hydrogen bonding, saturation, rings, Gasteiger partial charges, a
dipole moment from Gasteiger charges on an MMFF geometry as a polarity proxy). Salts are
described by their largest organic ion plus the counter-ion's atomic number and covalent
radius. ``reduced_descriptors`` standardises the table of one chemical type (all ligands,
say), drops constant columns and projects it on its first principal components, so a few
well-scaled numbers per choice reach the GP instead of a dozen correlated ones.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

try:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem, Crippen, Descriptors, Lipinski, rdMolDescriptors
except ImportError:  # pragma: no cover - reported by available()
    Chem = None

NAMES = (
    "mol_weight", "logp", "molar_refractivity", "tpsa", "rotatable_bonds", "h_donors",
    "h_acceptors", "fraction_sp3", "rings", "aromatic_rings", "heavy_atoms",
    "charge_max", "charge_min", "charge_abs_mean", "dipole", "counter_ion_z",
    "counter_ion_radius",
)  # fmt: skip


def available() -> bool:
    """Whether RDKit can be imported."""
    return Chem is not None


def _require() -> None:
    if Chem is None:
        raise ImportError("RDKit is needed for chemical descriptors: pip install rdkit")


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
    AllChem.MMFFOptimizeMolecule(h, maxIters=500)
    q = _gasteiger(h)
    r = h.GetConformer().GetPositions()
    return float(np.linalg.norm((q[:, None] * r).sum(axis=0)))


@functools.lru_cache(maxsize=256)
def descriptors(smiles: str) -> tuple[float, ...]:
    """Raw descriptor values of one SMILES, in the order of ``NAMES``."""
    _require()
    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"cannot parse SMILES {smiles!r}")
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


def descriptor_table(smiles: Sequence[str]) -> dict[str, list[float]]:
    """SMILES -> raw descriptor vector (``NAMES`` order)."""
    return {s: list(descriptors(s)) for s in smiles}


def reduced_descriptors(smiles: Sequence[str], components: int | None = 3,
                        ) -> dict[str, list[float]]:
    """Standardised descriptors of one chemical type, projected on at most ``components``
    principal components (None: all standardised columns, no projection).

    The projection is deterministic (signs fixed so that each component's largest loading
    is positive), so the same list of SMILES always gives the same vectors.
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
