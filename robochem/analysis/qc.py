"""Quality control: every rule either passes, warns or rejects, with a reason.

A rejected result carries no yield, so it can never reach the optimiser as a number.
Thresholds live in :class:`robochem.analysis.config.QCThresholds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robochem.analysis.config import AnalysisConfig, QCThresholds
from robochem.analysis.processing import Spectrum
from robochem.analysis.quantify import Reference, RegionResult
from robochem.analysis.result import Status, natural_line_width_hz

__all__ = ["QCReport", "check_nucleus", "check_regions_in_window", "evaluate"]


@dataclass
class QCReport:
    rejections: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejections.append(reason)

    def warn(self, reason: str) -> None:
        self.warnings.append(reason)

    @property
    def status(self) -> Status:
        if self.rejections:
            return "rejected"
        return "warning" if self.warnings else "ok"

    @property
    def reasons(self) -> list[str]:
        return [*self.rejections, *self.warnings]


def check_nucleus(found: str, expected: str) -> str | None:
    if found.strip().lower() != expected.strip().lower():
        return f"wrong nucleus: the data are {found!r}, the analysis expects {expected!r}"
    return None


def check_regions_in_window(spec: Spectrum, config: AnalysisConfig) -> list[str]:
    top, bottom = float(spec.ppm[0]), float(spec.ppm[-1])
    out = []
    for _, sp in config.species():
        if sp.lo < bottom or sp.hi > top:
            out.append(
                f"region of {sp.name!r} {list(sp.region)} ppm lies outside the spectral window "
                f"[{bottom:.2f}, {top:.2f}] ppm (wrong nucleus or carrier?)"
            )
    return out


def evaluate(
    config: AnalysisConfig,
    spec: Spectrum,
    reference: Reference,
    regions: list[RegionResult],
    *,
    yield_percent: float | None,
    expected_is_integral: float | None = None,
) -> QCReport:
    """Apply the QC rules to an analysed spectrum."""
    report = QCReport()
    by_role = {r.role: r for r in regions if r.role in ("internal_standard", "product")}
    _check_internal_standard(
        report, config, reference, by_role.get("internal_standard"), expected_is_integral
    )
    for r in regions:
        _check_region(report, config.qc, spec, r)
    if yield_percent is not None:
        _check_yield(report, config.qc, yield_percent)
    return report


def _check_internal_standard(
    report: QCReport,
    config: AnalysisConfig,
    reference: Reference,
    std: RegionResult | None,
    expected_is_integral: float | None,
) -> None:
    """The internal standard: found, strong enough, where expected, of the expected size."""
    q = config.qc
    report.metrics["reference_offset_ppm"] = reference.offset_ppm
    if reference.problem:
        report.reject(f"internal standard {config.internal_standard.name!r}: {reference.problem}")
    if std is None or std.snr < q.min_is_snr:
        snr = 0.0 if std is None else std.snr
        report.reject(
            f"internal standard {config.internal_standard.name!r} not found in "
            f"{list(config.internal_standard.region)} ppm (SNR {snr:.1f} < {q.min_is_snr:g}; "
            "empty, mis-referenced or wrong sample?)"
        )
    elif std.integral <= 0 or (std.method == "lineshape" and not std.lines):
        report.reject(f"internal standard integral is not positive ({std.integral:.4g})")
    else:
        if std.snr < q.warn_is_snr:
            report.warn(f"internal standard SNR {std.snr:.0f} < {q.warn_is_snr:g}: noisy yield")
        expected = expected_is_integral or q.expected_is_integral
        if expected:
            dev = std.integral / expected - 1.0
            report.metrics["is_integral_deviation"] = dev
            text = (
                f"internal standard integral {std.integral:.4g} is {100 * dev:+.1f}% from the "
                f"expected {expected:.4g} (dilution, air bubble or missed slug?)"
            )
            if abs(dev) > q.is_integral_reject:
                report.reject(text)
            elif abs(dev) > q.is_integral_warn:
                report.warn(text)
    if reference.found_ppm is not None and abs(reference.offset_ppm) > q.drift_warn_ppm:
        report.warn(
            f"peak drift: internal standard found {reference.offset_ppm:+.3f} ppm from its "
            f"nominal {reference.nominal_ppm:.3f} ppm"
        )


def _check_region(report: QCReport, q: QCThresholds, spec: Spectrum, r: RegionResult) -> None:
    """One integrated region: noise, phase, lineshape, overlap, sign."""
    label = f"{r.role.replace('_', ' ')} {r.name!r}"
    fundamental = r.role in ("internal_standard", "product")
    if r.snr < q.warn_peak_snr and r.role != "internal_standard":
        report.warn(f"{label}: SNR {r.snr:.1f} < {q.warn_peak_snr:g} (near the noise)")
    phase = abs(r.phase_residual_deg)
    if phase > q.phase_reject_deg and fundamental:
        report.reject(f"{label}: residual phase error {phase:.0f}° (phasing failed)")
    elif phase > q.phase_warn_deg:
        report.warn(f"{label}: residual phase error {phase:.0f}°")
    if r.lines:
        _check_lineshape(report, q, spec, r, label, fundamental)
    # overlap: how much of what is in the region belongs to lines centred outside it
    if r.spill_in_fraction > q.spill_reject and fundamental:
        report.reject(
            f"{label}: {100 * r.spill_in_fraction:.0f}% of the signal in its region belongs "
            "to neighbouring lines (overlap too strong to separate)"
        )
    elif r.spill_in_fraction > q.spill_warn and fundamental:
        report.warn(
            f"{label}: {100 * r.spill_in_fraction:.0f}% of the signal in its region belongs "
            "to neighbouring lines (overlap)"
        )
    # negative integrals: the plain window integral must not be clearly negative
    if r.window_integral < -3.0 * r.integral_sd:
        text = (
            f"{label}: negative integral {r.window_integral:.4g} "
            f"(±{r.integral_sd:.2g}; phase or baseline problem)"
        )
        if fundamental:
            report.reject(text)
        else:
            report.warn(text)


def _check_lineshape(
    report: QCReport,
    q: QCThresholds,
    spec: Spectrum,
    r: RegionResult,
    label: str,
    fundamental: bool,
) -> None:
    """A region fitted with lines: fit residual, line width, signal at the region's edges."""
    if r.fit_chi is not None:
        if r.fit_chi > q.fit_chi_reject and fundamental:
            report.reject(
                f"{label}: lineshape fit residual {r.fit_chi:.1f}× the noise "
                "(distorted spectrum or baseline)"
            )
        elif r.fit_chi > q.fit_chi_warn:
            report.warn(f"{label}: lineshape fit residual {r.fit_chi:.1f}× the noise")
    if r.fwhm_hz is not None:
        natural = natural_line_width_hz(r.fwhm_hz, spec.line_broadening_hz) or 0.0
        if natural > q.max_linewidth_hz:
            report.warn(f"{label}: line width {natural:.1f} Hz (poor shim?)")
    if r.edge_area_fraction > 0.05:
        report.warn(
            f"{label}: {100 * r.edge_area_fraction:.0f}% of the signal sits within a line "
            f"width of the region limits {list(r.region)} (overlap)"
        )


def _check_yield(report: QCReport, q: QCThresholds, yield_percent: float) -> None:
    if yield_percent > q.reject_yield_percent:
        report.reject(f"yield {yield_percent:.1f}% is impossible (> {q.reject_yield_percent}%)")
    elif yield_percent > q.max_yield_percent:
        report.warn(f"yield {yield_percent:.1f}% exceeds {q.max_yield_percent}%")
