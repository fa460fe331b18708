"""Synthetic benchtop-NMR free induction decays with a known truth.

The FID follows the Spinsolve sign convention (devices.md 12.5): a line at chemical
shift ``δ`` contributes ``A·exp(−i·2π·(δ−δc)·ν0·t)·exp(−π·LW·t)``, so nmrglue's plain
``fft`` followed by ``spinsolve.make_uc`` puts it at ``δ`` ppm.

Areas are proportional to ``concentration_M × nuclei`` (times ``scale``): the integral
of a singlet with 3 nuclei at 0.05 M is exactly 1.5 times that of a 1-nucleus signal at
0.1 M. A multiplet splits its area over its lines by the relative intensities given.

Phase errors are applied per line so that nmrglue's ``proc_base.ps(spec, -p0, -p1)`` on
the NMR-ordered spectrum undoes them: line phase = ``p0 + p1·f``, where ``f`` is the
fractional position of the line across the spectral window (0 at the high-ppm edge, 1 at
the low-ppm edge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["GAMMA_RATIO", "Signal", "b1_for_nucleus", "synthesize_fid"]

#: Larmor frequency relative to 1H (for picking a plausible b1 for other nuclei).
GAMMA_RATIO: dict[str, float] = {"1H": 1.0, "19F": 0.94077, "13C": 0.25145, "31P": 0.40481}


def b1_for_nucleus(nucleus: str, proton_mhz: float = 43.49) -> float:
    """Spectrometer frequency in MHz for ``nucleus`` on a magnet with ``proton_mhz`` 1H."""
    try:
        return proton_mhz * GAMMA_RATIO[nucleus]
    except KeyError:
        raise ValueError(f"unknown nucleus {nucleus!r}; known: {sorted(GAMMA_RATIO)}") from None


@dataclass(frozen=True)
class Signal:
    """One NMR signal (a singlet or a first-order multiplet)."""

    shift_ppm: float
    nuclei: float
    concentration_M: float
    #: relative line intensities, e.g. ``(1, 2, 1)`` for a triplet
    multiplicity: Sequence[float] = (1.0,)
    #: coupling constant between adjacent lines of the multiplet, in Hz
    j_hz: float = 0.0

    def lines(self, b1_freq_mhz: float) -> list[tuple[float, float]]:
        """``(shift_ppm, area)`` of every line; areas sum to ``concentration × nuclei``."""
        weights = np.asarray(self.multiplicity, dtype=float)
        if weights.size == 0 or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(f"invalid multiplicity {self.multiplicity!r}")
        total = self.concentration_M * self.nuclei
        n = weights.size
        j_ppm = self.j_hz / b1_freq_mhz
        return [
            (self.shift_ppm + (i - (n - 1) / 2.0) * j_ppm, total * w / weights.sum())
            for i, w in enumerate(weights)
        ]


def synthesize_fid(
    signals: Sequence[Signal],
    *,
    nucleus: str = "1H",
    b1_freq_mhz: float = 43.49,
    n_points: int = 16384,
    bandwidth_hz: float = 5000.0,
    center_ppm: float,
    linewidth_hz: float = 1.0,
    noise_sd: float = 0.0,
    phase0_deg: float = 0.0,
    phase1_deg: float = 0.0,
    shift_drift_ppm: float = 0.0,
    rng: np.random.Generator | None = None,
    scale: float = 1.0,
    dc_offset: complex = 0.0,
) -> np.ndarray:
    """Return a complex64 FID of ``n_points`` sampled at ``1/bandwidth_hz``.

    ``nucleus`` is informational (the caller chooses ``b1_freq_mhz`` to match it).
    ``noise_sd`` is the standard deviation of the white noise added to each of the real
    and imaginary channels, in the same units as ``scale × concentration × nuclei``.
    ``dc_offset`` adds a constant to every point (a receiver DC offset).
    """
    if n_points <= 0 or bandwidth_hz <= 0 or b1_freq_mhz <= 0:
        raise ValueError("n_points, bandwidth_hz and b1_freq_mhz must be positive")
    if linewidth_hz <= 0:
        raise ValueError("linewidth_hz must be positive")
    del nucleus  # the frequency is what matters; kept for a self-describing call
    t = np.arange(n_points, dtype=np.float64) / bandwidth_hz
    decay = np.exp(-np.pi * linewidth_hz * t)
    sw_ppm = bandwidth_hz / b1_freq_mhz
    high_edge = center_ppm + sw_ppm / 2.0
    fid = np.zeros(n_points, dtype=np.complex128)
    for signal in signals:
        for shift, area in signal.lines(b1_freq_mhz):
            delta = shift + shift_drift_ppm
            frac = (high_edge - delta) / sw_ppm
            phase = np.deg2rad(phase0_deg + phase1_deg * frac)
            offset_hz = (delta - center_ppm) * b1_freq_mhz
            amp = scale * area * np.exp(1j * phase)
            fid += amp * np.exp(-2j * np.pi * offset_hz * t)
    fid *= decay
    if dc_offset:
        fid += dc_offset
    if noise_sd > 0:
        gen = rng if rng is not None else np.random.default_rng()
        fid += noise_sd * (gen.standard_normal(n_points) + 1j * gen.standard_normal(n_points))
    return fid.astype(np.complex64)
