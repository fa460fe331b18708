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


# ------------------------------------------------------------------ cases with known truth

#: multiplet patterns used for random products/substrates (relative intensities)
MULTIPLETS: tuple[tuple[float, ...], ...] = (
    (1.0,),
    (1.0, 1.0),
    (1.0, 2.0, 1.0),
    (1.0, 1.0, 1.0, 1.0),
    (1.0, 3.0, 3.0, 1.0),
)


@dataclass(frozen=True)
class SyntheticCase:
    """A random spectrum with known truth and the analysis block that quantifies it."""

    nucleus: str
    signals: tuple[Signal, ...]
    fid_kwargs: dict[str, object]
    folder_kwargs: dict[str, object]
    analysis: dict[str, object]
    true_yield_percent: float
    true_conversion_percent: float
    snr: float
    noise_sd: float

    def fid(self, rng: np.random.Generator) -> np.ndarray:
        return synthesize_fid(self.signals, rng=rng, **self.fid_kwargs)  # type: ignore[arg-type]


def noise_for_snr(
    area: float, snr: float, *, linewidth_hz: float, bandwidth_hz: float, n_points: int
) -> float:
    """Per-channel FID noise SD giving ``snr`` for a singlet of ``area`` (conc × nuclei).

    SNR here is the peak height in the plain FFT of the FID (no apodization, no zero
    filling, first point halved) divided by the noise standard deviation of that spectrum.
    """
    height = area * bandwidth_hz / (np.pi * linewidth_hz)
    return float(height / (snr * np.sqrt(n_points)))


def _multiplet(
    rng: np.random.Generator, shift: float, nuclei: float, conc: float, b1: float
) -> tuple[Signal, float]:
    pattern = MULTIPLETS[int(rng.integers(len(MULTIPLETS)))]
    j = float(rng.uniform(2.0, 8.0)) if len(pattern) > 1 else 0.0
    half_span = (len(pattern) - 1) / 2.0 * j / b1
    return Signal(shift, nuclei, conc, pattern, j), half_span


def make_case(
    rng: np.random.Generator,
    *,
    nucleus: str = "1H",
    snr: float = 200.0,
    n_points: int = 16384,
    linewidth_hz: float | None = None,
    phase0_deg: float | None = None,
    phase1_deg: float | None = None,
    shift_drift_ppm: float | None = None,
    neighbour: bool = True,
) -> SyntheticCase:
    """Draw a random reaction spectrum (IS, product, substrate, solvent) with known truth.

    Unspecified nuisance parameters are drawn at random: line width 0.5–3 Hz, zero-order
    phase ±180°, first-order ±30°, drift ±0.05 ppm. Product and substrate are multiplets
    whose outer lines sit 0.02–0.06 ppm inside their region limits; with ``neighbour``
    the substrate region sits right next to the product region, so tails overlap.
    """
    lw = float(rng.uniform(0.5, 3.0)) if linewidth_hz is None else linewidth_hz
    p0 = float(rng.uniform(-180, 180)) if phase0_deg is None else phase0_deg
    p1 = float(rng.uniform(-30, 30)) if phase1_deg is None else phase1_deg
    drift = float(rng.uniform(-0.05, 0.05)) if shift_drift_ppm is None else shift_drift_ppm
    c_lim = float(rng.uniform(0.05, 0.2))
    c_is = float(rng.uniform(0.03, 0.08))
    true_yield = float(rng.uniform(0.05, 0.95))
    conversion = min(true_yield + float(rng.uniform(0.0, 0.3)), 0.99)
    c_p, c_s = true_yield * c_lim, (1.0 - conversion) * c_lim
    if nucleus == "1H":
        b1, bw, center = 43.49, 5000.0, 5.0
        is_shift, is_nuclei, is_name, is_half = 6.08, 3.0, "TMB", 0.12
        p_shift, s_gap = float(rng.uniform(7.0, 7.4)), 1.0
        n_p, n_s = float(rng.integers(1, 4)), 1.0
        solvent = Signal(1.94, 3.0, float(rng.uniform(0.05, 0.5)))
    elif nucleus == "19F":
        b1, bw, center = b1_for_nucleus("19F"), 20000.0, -100.0
        is_shift, is_nuclei, is_name, is_half = -63.72, 3.0, "PhCF3", 0.25
        p_shift, s_gap = float(rng.uniform(-118.0, -110.0)), -1.0
        n_p, n_s = float(rng.integers(1, 4)), 1.0
        solvent = Signal(-76.5, 3.0, float(rng.uniform(0.0, 0.2)))
    else:
        raise ValueError(f"make_case supports 1H and 19F, not {nucleus!r}")

    product, p_half = _multiplet(rng, p_shift, n_p, c_p, b1)
    p_lo = p_shift - p_half - float(rng.uniform(0.02, 0.06))
    p_hi = p_shift + p_half + float(rng.uniform(0.02, 0.06))
    # substrate: adjacent region (shared edge zone) or well apart
    sub_probe, s_half = _multiplet(rng, 0.0, n_s, c_s, b1)
    edge = float(rng.uniform(0.02, 0.06))
    if neighbour:
        gap = float(rng.uniform(0.0, 0.04))
        if s_gap > 0:
            s_lo = p_hi + gap
            s_shift = s_lo + edge + s_half
            s_hi = s_shift + s_half + float(rng.uniform(0.02, 0.06))
        else:
            s_hi = p_lo - gap
            s_shift = s_hi - edge - s_half
            s_lo = s_shift - s_half - float(rng.uniform(0.02, 0.06))
    else:
        s_shift = p_shift + s_gap
        s_lo = s_shift - s_half - edge
        s_hi = s_shift + s_half + edge
    substrate = Signal(s_shift, n_s, c_s, sub_probe.multiplicity, sub_probe.j_hz)
    standard = Signal(is_shift, is_nuclei, c_is)
    signals = (standard, product, substrate, solvent)
    noise = noise_for_snr(
        c_is * is_nuclei, snr, linewidth_hz=lw, bandwidth_hz=bw, n_points=n_points
    )
    fid_kwargs: dict[str, object] = {
        "nucleus": nucleus,
        "b1_freq_mhz": b1,
        "n_points": n_points,
        "bandwidth_hz": bw,
        "center_ppm": center,
        "linewidth_hz": lw,
        "noise_sd": noise,
        "phase0_deg": p0,
        "phase1_deg": p1,
        "shift_drift_ppm": drift,
    }
    folder_kwargs: dict[str, object] = {
        "nucleus": nucleus,
        "b1_freq_mhz": b1,
        "bandwidth_hz": bw,
        "center_ppm": center,
    }
    analysis: dict[str, object] = {
        "nucleus": nucleus,
        "internal_standard": {
            "name": is_name,
            "region": [is_shift + is_half, is_shift - is_half],
            "nuclei": is_nuclei,
            "concentration": f"{1000 * c_is:.6f} mM",
            "shift": is_shift,
        },
        "product": {"name": "product", "region": [p_lo, p_hi], "nuclei": n_p},
        "limiting_reagent": {
            "name": "substrate",
            "concentration": f"{c_lim:.8f} M",
            "region": [s_lo, s_hi],
            "nuclei": n_s,
        },
    }
    return SyntheticCase(
        nucleus=nucleus,
        signals=signals,
        fid_kwargs=fid_kwargs,
        folder_kwargs=folder_kwargs,
        analysis=analysis,
        true_yield_percent=100.0 * true_yield,
        true_conversion_percent=100.0 * conversion,
        snr=snr,
        noise_sd=noise,
    )
