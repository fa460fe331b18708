"""Bad data never yields a silent number: it comes back ``rejected`` with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nmr_test_data import BASIC_ANALYSIS, PRODUCT, TMB, FolderFactory

from robochem.analysis import AnalysisConfig, analyze_folder
from robochem.analysis.result import AnalysisResult
from robochem.simulator.nmr_synth import Signal, b1_for_nucleus


def _rejected(result: AnalysisResult, *words: str) -> None:
    assert result.status == "rejected", result.reasons
    assert result.yield_percent is None
    assert result.to_dict()["yield"] is None
    assert not result.ok_for_optimizer
    text = " ".join(result.reasons)
    for word in words:
        assert word in text, (word, result.reasons)


def test_good_spectrum_is_ok(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    result = analyze_folder(make_folder(snr=1000), basic_config)
    assert result.status == "ok", result.reasons
    assert result.yield_percent == pytest.approx(80.0, abs=0.5)
    assert result.ok_for_optimizer


def test_missing_acqu_par(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    folder = make_folder()
    (folder / "acqu.par").unlink()
    _rejected(analyze_folder(folder, basic_config), "acqu.par")


def test_missing_folder(tmp_path: Path, basic_config: AnalysisConfig) -> None:
    _rejected(analyze_folder(tmp_path / "missing", basic_config), "no such folder")


def test_truncated_data(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    folder = make_folder()
    raw = (folder / "data.1d").read_bytes()
    (folder / "data.1d").write_bytes(raw[: 32 + (len(raw) - 32) * 2 // 3])
    _rejected(analyze_folder(folder, basic_config), "data.1d", "truncated")


def test_corrupted_file(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    folder = make_folder()
    rng = np.random.default_rng(0)
    raw = bytearray((folder / "data.1d").read_bytes())
    raw[32 : 32 + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (folder / "data.1d").write_bytes(bytes(raw))
    _rejected(analyze_folder(folder, basic_config), "data.1d")


def test_empty_acquisition(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    folder = make_folder(signals=(), snr=None)
    _rejected(analyze_folder(folder, basic_config), "all zeros")


def test_noise_only(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    folder = make_folder(signals=(), snr=None, noise_sd=0.01)
    _rejected(analyze_folder(folder, basic_config), "internal standard", "not found")


def test_no_internal_standard(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    folder = make_folder(signals=(PRODUCT,), snr=None, noise_sd=0.001)
    _rejected(analyze_folder(folder, basic_config), "internal standard")


def test_wrong_nucleus(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    b1 = b1_for_nucleus("19F")
    folder = make_folder(
        signals=(Signal(-63.7, 3, 0.05),),
        nucleus="19F",
        b1_freq_mhz=b1,
        center_ppm=-100.0,
        bandwidth_hz=20000.0,
    )
    _rejected(analyze_folder(folder, basic_config), "wrong nucleus", "19F")


def test_mis_referenced(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    # the whole spectrum sits 0.4 ppm off: nothing where the standard should be
    folder = make_folder(shift_drift_ppm=0.4)
    _rejected(analyze_folder(folder, basic_config), "internal standard")


def test_mis_referenced_onto_region_edge(
    make_folder: FolderFactory, basic_config: AnalysisConfig
) -> None:
    folder = make_folder(shift_drift_ppm=0.13)  # TMB lands on the region's upper limit
    _rejected(analyze_folder(folder, basic_config), "internal standard")


def test_region_outside_window(make_folder: FolderFactory) -> None:
    block = dict(BASIC_ANALYSIS)
    block["product"] = {"name": "product", "region": [150, 160], "nuclei": 2}
    folder = make_folder()
    _rejected(analyze_folder(folder, AnalysisConfig.model_validate(block)), "outside")


def test_internal_standard_integral_against_expectation(
    make_folder: FolderFactory, basic_config: AnalysisConfig
) -> None:
    folder = make_folder(snr=1000)
    good = analyze_folder(folder, basic_config)
    expected = good.integrals["TMB"].integral
    # a diluted slug (air bubble, missed slug): half the standard's signal
    diluted = make_folder(
        signals=(Signal(6.08, 3, 0.025), Signal(7.2, 2, 0.04, (1, 2, 1), 7.0)), snr=500
    )
    result = analyze_folder(diluted, basic_config, expected_is_integral=expected)
    _rejected(result, "expected", "dilution")
    # 15 % low: a warning, the yield is still reported
    slightly = make_folder(
        signals=(Signal(6.08, 3, 0.0425), Signal(7.2, 2, 0.068, (1, 2, 1), 7.0)), snr=1000
    )
    result = analyze_folder(slightly, basic_config, expected_is_integral=expected)
    assert result.status == "warning" and result.yield_percent is not None
    assert result.yield_percent == pytest.approx(80.0, abs=1.0)


def test_phase_failure_or_negative_product(
    make_folder: FolderFactory, basic_config: AnalysisConfig
) -> None:
    # a product line inverted relative to the standard cannot be phased away: whichever
    # line the phasing makes positive, the other comes out negative
    inverted = Signal(7.2, 2, -0.08)
    folder = make_folder(signals=(TMB, inverted), snr=1000)
    result = analyze_folder(folder, basic_config)
    _rejected(result, "negative")


def test_impossible_yield(make_folder: FolderFactory, basic_config: AnalysisConfig) -> None:
    folder = make_folder(signals=(TMB, Signal(7.2, 2, 0.2)), snr=1000)  # 200 %
    _rejected(analyze_folder(folder, basic_config), "impossible")


def test_zero_yield_is_a_valid_result(
    make_folder: FolderFactory, basic_config: AnalysisConfig
) -> None:
    folder = make_folder(signals=(TMB,), snr=500)
    result = analyze_folder(folder, basic_config)
    assert result.status in ("ok", "warning")
    assert result.yield_percent == pytest.approx(0.0, abs=0.5)
