"""The analysis result: everything needed to trust, store and reproduce one yield."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warning", "rejected"]

__all__ = [
    "AnalysisResult",
    "IntegralReport",
    "PlotData",
    "Status",
    "natural_line_width_hz",
    "standard_line_width_hz",
]


def _clean(value: Any) -> Any:
    """Make ``value`` JSON-able: NaN/inf become None, tuples lists, numpy scalars floats."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return value


@dataclass
class IntegralReport:
    """One integrated region."""

    role: str  # internal_standard, product, substrate, side_product
    name: str
    region_ppm: tuple[float, float]
    nuclei: float
    integral: float
    window_integral: float
    integral_sd: float
    snr: float
    concentration_M: float | None
    fwhm_hz: float | None
    n_lines: int
    line_centers_ppm: list[float]
    phase_residual_deg: float
    fit_chi: float | None


@dataclass
class PlotData:
    """The processed spectrum decimated for plotting (at most ``max_points`` points)."""

    ppm: list[float]
    intensity: list[float]
    regions: list[dict[str, Any]]


@dataclass
class AnalysisResult:
    status: Status
    reasons: list[str]
    yield_percent: float | None
    yield_sd_percent: float | None
    conversion_percent: float | None
    throughput_mmol_h: float | None
    concentrations_M: dict[str, float]
    integrals: dict[str, IntegralReport]
    snr: dict[str, float]
    processing: dict[str, Any]
    software: dict[str, str]
    source: dict[str, Any]
    nucleus: str | None = None
    plot: PlotData | None = None
    qc: dict[str, Any] = field(default_factory=dict)

    @property
    def ok_for_optimizer(self) -> bool:
        """True when the yield may be told to the optimiser (not rejected)."""
        return self.status != "rejected" and self.yield_percent is not None

    def to_dict(self, *, include_plot: bool = True) -> dict[str, Any]:
        """A JSON-able dict (``"yield"`` is the percent yield, null when rejected)."""
        out = asdict(self)
        if not include_plot:
            out.pop("plot", None)
        out = {"yield": self.yield_percent, **out}
        return _clean(out)

    @classmethod
    def rejected(
        cls,
        reasons: list[str],
        *,
        source: dict[str, Any],
        software: dict[str, str],
        processing: dict[str, Any] | None = None,
        nucleus: str | None = None,
    ) -> AnalysisResult:
        return cls(
            status="rejected",
            reasons=list(reasons),
            yield_percent=None,
            yield_sd_percent=None,
            conversion_percent=None,
            throughput_mmol_h=None,
            concentrations_M={},
            integrals={},
            snr={},
            processing=processing or {},
            software=software,
            source=source,
            nucleus=nucleus,
        )


def natural_line_width_hz(fwhm_hz: float | None, line_broadening_hz: float) -> float | None:
    """A fitted line's width at half height less the exponential line broadening the
    processing added (Lorentzian widths add): what the shim left."""
    return None if fwhm_hz is None else max(0.0, fwhm_hz - line_broadening_hz)


def standard_line_width_hz(result: AnalysisResult | Mapping[str, Any]) -> float | None:
    """The internal standard's natural line width (Hz) in a result, or in a stored one
    (``to_dict()``); None when it was not fitted. One shim broadens every line alike, so
    this is how well the NMR was shimmed."""
    data: Mapping[str, Any] = (
        {"integrals": {k: asdict(v) for k, v in result.integrals.items()},
         "processing": result.processing}
        if isinstance(result, AnalysisResult)
        else result
    )  # not to_dict(): that copies the plot's arrays too
    integrals = data.get("integrals")
    processing = data.get("processing")
    if not isinstance(integrals, Mapping):
        return None
    broadening = processing.get("line_broadening_hz") if isinstance(processing, Mapping) else None
    for report in integrals.values():
        if isinstance(report, Mapping) and report.get("role") == "internal_standard":
            fwhm = report.get("fwhm_hz")
            if isinstance(fwhm, int | float) and not isinstance(fwhm, bool):
                lb = broadening if isinstance(broadening, int | float) else 0.0
                return natural_line_width_hz(float(fwhm), float(lb))
    return None
