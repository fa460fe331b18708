"""The ``analysis:`` block of a protocol file, as a validated pydantic model.

Example::

    nucleus: 1H
    internal_standard: {name: TMB, region: [5.95, 6.20], nuclei: 3, concentration: 0.05 M}
    product: {name: product, region: [7.05, 7.35], nuclei: 2}
    limiting_reagent: {concentration: 0.1 M}

Regions are in ppm in either order; concentrations are text with units (``"0.05 M"``,
``"50 mM"``, ``"0.05 mol/L"``) or a bare number in mol/L. Unknown keys are rejected.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AnalysisConfig",
    "InternalStandard",
    "LimitingReagent",
    "ProcessingOptions",
    "QCThresholds",
    "Species",
    "parse_concentration",
]


@lru_cache(maxsize=1)
def _ureg() -> Any:
    import pint

    reg = pint.UnitRegistry()
    reg.define("molar = mole / liter = M")
    return reg


def parse_concentration(value: object) -> float:
    """Parse ``"0.05 M"``, ``"50 mM"``, ``"0.05 mol/L"`` or a number (mol/L) to mol/L."""
    if isinstance(value, bool):
        raise ValueError("concentration must be a number or text with units")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        import pint

        reg = _ureg()
        try:
            quantity = reg.Quantity(value.strip())
        except (pint.errors.PintError, ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"cannot parse concentration {value!r}: {exc}") from None
        if isinstance(quantity, int | float):
            result = float(quantity)
        else:
            try:
                result = float(quantity.to("mol/L").magnitude)
            except pint.errors.DimensionalityError:
                raise ValueError(
                    f"concentration {value!r} is not an amount per volume (e.g. '0.05 M')"
                ) from None
    else:
        raise ValueError("concentration must be a number or text with units")
    if not result > 0 or result != result or result == float("inf"):
        raise ValueError(f"concentration must be positive and finite, got {value!r}")
    return result


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Species(_Strict):
    """A signal to integrate: a ppm region and the number of nuclei it represents."""

    name: str = "species"
    region: tuple[float, float]
    nuclei: float = Field(gt=0)

    @field_validator("region", mode="after")
    @classmethod
    def _order_region(cls, value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = sorted(float(v) for v in value)
        if not hi > lo:
            raise ValueError("region must have two different ppm limits")
        return (lo, hi)

    @property
    def lo(self) -> float:
        return self.region[0]

    @property
    def hi(self) -> float:
        return self.region[1]


class InternalStandard(Species):
    """The internal standard: its region is also the referencing window."""

    name: str = "internal_standard"
    concentration: float = Field(description="mol/L; text with units accepted")
    #: nominal chemical shift used for referencing; defaults to the region centre
    shift: float | None = None

    @field_validator("concentration", mode="before")
    @classmethod
    def _parse_conc(cls, value: object) -> float:
        return parse_concentration(value)

    @model_validator(mode="after")
    def _shift_inside(self) -> InternalStandard:
        if self.shift is not None and not self.lo <= self.shift <= self.hi:
            raise ValueError("internal_standard.shift must lie inside its region")
        return self

    @property
    def nominal_shift(self) -> float:
        return self.shift if self.shift is not None else 0.5 * (self.lo + self.hi)


class LimitingReagent(_Strict):
    """Initial concentration of the limiting reagent; optionally its remaining signal."""

    name: str = "limiting_reagent"
    concentration: float
    region: tuple[float, float] | None = None
    nuclei: float | None = Field(default=None, gt=0)

    @field_validator("concentration", mode="before")
    @classmethod
    def _parse_conc(cls, value: object) -> float:
        return parse_concentration(value)

    @field_validator("region", mode="after")
    @classmethod
    def _order_region(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is None:
            return None
        lo, hi = sorted(float(v) for v in value)
        if not hi > lo:
            raise ValueError("region must have two different ppm limits")
        return (lo, hi)

    @model_validator(mode="after")
    def _region_needs_nuclei(self) -> LimitingReagent:
        if (self.region is None) != (self.nuclei is None):
            raise ValueError("limiting_reagent needs both region and nuclei, or neither")
        return self

    def as_species(self) -> Species | None:
        if self.region is None or self.nuclei is None:
            return None
        return Species(name=self.name, region=self.region, nuclei=self.nuclei)


class ProcessingOptions(_Strict):
    """Processing parameters (defaults suit 43–80 MHz benchtop 1H/19F spectra)."""

    line_broadening_hz: float = Field(default=0.5, ge=0, le=20)
    #: minimum zero-filled size; the FID is always zero-filled to at least twice its length
    zero_fill: int = Field(default=32768, ge=1024, le=1 << 20)
    baseline: Literal["polynomial", "none"] = "polynomial"
    baseline_order: int = Field(default=2, ge=0, le=6)
    #: region-fit model; "window" is a plain trapezoidal integration (for comparison)
    integration: Literal["lineshape", "window"] = "lineshape"
    #: ppm searched outside each region for neighbouring lines that spill in
    fit_margin_ppm: float = Field(default=0.12, gt=0, le=2)
    #: relative SD of the soft prior that ties every other window's line width to the
    #: internal standard's (one shim); 0 leaves the width free within 0.7–1.5×
    width_prior: float = Field(default=0.02, ge=0, le=1)


class QCThresholds(_Strict):
    """Quality-control limits. See docs/nmr-analysis.md for what each one catches."""

    min_is_snr: float = Field(default=10.0, gt=0)
    warn_is_snr: float = Field(default=50.0, gt=0)
    warn_peak_snr: float = Field(default=10.0, gt=0)
    #: expected internal-standard integral (same units as the reported integral); None = skip
    expected_is_integral: float | None = Field(default=None, gt=0)
    is_integral_warn: float = Field(default=0.10, gt=0)
    is_integral_reject: float = Field(default=0.25, gt=0)
    drift_warn_ppm: float = Field(default=0.06, gt=0)
    phase_warn_deg: float = Field(default=10.0, gt=0)
    phase_reject_deg: float = Field(default=45.0, gt=0)
    fit_chi_warn: float = Field(default=2.0, gt=0)
    fit_chi_reject: float = Field(default=6.0, gt=0)
    max_linewidth_hz: float = Field(default=6.0, gt=0)
    #: share of a region's window integral explained by lines centred outside it
    spill_warn: float = Field(default=0.35, gt=0)
    spill_reject: float = Field(default=0.75, gt=0)
    max_yield_percent: float = Field(default=105.0, gt=0)
    reject_yield_percent: float = Field(default=150.0, gt=0)


class AnalysisConfig(_Strict):
    """The ``analysis:`` block."""

    nucleus: str = "1H"
    internal_standard: InternalStandard
    product: Species
    limiting_reagent: LimitingReagent
    substrate: Species | None = None
    side_products: list[Species] = Field(default_factory=list)
    processing: ProcessingOptions = Field(default_factory=ProcessingOptions)
    qc: QCThresholds = Field(default_factory=QCThresholds)

    @field_validator("nucleus", mode="before")
    @classmethod
    def _norm_nucleus(cls, value: object) -> str:
        text = str(value).strip().lstrip("^")
        if not text:
            raise ValueError("nucleus must not be empty")
        return text

    @model_validator(mode="after")
    def _check_regions(self) -> AnalysisConfig:
        if self.substrate is not None and self.limiting_reagent.region is not None:
            raise ValueError("give the substrate region either as substrate or limiting_reagent")
        species = self.species()
        names = [s.name for _, s in species]
        if len(set(names)) != len(names):
            raise ValueError(f"species names must be unique, got {names}")
        for i, (_, a) in enumerate(species):
            for _, b in species[i + 1 :]:
                if a.lo < b.hi and b.lo < a.hi:
                    raise ValueError(
                        f"regions of {a.name!r} {list(a.region)} and {b.name!r} "
                        f"{list(b.region)} overlap"
                    )
        return self

    def species(self) -> list[tuple[str, Species]]:
        """``(role, species)`` for every region to integrate, internal standard first."""
        out: list[tuple[str, Species]] = [
            ("internal_standard", self.internal_standard),
            ("product", self.product),
        ]
        substrate = self.substrate or self.limiting_reagent.as_species()
        if substrate is not None:
            out.append(("substrate", substrate))
        out.extend(("side_product", s) for s in self.side_products)
        return out

    @classmethod
    def from_yaml(cls, path: str | Path) -> AnalysisConfig:
        """Load a YAML file holding either the block itself or a protocol with ``analysis:``,
        through the protocol files' YAML door (size, aliases, nesting and tags are checked;
        problems raise ``ProtocolError``, a ``ValueError``, naming file, line and column)."""
        from robochem.protocols.source import read_text, yaml_data

        data = yaml_data(read_text(path), str(path))
        if isinstance(data, dict) and "analysis" in data and "internal_standard" not in data:
            data = data["analysis"]
        return cls.model_validate(data)
