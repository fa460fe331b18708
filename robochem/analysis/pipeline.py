"""Folder → :class:`AnalysisResult`: read, process, reference, integrate, quantify, check."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robochem.analysis import qc as qc_rules
from robochem.analysis.config import AnalysisConfig, Species
from robochem.analysis.processing import Spectrum, process_fid
from robochem.analysis.quantify import RegionResult, find_reference, integrate_regions
from robochem.analysis.reader import FID, NMRDataError, folder_sha256, read_fid
from robochem.analysis.result import AnalysisResult, IntegralReport, PlotData

__all__ = ["analyze_folder", "decimate_for_plot", "software_versions"]

PLOT_POINTS = 4000


def software_versions() -> dict[str, str]:
    import nmrglue
    import scipy

    import robochem

    return {
        "robochem": robochem.__version__,
        "nmrglue": str(nmrglue.__version__),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def _minmax(ppm: np.ndarray, values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max decimation keeping each bucket's extremes in their original order."""
    n = values.size
    if n <= max_points:
        return ppm.copy(), values.copy()
    buckets = max(max_points // 2, 1)
    size = -(-n // buckets)
    pad = buckets * size - n
    v = np.concatenate((values, np.full(pad, values[-1]))).reshape(buckets, size)
    base = np.arange(buckets) * size
    i_max = base + np.argmax(v, axis=1)
    i_min = base + np.argmin(v, axis=1)
    idx = np.sort(np.stack((np.minimum(i_max, i_min), np.maximum(i_max, i_min)), axis=1), axis=1)
    idx = np.minimum(idx.ravel(), n - 1)
    return ppm[idx], values[idx]


def decimate_for_plot(
    ppm: np.ndarray,
    intensity: np.ndarray,
    max_points: int = PLOT_POINTS,
    focus: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points: full detail in ``focus`` (lo, hi ppm), min/max elsewhere.

    ``ppm`` is decreasing (NMR order); the output keeps that order.
    """
    if ppm.size <= max_points:
        return ppm.copy(), intensity.copy()
    if focus is None:
        return _minmax(ppm, intensity, max_points)
    lo, hi = focus
    inside = np.flatnonzero((ppm >= lo) & (ppm <= hi))
    if inside.size == 0:
        return _minmax(ppm, intensity, max_points)
    a, b = int(inside[0]), int(inside[-1]) + 1
    budget_focus = min(b - a, (3 * max_points) // 4)
    rest = max_points - budget_focus
    left = a / max(a + (ppm.size - b), 1)
    n_left = int(rest * left) // 2 * 2
    n_right = (rest - n_left) // 2 * 2
    parts = [
        _minmax(ppm[:a], intensity[:a], n_left) if a and n_left else (ppm[:0], ppm[:0]),
        _minmax(ppm[a:b], intensity[a:b], budget_focus),
        _minmax(ppm[b:], intensity[b:], n_right) if b < ppm.size and n_right else (ppm[:0],) * 2,
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _processing_dict(spec: Spectrum, config: AnalysisConfig) -> dict[str, Any]:
    return {
        "line_broadening_hz": spec.line_broadening_hz,
        "fid_points": spec.n_fid,
        "zero_fill_size": spec.size,
        "dc_offset": [spec.dc_offset.real, spec.dc_offset.imag],
        "first_point_scale": 0.5,
        "phase_method": (
            "strong-line clusters (complex Lorentzian fits), quality-weighted, ridge p1"
            if spec.lines
            else "peak-based (complex sums over symmetric windows), ridge p1"
        ),
        "strong_lines": len(spec.lines),
        "phase0_deg": spec.phase0_deg,
        "phase1_deg": spec.phase1_deg,
        "phase_convention": "nmrglue proc_base.ps(spec, p0, p1) on the NMR-ordered FFT",
        "phase_clusters": spec.n_phase_clusters,
        "baseline": spec.baseline,
        "baseline_coefficients": spec.baseline_coefficients,
        "reference_shift_ppm": spec.reference_shift_ppm,
        "noise_sd": spec.noise_sd,
        "spectral_width_hz": spec.sw_hz,
        "observe_mhz": spec.obs_mhz,
        "integration": config.processing.integration,
        "fit_margin_ppm": config.processing.fit_margin_ppm,
        "width_prior": config.processing.width_prior,
        "config": config.model_dump(mode="json"),
    }


def analyze_folder(
    path: str | Path,
    config: AnalysisConfig,
    flow_rate_ml_min: float | None = None,
    *,
    expected_is_integral: float | None = None,
    plot_points: int = PLOT_POINTS,
) -> AnalysisResult:
    """Analyse one Spinsolve folder (or JCAMP-DX / .1d file) against ``config``.

    Never raises for bad data: unreadable, incomplete, corrupt, empty, wrong-nucleus or
    mis-referenced spectra come back ``rejected`` with the reason (naming the file).
    ``expected_is_integral`` overrides ``config.qc.expected_is_integral`` (e.g. a running
    median the engine keeps per campaign).
    """
    path = Path(path)
    software = software_versions()
    source: dict[str, Any] = {"path": str(path.resolve())}
    fid = _read_checked(path, config, source, software)
    if isinstance(fid, AnalysisResult):
        return fid

    spec = process_fid(fid, config.processing)
    outside = qc_rules.check_regions_in_window(spec, config)
    if outside:
        return AnalysisResult.rejected(
            outside,
            source=source,
            software=software,
            processing=_processing_dict(spec, config),
            nucleus=fid.nucleus,
        )
    reference = find_reference(spec, config.internal_standard)
    if reference.found_ppm is not None:
        spec.shift_reference(reference.offset_ppm)

    species = config.species()
    regions = integrate_regions(
        spec,
        species,
        margin_ppm=config.processing.fit_margin_ppm,
        method=config.processing.integration,
        width_prior=config.processing.width_prior,
    )
    q = _quantify(regions, config)
    report = qc_rules.evaluate(
        config,
        spec,
        reference,
        regions,
        yield_percent=q.yield_pct,
        expected_is_integral=expected_is_integral,
    )
    throughput = None
    if flow_rate_ml_min is not None and q.c_product is not None:
        # mol/L × mL/min = mmol/min... ×1e-3 L/mL × 1e3 mmol/mol × 60 min/h
        throughput = q.c_product * float(flow_rate_ml_min) * 60.0

    rejected = report.status == "rejected"
    return AnalysisResult(
        status=report.status,
        reasons=report.reasons,
        yield_percent=None if rejected else q.yield_pct,
        yield_sd_percent=None if rejected else q.yield_sd,
        conversion_percent=None if rejected else q.conversion,
        throughput_mmol_h=None if rejected else throughput,
        concentrations_M=q.concentrations,
        integrals=q.integrals,
        snr={r.name: r.snr for r in regions},
        processing=_processing_dict(spec, config),
        software=software,
        source=source,
        nucleus=fid.nucleus,
        plot=_plot(spec, species, plot_points),
        qc=report.metrics,
    )


def _read_checked(
    path: Path, config: AnalysisConfig, source: dict[str, Any], software: dict[str, str]
) -> FID | AnalysisResult:
    """The FID at ``path`` (its provenance added to ``source``), or the rejected result when
    it cannot be read, is of the wrong nucleus or is empty."""
    try:
        fid = read_fid(path)
    except NMRDataError as exc:
        if path.is_dir():
            source["sha256"] = folder_sha256(path)
        return AnalysisResult.rejected([str(exc)], source=source, software=software)
    source.update(
        {
            "file": str(fid.source.resolve()),
            "sha256": fid.sha256,
            "sample": fid.params.get("Sample"),
            "acquired": fid.params.get("CurrentTime"),
            "scans": fid.scans,
            "from_spectrum_file": fid.from_spectrum,
        }
    )
    problem = qc_rules.check_nucleus(fid.nucleus, config.nucleus)
    if problem:
        return AnalysisResult.rejected(
            [f"{fid.source}: {problem}"], source=source, software=software, nucleus=fid.nucleus
        )
    if not np.any(fid.data):
        return AnalysisResult.rejected(
            [f"{fid.source}: the FID is all zeros (empty acquisition)"],
            source=source,
            software=software,
            nucleus=fid.nucleus,
        )
    return fid


@dataclass
class _Quantities:
    concentrations: dict[str, float]
    integrals: dict[str, IntegralReport]
    c_product: float | None
    yield_pct: float | None
    yield_sd: float | None
    conversion: float | None


def _quantify(regions: list[RegionResult], config: AnalysisConfig) -> _Quantities:
    """Concentrations against the internal standard, then yield (with its SD) and
    conversion against the limiting reagent."""
    by_role = {r.role: r for r in regions}
    std = by_role["internal_standard"]
    product = by_role["product"]
    c_is = config.internal_standard.concentration
    c_lim = config.limiting_reagent.concentration

    concentrations: dict[str, float] = {}
    integrals: dict[str, IntegralReport] = {}
    yield_pct: float | None = None
    yield_sd: float | None = None
    conversion: float | None = None
    per_nucleus_is = std.integral / std.nuclei if std.integral > 0 else float("nan")
    for r in regions:
        if r.role == "internal_standard":
            conc = c_is
        else:
            conc = (r.integral / r.nuclei) / per_nucleus_is * c_is
        if math.isfinite(conc):
            concentrations[r.name] = conc
        integrals[r.name] = _integral_report(r, conc)
    c_product = concentrations.get(product.name)
    if c_product is not None:
        yield_pct = 100.0 * c_product / c_lim
        rel_is = std.integral_sd / std.integral
        sd_p = math.hypot(product.integral_sd, product.integral * rel_is)
        yield_sd = 100.0 * (sd_p / product.nuclei) / per_nucleus_is * c_is / c_lim
    substrate = by_role.get("substrate")
    if substrate is not None and substrate.name in concentrations:
        conversion = 100.0 * (1.0 - concentrations[substrate.name] / c_lim)
    return _Quantities(concentrations, integrals, c_product, yield_pct, yield_sd, conversion)


def _integral_report(r: RegionResult, conc: float) -> IntegralReport:
    return IntegralReport(
        role=r.role,
        name=r.name,
        region_ppm=r.region,
        nuclei=r.nuclei,
        integral=r.integral,
        window_integral=r.window_integral,
        integral_sd=r.integral_sd,
        snr=r.snr,
        concentration_M=conc if math.isfinite(conc) else None,
        fwhm_hz=r.fwhm_hz,
        n_lines=len(r.lines),
        line_centers_ppm=[ln.center_ppm for ln in r.lines],
        phase_residual_deg=r.phase_residual_deg,
        fit_chi=r.fit_chi,
    )


def _plot(spec: Spectrum, species: list[tuple[str, Species]], plot_points: int) -> PlotData:
    """The spectrum decimated for display, in full detail around the integrated regions."""
    r_lo = min(sp.lo for _, sp in species)
    r_hi = max(sp.hi for _, sp in species)
    pad = max(0.5, 0.3 * (r_hi - r_lo))
    ppm_d, int_d = decimate_for_plot(
        spec.ppm, spec.real, plot_points, focus=(r_lo - pad, r_hi + pad)
    )
    return PlotData(
        ppm=ppm_d.tolist(),
        intensity=int_d.tolist(),
        regions=[{"role": role, "name": sp.name, "lo": sp.lo, "hi": sp.hi} for role, sp in species],
    )
