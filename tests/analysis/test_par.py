"""One reader of Spinsolve parameter files: strict, with errors naming file and line.

The analysis reader (``acqu.par``) and the Spinsolve driver (``shim.par``) both use
``robochem.analysis.par.read_par``; a corrupt file is an error naming the file and the
line, never silently an empty dict.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from robochem.analysis.par import ParFileError, read_par
from robochem.analysis.reader import NMRDataError, read_fid
from robochem.drivers import spinsolve


def test_values_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "acqu.par"
    path.write_text('Solvent = "CDCl3"\n\nnrScans = 16\nb1Freq = 43.49\nShim = QuickShim\n')
    assert read_par(path) == {
        "Solvent": "CDCl3", "nrScans": 16, "b1Freq": 43.49, "Shim": "QuickShim",
    }  # fmt: skip


def test_a_line_without_equals_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "acqu.par"
    path.write_text("nrScans = 16\nb1Freq = 43.49\nthis line is garbage\n")
    with pytest.raises(ParFileError) as failure:
        read_par(path)
    assert failure.value.line == 3
    assert str(failure.value).startswith(f"{path}:3: not 'key = value'")


def test_bytes_that_are_not_text_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "acqu.par"
    path.write_bytes(b"nrScans = 16\nb1Freq = 43.49\nSolvent = \xff\xfe\x00\n")
    with pytest.raises(ParFileError, match=r"acqu\.par:3: not a text parameter file"):
        read_par(path)


def test_a_missing_key_and_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "acqu.par"
    path.write_text("= 5\n")
    with pytest.raises(ParFileError, match=r"acqu\.par:1: no key"):
        read_par(path)
    with pytest.raises(ParFileError, match=r"nothing\.par: cannot read"):
        read_par(tmp_path / "nothing.par")


def test_the_analysis_reader_reports_a_corrupt_acqu_par(make_folder) -> None:
    folder = make_folder()
    par = folder / "acqu.par"
    par.write_text(par.read_text() + "truncated-by-a-crash\n")
    lines = len(par.read_text().splitlines())
    with pytest.raises(NMRDataError) as failure:
        read_fid(folder)
    assert failure.value.path == str(par)
    assert f"line {lines}:" in failure.value.reason


def test_the_driver_reads_shim_par_with_the_same_reader(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "good.par"
    good.write_text("Shim = QuickShim\nLineWidth = 0.85\n")
    assert spinsolve._shim_details(good, "nmr") == {"Shim": "QuickShim", "LineWidth": "0.85"}
    assert spinsolve._shim_details(tmp_path / "absent.par", "nmr") == {}
    bad = tmp_path / "bad.par"
    bad.write_text("Shim = QuickShim\nLineWid")
    with caplog.at_level(logging.WARNING, logger="robochem.drivers.spinsolve"):
        details = spinsolve._shim_details(bad, "nmr")
    assert details == {"error": f"{bad}:2: not 'key = value': 'LineWid'"}
    assert f"{bad}:2" in caplog.text
