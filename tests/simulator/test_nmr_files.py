"""Round trip of simulated Spinsolve folders through nmrglue."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import nmrglue as ng
import numpy as np
import pytest

from robochem.simulator.nmr_files import write_spinsolve_folder
from robochem.simulator.nmr_synth import Signal, b1_for_nucleus, synthesize_fid


def _peak_ppm(dic: dict, fid: np.ndarray) -> float:
    spec = ng.proc_base.fft(fid)
    uc = ng.spinsolve.make_uc(dic, spec)
    return float(uc.ppm(int(np.argmax(spec.real))))


def test_data_1d_and_acqu_par_round_trip(tmp_path: Path) -> None:
    fid = synthesize_fid(
        [Signal(6.08, 3, 0.05), Signal(7.2, 2, 0.08)],
        center_ppm=5.0,
        n_points=4096,
        linewidth_hz=1.0,
    )
    when = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    folder = write_spinsolve_folder(
        tmp_path / "exp1",
        fid,
        nucleus="1H",
        b1_freq_mhz=43.49,
        bandwidth_hz=5000.0,
        center_ppm=5.0,
        sample="rxn_0042",
        user_data={"campaign": "c1", "iter": "5"},
        when=when,
    )
    text = (folder / "acqu.par").read_text()
    assert "\n\n" not in text and text.strip()
    dic, data = ng.spinsolve.read(str(folder), specfile="data.1d")
    assert data.dtype.kind == "c" and data.size == 4096
    np.testing.assert_allclose(data, fid, rtol=0, atol=1e-6)
    acqu = dic["acqu"]
    assert acqu["rxChannel"] == "1H"
    assert acqu["Sample"] == "rxn_0042"
    assert acqu["userData"] == "campaign=c1;iter=5"
    assert acqu["CurrentTime"] == "2024-01-01T12:00:00.000"
    assert acqu["nrPnts"] == 4096
    np.testing.assert_allclose(dic["spectrum"]["xaxis"][1], 1 / 5000.0, rtol=1e-6)
    # the sign convention puts the tallest line (product: 0.16 vs TMB 0.15) at its shift
    assert _peak_ppm(dic, data) == pytest.approx(7.2, abs=0.03)


def test_peak_positions_follow_sign_convention(tmp_path: Path) -> None:
    for shift in (1.0, 6.08, 9.5):
        fid = synthesize_fid([Signal(shift, 1, 1.0)], center_ppm=5.0, n_points=16384)
        folder = write_spinsolve_folder(
            tmp_path / f"s{shift}",
            fid,
            nucleus="1H",
            b1_freq_mhz=43.49,
            bandwidth_hz=5000.0,
            center_ppm=5.0,
        )
        dic, data = ng.spinsolve.read(str(folder), specfile="data.1d")
        assert _peak_ppm(dic, data) == pytest.approx(shift, abs=0.01)


def test_spectrum_1d_and_jcamp(tmp_path: Path) -> None:
    b1 = b1_for_nucleus("19F")
    fid = synthesize_fid(
        [Signal(-63.0, 3, 0.05)],
        nucleus="19F",
        b1_freq_mhz=b1,
        bandwidth_hz=20000.0,
        center_ppm=-100.0,
        n_points=2048,
        linewidth_hz=2.0,
    )
    folder = write_spinsolve_folder(
        tmp_path / "f",
        fid,
        nucleus="19F",
        b1_freq_mhz=b1,
        bandwidth_hz=20000.0,
        center_ppm=-100.0,
        write_jcamp=True,
        protocol="1D FLUORINE HDEC",
    )
    dic, spec = ng.spinsolve.read(str(folder), specfile="spectrum.1d")
    ppm = dic["spectrum"]["xaxis"]
    assert ppm[int(np.argmax(np.abs(spec)))] == pytest.approx(-63.0, abs=0.5)

    dic_dx, data_dx = ng.spinsolve.read(str(folder), specfile="nmr_fid.dx")
    np.testing.assert_allclose(data_dx, fid, atol=1e-6)
    # without acqu.par the axis comes from the JCAMP header
    dic_dx["acqu"] = {}
    assert _peak_ppm(dic_dx, data_dx) == pytest.approx(-63.0, abs=0.05)


def test_area_proportional_to_concentration_times_nuclei() -> None:
    fid = synthesize_fid(
        [Signal(2.0, 3, 0.05), Signal(8.0, 1, 0.15, multiplicity=(1, 2, 1), j_hz=7.0)],
        center_ppm=5.0,
        n_points=16384,
        linewidth_hz=1.0,
    )
    fid = fid.astype(np.complex128)
    fid[0] *= 0.5
    spec = np.fft.fftshift(np.fft.fft(fid)).real
    uc = ng.fileiobase.unit_conversion(spec.size, True, 5000.0, 43.49, 5.0 * 43.49)
    ppm = uc.ppm_scale()
    a = spec[(ppm > 0.0) & (ppm < 4.0)].sum()
    b = spec[(ppm > 6.0) & (ppm < 10.0)].sum()
    assert a / b == pytest.approx(1.0, rel=0.01)
