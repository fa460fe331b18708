"""Reading Spinsolve folders and JCAMP-DX FIDs; clear errors naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import nmrglue as ng
import numpy as np
import pytest
from nmr_test_data import FolderFactory

from robochem.analysis import NMRDataError, read_fid


def test_reader_agrees_with_nmrglue(make_folder: FolderFactory) -> None:
    folder = make_folder(snr=200)
    fid = read_fid(folder)
    dic, data = ng.spinsolve.read(str(folder), specfile="data.1d")
    np.testing.assert_allclose(fid.data, data, atol=1e-6)
    uc = ng.spinsolve.make_uc(dic, data)
    ours = ng.fileiobase.unit_conversion(fid.n_points, True, fid.sw_hz, fid.obs_mhz, fid.car_hz)
    np.testing.assert_allclose(ours.ppm_scale(), uc.ppm_scale())
    assert fid.nucleus == "1H"
    assert fid.source.name == "data.1d"
    assert len(fid.sha256) == 64
    assert fid.scans == 16


def test_sha256_changes_with_content(make_folder: FolderFactory) -> None:
    a = read_fid(make_folder(seed=1)).sha256
    b = read_fid(make_folder(seed=2)).sha256
    assert a != b


def test_jcamp_and_spectrum_fallbacks(make_folder: FolderFactory, tmp_path: Path) -> None:
    folder = make_folder(snr=None, n_points=2048, folder_kwargs={"write_jcamp": True})
    ref = read_fid(folder)
    # JCAMP-DX alone (no acqu.par, no data.1d): axis from the JCAMP header
    only_dx = tmp_path / "dx"
    only_dx.mkdir()
    shutil.copy(folder / "nmr_fid.dx", only_dx / "nmr_fid.dx")
    fid = read_fid(only_dx)
    assert fid.source.name == "nmr_fid.dx"
    np.testing.assert_allclose(fid.data, ref.data, atol=1e-6)
    assert fid.center_ppm == pytest.approx(ref.center_ppm, abs=1e-6)
    assert fid.nucleus == "1H"
    # spectrum.1d alone (+ acqu.par): transformed back to a FID
    only_spec = tmp_path / "spec"
    only_spec.mkdir()
    for name in ("spectrum.1d", "acqu.par"):
        shutil.copy(folder / name, only_spec / name)
    fid = read_fid(only_spec)
    assert fid.from_spectrum
    np.testing.assert_allclose(fid.data, ref.data, atol=1e-3 * np.abs(ref.data).max())
    # a spectrum.1d stored with an increasing ppm axis is turned round
    from robochem.simulator.nmr_files import write_1d

    raw = np.frombuffer((only_spec / "spectrum.1d").read_bytes(), dtype="<f4", offset=32)
    n = raw.size // 3
    ppm, spec = raw[:n], raw[n::2] + 1j * raw[n + 1 :: 2]
    write_1d(only_spec / "spectrum.1d", ppm[::-1].copy(), spec[::-1].copy())
    flipped = read_fid(only_spec)
    np.testing.assert_allclose(flipped.data, fid.data, atol=1e-6 * np.abs(ref.data).max())


def _expect(path: Path, match: str, name: str) -> None:
    with pytest.raises(NMRDataError, match=match) as info:
        read_fid(path)
    assert name in str(info.value), "the error must name the file"


def test_missing_folder(tmp_path: Path) -> None:
    _expect(tmp_path / "nope", "no such folder", "nope")


def test_empty_folder(tmp_path: Path) -> None:
    _expect(tmp_path, "incomplete folder", tmp_path.name)


def test_missing_acqu_par(make_folder: FolderFactory) -> None:
    folder = make_folder()
    (folder / "acqu.par").unlink()
    _expect(folder, "acqu.par is missing", "acqu.par")


def test_acqu_par_missing_keys(make_folder: FolderFactory) -> None:
    folder = make_folder()
    par = folder / "acqu.par"
    par.write_text("\n".join(ln for ln in par.read_text().splitlines() if "b1Freq" not in ln))
    _expect(folder, "b1Freq", "acqu.par")


def test_acqu_par_garbage(make_folder: FolderFactory) -> None:
    folder = make_folder()
    (folder / "acqu.par").write_bytes(b"\xff\xfe\x00garbage")
    _expect(folder, "corrupt", "acqu.par")


def test_truncated_data(make_folder: FolderFactory) -> None:
    folder = make_folder()
    raw = (folder / "data.1d").read_bytes()
    (folder / "data.1d").write_bytes(raw[: len(raw) // 2])
    _expect(folder, "truncated", "data.1d")


def test_header_only(make_folder: FolderFactory) -> None:
    folder = make_folder()
    (folder / "data.1d").write_bytes((folder / "data.1d").read_bytes()[:20])
    _expect(folder, "too short", "data.1d")


def test_corrupt_values(make_folder: FolderFactory) -> None:
    folder = make_folder()
    raw = bytearray((folder / "data.1d").read_bytes())
    n = 16384
    offset = 32 + 4 * n + 4 * 1000  # inside the complex block
    raw[offset : offset + 4] = np.array([np.nan], dtype="<f4").tobytes()
    (folder / "data.1d").write_bytes(bytes(raw))
    _expect(folder, "NaN", "data.1d")


def test_corrupt_time_axis(make_folder: FolderFactory) -> None:
    folder = make_folder()
    raw = bytearray((folder / "data.1d").read_bytes())
    raw[32 + 40 : 32 + 80] = b"\x00" * 40
    (folder / "data.1d").write_bytes(bytes(raw))
    _expect(folder, "time axis", "data.1d")


def test_nrpnts_mismatch(make_folder: FolderFactory) -> None:
    folder = make_folder()
    par = folder / "acqu.par"
    par.write_text(par.read_text().replace("nrPnts = 16384", "nrPnts = 32768"))
    _expect(folder, "nrPnts", "data.1d")


def test_bad_jcamp(tmp_path: Path) -> None:
    (tmp_path / "nmr_fid.dx").write_text("##TITLE= broken\n##END=\n")
    _expect(tmp_path, "JCAMP", "nmr_fid.dx")
