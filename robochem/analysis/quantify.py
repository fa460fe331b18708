"""Referencing and integration of configured regions by lineshape fitting.

Each region is fitted over a window that extends ``fit_margin_ppm`` beyond it on both
sides (regions whose windows overlap are fitted together). The model is a sum of
Lorentzian lines sharing one width and one residual phase, plus a constant offset:

    y(ν) = Σ_k a_k·[cos θ·L(ν; c_k, γ) + sin θ·D(ν; c_k, γ)] + b

``L`` is the unit-area absorption Lorentzian (HWHM ``γ``), ``D`` its dispersion partner.
Amplitudes and offset are linear and solved exactly at each step (variable projection);
``γ``, ``θ`` and the centres ``c_k`` are refined by ``scipy.optimize.least_squares``.
Lines are seeded from local maxima and added where the residual still shows a peak.

A region's integral is the sum of the analytic (untruncated) areas of the lines whose
centres lie inside the region: tails cut by the region limits are counted, and the lines
of neighbouring signals that spill into the region are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.signal import find_peaks

from robochem.analysis.config import InternalStandard, Species
from robochem.analysis.processing import Spectrum

__all__ = ["FitLine", "RegionResult", "find_reference", "integrate_regions"]


@dataclass
class FitLine:
    center_ppm: float
    area: float  # intensity × ppm
    fwhm_hz: float


@dataclass
class RegionResult:
    role: str
    name: str
    region: tuple[float, float]
    nuclei: float
    integral: float  # intensity × ppm, from the chosen method
    window_integral: float  # plain trapezoidal integral over the region
    integral_sd: float  # noise standard deviation of ``integral``
    snr: float  # tallest point in the region / noise SD
    lines: list[FitLine] = field(default_factory=list)
    phase_residual_deg: float = 0.0
    fwhm_hz: float | None = None
    fit_chi: float | None = None  # rms(residual) / noise SD over the fit window
    edge_area_fraction: float = 0.0  # share of area in lines within one FWHM of a limit
    method: str = "lineshape"


@dataclass
class Reference:
    found_ppm: float | None
    nominal_ppm: float
    snr: float
    problem: str | None = None

    @property
    def offset_ppm(self) -> float:
        return 0.0 if self.found_ppm is None else self.found_ppm - self.nominal_ppm


def find_reference(spec: Spectrum, standard: InternalStandard) -> Reference:
    """Locate the internal standard inside its region (on the unreferenced axis)."""
    nominal = standard.nominal_shift
    i0, i1 = spec.index_range(standard.lo, standard.hi)
    if i1 - i0 < 3:
        return Reference(None, nominal, 0.0, "internal-standard region is outside the spectrum")
    seg = spec.real[i0:i1]
    sigma = spec.noise_sd if spec.noise_sd > 0 else float("inf")
    k = int(np.argmax(seg))
    peak = float(seg[k])
    snr = peak / sigma if np.isfinite(sigma) else 0.0
    if not snr > 0:
        return Reference(None, nominal, 0.0, "no positive signal in the internal-standard region")
    # the core of the signal: the contiguous run above 20 % of the maximum around it
    thr = 0.2 * peak
    a = k
    while a > 0 and seg[a - 1] > thr:
        a -= 1
    b = k
    while b < seg.size - 1 and seg[b + 1] > thr:
        b += 1
    if a == 0 or b == seg.size - 1:
        return Reference(
            None,
            nominal,
            snr,
            "the tallest signal in the internal-standard region runs into its limit "
            "(mis-referenced spectrum or a neighbouring peak)",
        )
    w = seg[a : b + 1]
    idx = np.arange(a, b + 1) + i0
    centroid = float((idx * w).sum() / w.sum())
    found = float(spec.ppm[0] - centroid * spec.ppm_per_point)
    return Reference(found, nominal, snr)


# ----------------------------------------------------------------------------- fitting


def _basis(x: np.ndarray, centers: np.ndarray, gamma: float, theta: float) -> np.ndarray:
    d = x[:, None] - centers[None, :]
    den = 1.0 / (gamma * gamma + d * d)
    lor = (gamma / np.pi) * den
    dis = (d / np.pi) * den
    cols = np.cos(theta) * lor + np.sin(theta) * dis
    return np.hstack((cols, np.ones((x.size, 1))))


def _solve_linear(basis: np.ndarray, y: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return coef


def _fit(
    x: np.ndarray, y: np.ndarray, centers: np.ndarray, gamma: float, theta: float
) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Fit centres, width and phase; return (centres, gamma, theta, linear coefficients)."""
    k = centers.size
    span = float(x.max() - x.min())

    def unpack(p: np.ndarray) -> tuple[np.ndarray, float, float]:
        return p[2:], float(np.exp(p[0])), float(p[1])

    def resid(p: np.ndarray) -> np.ndarray:
        c, g, t = unpack(p)
        b = _basis(x, c, g, t)
        return b @ _solve_linear(b, y) - y

    p0 = np.concatenate(([np.log(gamma), theta], centers))
    lo = np.concatenate(([np.log(0.02), -np.pi / 2], np.full(k, x.min() - 0.1 * span)))
    hi = np.concatenate(([np.log(50.0), np.pi / 2], np.full(k, x.max() + 0.1 * span)))
    p0 = np.clip(p0, lo + 1e-9, hi - 1e-9)
    sol = least_squares(resid, p0, bounds=(lo, hi), x_scale="jac", max_nfev=60 * (k + 2))
    c, g, t = unpack(sol.x)
    coef = _solve_linear(_basis(x, c, g, t), y)
    return c, g, t, coef


def _seed_peaks(y: np.ndarray, sigma: float, min_sep: int) -> np.ndarray:
    ymax = float(y.max()) if y.size else 0.0
    height = max(5.0 * sigma, 0.01 * ymax)
    peaks, _ = find_peaks(y, height=height, prominence=3.0 * sigma, distance=max(min_sep, 1))
    return peaks


def _half_width_points(y: np.ndarray, k: int) -> float:
    half = y[k] / 2.0
    a = k
    while a > 0 and y[a] > half:
        a -= 1
    b = k
    while b < y.size - 1 and y[b] > half:
        b += 1
    return max((b - a) / 2.0, 1.0)


@dataclass
class _Window:
    lo: float
    hi: float
    members: list[int]


def _windows(regions: list[tuple[float, float]], margin: float) -> list[_Window]:
    order = sorted(range(len(regions)), key=lambda i: regions[i][0])
    out: list[_Window] = []
    for i in order:
        lo, hi = regions[i][0] - margin, regions[i][1] + margin
        if out and lo <= out[-1].hi:
            out[-1].hi = max(out[-1].hi, hi)
            out[-1].members.append(i)
        else:
            out.append(_Window(lo, hi, [i]))
    return out


def _window_integral(spec: Spectrum, lo: float, hi: float) -> tuple[float, int]:
    i0, i1 = spec.index_range(lo, hi)
    if i1 - i0 < 2:
        return 0.0, max(i1 - i0, 0)
    return float(np.trapezoid(spec.real[i0:i1]) * spec.ppm_per_point), i1 - i0


def integrate_regions(
    spec: Spectrum,
    species: list[tuple[str, Species]],
    *,
    margin_ppm: float = 0.12,
    method: str = "lineshape",
) -> list[RegionResult]:
    """Integrate every ``(role, species)`` region on the (referenced) spectrum."""
    sigma = spec.noise_sd
    hz_pp = spec.hz_per_point
    ppm_pp = spec.ppm_per_point
    zf_factor = spec.size / max(spec.n_fid, 1)
    results: list[RegionResult | None] = [None] * len(species)

    plain: list[tuple[float, float, float]] = []  # (window integral, its sd, snr)
    for _, sp in species:
        wint, npts = _window_integral(spec, sp.lo, sp.hi)
        i0, i1 = spec.index_range(sp.lo, sp.hi)
        top = float(spec.real[i0:i1].max()) if i1 > i0 else 0.0
        snr = top / sigma if sigma > 0 else 0.0
        sd = sigma * ppm_pp * np.sqrt(max(npts, 1) * zf_factor)
        plain.append((wint, float(sd), snr))

    if method == "window":
        return [
            RegionResult(role, sp.name, sp.region, sp.nuclei, w, w, sd, snr, method="window")
            for (role, sp), (w, sd, snr) in zip(species, plain, strict=True)
        ]

    regions = [sp.region for _, sp in species]
    for win in _windows(regions, margin_ppm):
        i0, i1 = spec.index_range(win.lo, win.hi)
        y = spec.real[i0:i1]
        # x in Hz, increasing with index (i.e. decreasing ppm): x = -ppm·obs, re-centred
        idx = np.arange(i0, i1, dtype=float)
        x = (idx - 0.5 * (i0 + i1)) * hz_pp

        def to_ppm(xv: np.ndarray | float, i0: int = i0, i1: int = i1) -> np.ndarray:
            index = np.asarray(xv) / hz_pp + 0.5 * (i0 + i1)
            return spec.ppm[0] - index * ppm_pp

        lines: list[FitLine] = []
        theta = 0.0
        gamma = 0.0
        chi: float | None = None
        if y.size >= 8 and sigma > 0:
            min_sep = max(round(0.6 / hz_pp), 1)
            seeds = _seed_peaks(y, sigma, min_sep)
            if seeds.size:
                strongest = int(seeds[np.argmax(y[seeds])])
                gamma0 = min(max(_half_width_points(y, strongest) * hz_pp, 0.1), 20.0)
                centers = x[seeds]
                add_floor = max(5.0 * sigma, 0.003 * float(y.max()))
                for attempt in range(4):
                    centers, gamma, theta, coef = _fit(x, y, centers, gamma0, theta)
                    model = _basis(x, centers, gamma, theta) @ coef
                    res = y - model
                    if attempt == 3 or centers.size >= 24:
                        break
                    # add a line where the residual still shows a clear peak
                    smooth = np.convolve(res, np.ones(3) / 3.0, mode="same")
                    k = int(np.argmax(smooth))
                    if smooth[k] < add_floor:
                        break
                    centers = np.append(centers, x[k])
                    gamma0 = gamma
                # drop lines with negligible or negative area and refit once
                areas = coef[:-1]
                keep = areas > max(2.0 * sigma * gamma, 0.0)
                if not keep.all() and keep.any():
                    centers, gamma, theta, coef = _fit(x, y, centers[keep], gamma, theta)
                    model = _basis(x, centers, gamma, theta) @ coef
                    res = y - model
                elif not keep.any():
                    centers = centers[:0]
                    coef = np.zeros(1)
                    res = y - float(np.mean(y))
                chi = float(np.sqrt(np.mean(res * res)) / sigma)
                cppm = to_ppm(centers)
                for c, a in zip(cppm, coef[:-1], strict=True):
                    # area in intensity × Hz (x in Hz) → intensity × ppm; per point → /hz_pp
                    lines.append(FitLine(float(c), float(a) / hz_pp * ppm_pp, 2.0 * gamma))

        for m in win.members:
            role, sp = species[m]
            wint, sd, snr = plain[m]
            inside = [ln for ln in lines if sp.lo <= ln.center_ppm <= sp.hi]
            total = float(sum(ln.area for ln in inside))
            fwhm_ppm = 2.0 * gamma / spec.obs_mhz if gamma else 0.0
            edge = sum(
                abs(ln.area)
                for ln in lines
                if min(abs(ln.center_ppm - sp.lo), abs(ln.center_ppm - sp.hi)) < fwhm_ppm
            )
            denom = sum(abs(ln.area) for ln in inside) or 1.0
            # noise of a fitted area is close to that of a window ~3 FWHM wide per line
            n_eff = max(len(inside), 1) * max(6.0 * gamma / hz_pp, 4.0)
            fit_sd = sigma * ppm_pp * float(np.sqrt(n_eff * zf_factor))
            results[m] = RegionResult(
                role=role,
                name=sp.name,
                region=sp.region,
                nuclei=sp.nuclei,
                integral=total,
                window_integral=wint,
                integral_sd=fit_sd,
                snr=snr,
                lines=inside,
                phase_residual_deg=float(np.degrees(theta)),
                fwhm_hz=(2.0 * gamma) if lines else None,
                fit_chi=chi,
                edge_area_fraction=float(edge / denom) if inside else 0.0,
            )
    return [r for r in results if r is not None]
