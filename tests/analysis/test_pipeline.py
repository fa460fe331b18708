"""analyze_folder end to end: processing, referencing, quantities and the stored record."""

from __future__ import annotations

import json

import numpy as np
import pytest
from nmr_test_data import BASIC_ANALYSIS, PRODUCT, TMB, FolderFactory

import robochem
from robochem.analysis import AnalysisConfig, analyze_folder, read_fid
from robochem.analysis.pipeline import decimate_for_plot
from robochem.analysis.processing import Spectrum, process_fid
from robochem.simulator.nmr_synth import Signal


@pytest.mark.parametrize(("p0", "p1"), [(0, 0), (90, 0), (180, 0), (-180, 30), (-120, -30)])
def test_phase_errors_are_removed(
    make_folder: FolderFactory, basic_config: AnalysisConfig, p0: float, p1: float
) -> None:
    folder = make_folder(snr=300, phase0_deg=p0, phase1_deg=p1, seed=3)
    result = analyze_folder(folder, basic_config)
    assert result.status == "ok", result.reasons
    assert result.yield_percent == pytest.approx(80.0, abs=1.5)
    for report in result.integrals.values():
        assert abs(report.phase_residual_deg) < 5.0


def residual_phase_deg(spec: Spectrum, ppm: float, half_width_ppm: float = 0.05) -> float:
    """The phase left at a peak: the angle of the spectrum summed over a window centred on
    it (an absorptive line's dispersive part is odd about its centre and cancels)."""
    window = np.abs(spec.ppm - ppm) <= half_width_ppm
    return float(np.degrees(np.angle(np.sum(spec.real[window] + 1j * spec.imag[window]))))


def test_phase_robust_at_low_snr(make_folder: FolderFactory) -> None:
    folder = make_folder(snr=20, phase0_deg=170, phase1_deg=-25, seed=4)
    spec = process_fid(read_fid(folder))
    # the standard and the product come out absorptive: the phase left at each is small
    # (170 degrees of zero-order error put in; a correction off by 10 degrees fails)
    for ppm in (6.08, 7.2):
        assert abs(residual_phase_deg(spec, ppm)) < 5.0, ppm
    # and positive
    i = int(np.argmin(np.abs(spec.ppm - 6.08)))
    assert spec.real[i - 2 : i + 3].max() > 10 * spec.noise_sd


@pytest.mark.parametrize("drift", [-0.05, 0.03, 0.05])
def test_referencing_corrects_drift(
    make_folder: FolderFactory, basic_config: AnalysisConfig, drift: float
) -> None:
    result = analyze_folder(make_folder(snr=1000, shift_drift_ppm=drift), basic_config)
    assert result.status == "ok", result.reasons
    assert result.processing["reference_shift_ppm"] == pytest.approx(-drift, abs=0.005)
    assert result.integrals["TMB"].line_centers_ppm[0] == pytest.approx(6.08, abs=0.005)
    assert result.yield_percent == pytest.approx(80.0, abs=0.5)


def test_linewidths(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    for lw in (0.5, 3.0):
        result = analyze_folder(make_folder(snr=1000, linewidth_hz=lw), basic_config)
        assert result.yield_percent == pytest.approx(80.0, abs=0.5)
        assert result.integrals["TMB"].fwhm_hz == pytest.approx(lw + 0.5, rel=0.05)


def test_conversion_side_products_and_throughput(make_folder: FolderFactory) -> None:
    substrate = Signal(7.75, 2, 0.015, (1, 1), 8.0)  # 85 % conversion of 0.1 M
    side = Signal(8.30, 1, 0.005)
    folder = make_folder(signals=(TMB, PRODUCT, substrate, side), snr=2000)
    block = dict(BASIC_ANALYSIS)
    block["limiting_reagent"] = {
        "name": "ArBr",
        "concentration": "100 mM",
        "region": [7.6, 7.9],
        "nuclei": 2,
    }
    block["side_products"] = [{"name": "dimer", "region": [8.2, 8.4], "nuclei": 1}]
    result = analyze_folder(folder, AnalysisConfig.model_validate(block), flow_rate_ml_min=0.5)
    assert result.status == "ok", result.reasons
    assert result.yield_percent == pytest.approx(80.0, abs=0.3)
    assert result.conversion_percent == pytest.approx(85.0, abs=0.3)
    assert result.concentrations_M["dimer"] == pytest.approx(0.005, rel=0.03)
    # 0.08 mol/L × 0.5 mL/min = 0.04 mmol/min = 2.4 mmol/h
    assert result.throughput_mmol_h == pytest.approx(2.4, rel=0.01)


def test_result_record(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    folder = make_folder(snr=500, n_points=32768)
    result = analyze_folder(folder, basic_config)
    d = json.loads(json.dumps(result.to_dict()))  # JSON-able
    assert d["yield"] == d["yield_percent"] and d["status"] == "ok"
    assert set(d["concentrations_M"]) == {"TMB", "product"}
    assert d["snr"]["TMB"] > 100
    assert d["integrals"]["product"]["n_lines"] == 3
    proc = d["processing"]
    for key in (
        "line_broadening_hz",
        "zero_fill_size",
        "phase0_deg",
        "phase1_deg",
        "baseline",
        "reference_shift_ppm",
    ):
        assert key in proc
    assert proc["zero_fill_size"] == 65536
    assert d["software"]["robochem"] == robochem.__version__
    assert "nmrglue" in d["software"]
    assert d["source"]["path"].endswith(folder.name)
    assert len(d["source"]["sha256"]) == 64
    plot = d["plot"]
    assert 100 < len(plot["ppm"]) <= 4000 and len(plot["ppm"]) == len(plot["intensity"])
    assert np.all(np.diff(plot["ppm"]) <= 0)
    assert {r["name"] for r in plot["regions"]} == {"TMB", "product"}
    assert "plot" not in result.to_dict(include_plot=False)


def test_decimation_keeps_peaks() -> None:
    ppm = np.linspace(10, 0, 65536)
    y = np.exp(-(((ppm - 3.0) / 0.002) ** 2))
    p, v = decimate_for_plot(ppm, y, 4000)
    assert len(p) <= 4000
    assert v.max() == pytest.approx(y.max())
    p, v = decimate_for_plot(ppm, y, 4000, focus=(2.5, 3.5))
    assert len(p) <= 4000 and v.max() == pytest.approx(y.max())
    assert np.all(np.diff(p) <= 0)


def test_nineteen_f(make_folder: FolderFactory) -> None:
    block = {
        "nucleus": "19F",
        "internal_standard": {
            "name": "PhCF3",
            "region": [-63.4, -64.0],
            "nuclei": 3,
            "concentration": "50 mM",
        },
        "product": {"name": "ArF", "region": [-112.5, -113.5], "nuclei": 1},
        "limiting_reagent": {"concentration": "0.1 M"},
    }
    folder = make_folder(
        signals=(Signal(-63.72, 3, 0.05), Signal(-113.0, 1, 0.065, (1, 1), 9.0)),
        nucleus="19F",
        b1_freq_mhz=40.91,
        bandwidth_hz=20000.0,
        center_ppm=-100.0,
        n_points=32768,
        phase0_deg=-150,
        snr=1000,
    )
    result = analyze_folder(folder, AnalysisConfig.model_validate(block))
    assert result.status == "ok", result.reasons
    assert result.nucleus == "19F"
    assert result.yield_percent == pytest.approx(65.0, abs=0.5)
