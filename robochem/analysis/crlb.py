"""Cramér–Rao lower bound for a yield measured against an internal standard.

How well can *any* unbiased estimator determine the yield from one FID? With white
Gaussian noise of standard deviation ``σ`` on each of the real and imaginary channels of
the FID, the Fisher information of the model parameters θ is ``Re(Jᴴ·J)/σ²`` with
``J = ∂FID/∂θ``; the inverse is the smallest covariance an unbiased estimator can reach.
The yield is ``(A_P/N_P)/(A_IS/N_IS)·c_IS/c_lim``, so its relative variance is
``gᵀ·C·g`` with ``g = ∂ log(yield)/∂θ`` (``1/A_P`` for the product's area, ``−1/A_IS``
for the standard's).

The model is the one the synthetic spectra are made of (and the one the analysis
assumes): Lorentzian lines ``a·e^{i(p0 + p1·f)}·e^{−2πiΔt}·e^{−π·lw·t}`` sharing one
width ``lw``, zero- and first-order phase ``p0``/``p1`` unknown. Two bounds:

- ``free lines``: every line's amplitude and frequency unknown (what the analysis fits:
  it does not know which lines form a multiplet);
- ``pattern``: each species' area, shift and coupling J unknown, the multiplet's
  relative intensities known (first-order multiplets): the bound for an estimator that
  is told the multiplet structure.

The bound is computed on the raw FID (no apodization, no zero filling; processing cannot
add information). Used by ``benchmarks/nmr_analysis.py`` to show how close the analysis
comes to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SpeciesLines", "YieldBound", "yield_crlb"]


@dataclass(frozen=True)
class SpeciesLines:
    """One species' multiplet: relative intensities, total area, centre and coupling."""

    weights: Sequence[float]
    area: float  # sum of the line amplitudes (FID units)
    offset_hz: float  # centre relative to the carrier
    j_hz: float = 0.0


@dataclass(frozen=True)
class YieldBound:
    """Relative standard deviations (fractions) of the yield at the Cramér–Rao bound."""

    free_lines: float
    pattern: float

    def sd_percent(self, yield_percent: float) -> tuple[float, float]:
        """Bounds as absolute yield SDs in percentage points: ``(free lines, pattern)``."""
        return abs(yield_percent) * self.free_lines, abs(yield_percent) * self.pattern


def yield_crlb(
    species: Sequence[SpeciesLines],
    *,
    product: int,
    standard: int,
    noise_sd: float,
    n_points: int,
    bandwidth_hz: float,
    linewidth_hz: float,
    phase1_deg: float = 0.0,
) -> YieldBound:
    """Cramér–Rao bound of the yield ratio ``A[product]/A[standard]``.

    ``species`` holds every signal of the spectrum (nuisance ones included: their
    overlap with the product or standard costs information); ``product`` and
    ``standard`` index into it. ``noise_sd`` is the per-channel SD of the FID noise.
    """
    if noise_sd <= 0:
        return YieldBound(0.0, 0.0)
    t = np.arange(n_points) / bandwidth_hz
    p1 = np.deg2rad(phase1_deg)
    decay = np.exp(-np.pi * linewidth_hz * t)
    # every line: (species index, relative weight, position in the multiplet)
    lines: list[tuple[int, float, float]] = []
    for s, sp in enumerate(species):
        w = np.asarray(sp.weights, dtype=float)
        for i, wi in enumerate(w):
            lines.append((s, float(wi / w.sum()), i - (w.size - 1) / 2.0))
    n_lines = len(lines)
    # line-level Jacobian: amplitude, frequency of every line; then width, p0, p1
    # one row per parameter (rows are contiguous: much faster to fill than columns)
    jac = np.empty((2 * n_lines + 3, n_points), dtype=complex)
    total = np.zeros(n_points, dtype=complex)
    total_f = np.zeros(n_points, dtype=complex)
    for m, (s, w, pos) in enumerate(lines):
        sp = species[s]
        delta = sp.offset_hz + pos * sp.j_hz
        frac = 0.5 - delta / bandwidth_hz  # fractional position, 0 at the high-ppm edge
        unit = np.exp(1j * (p1 * frac - 2.0 * np.pi * delta * t)) * decay
        amp = sp.area * w
        jac[m] = unit
        jac[n_lines + m] = amp * unit * (-2j * np.pi * t - 1j * p1 / bandwidth_hz)
        total += amp * unit
        total_f += amp * frac * unit
    jac[2 * n_lines] = -np.pi * t * total
    jac[2 * n_lines + 1] = 1j * total
    jac[2 * n_lines + 2] = 1j * total_f

    # Fisher information of the line-level parameters; other parametrisations follow as
    # Tᵀ·F·T for the Jacobian T of the line parameters with respect to theirs
    re, im = np.ascontiguousarray(jac.real), np.ascontiguousarray(jac.imag)
    fisher_lines = (re @ re.T + im @ im.T) / noise_sd**2

    def relative_sd(transform: np.ndarray, grad: np.ndarray) -> float:
        fisher = transform.T @ fisher_lines @ transform
        # parameters differ by orders of magnitude: scale before inverting
        scale = np.sqrt(np.maximum(np.diag(fisher), 1e-300))
        cov = np.linalg.pinv(fisher / np.outer(scale, scale), rcond=1e-13)
        cov /= np.outer(scale, scale)
        return float(np.sqrt(max(grad @ cov @ grad, 0.0)))

    # free lines: parameters are the line parameters themselves
    eye = np.eye(2 * n_lines + 3)
    grad = np.zeros(2 * n_lines + 3)
    for m, (s, _, _) in enumerate(lines):
        if s == product:
            grad[m] = 1.0 / species[product].area
        elif s == standard:
            grad[m] = -1.0 / species[standard].area
    free = relative_sd(eye, grad)

    # pattern: per species area, centre and (multiplets) J; line params follow
    cols: list[np.ndarray] = []
    grad_p: list[float] = []
    for s, sp in enumerate(species):
        members = [(m, w, pos) for m, (si, w, pos) in enumerate(lines) if si == s]
        col_a = np.zeros(2 * n_lines + 3)
        col_c = np.zeros(2 * n_lines + 3)
        col_j = np.zeros(2 * n_lines + 3)
        for m, w, pos in members:
            col_a[m] = w
            col_c[n_lines + m] = 1.0
            col_j[n_lines + m] = pos
        cols += [col_a, col_c]
        grad_p += [
            1.0 / sp.area if s == product else -1.0 / sp.area if s == standard else 0.0,
            0.0,
        ]
        if len(members) > 1:
            cols.append(col_j)
            grad_p.append(0.0)
    for k in range(3):
        cols.append(eye[2 * n_lines + k])
        grad_p.append(0.0)
    pattern = relative_sd(np.stack(cols, axis=1), np.asarray(grad_p))
    return YieldBound(free, pattern)
