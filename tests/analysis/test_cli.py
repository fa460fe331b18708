"""``robochem nmr analyze``: one JSON object on stdout, optional PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from nmr_test_data import BASIC_ANALYSIS, FolderFactory
from typer.testing import CliRunner

from robochem.analysis.cli import nmr_app


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump({"analysis": BASIC_ANALYSIS}))
    return path


def test_analyze_prints_json_and_plots(
    make_folder: FolderFactory, config_file: Path, tmp_path: Path
) -> None:
    folder = make_folder(snr=1000)
    png = tmp_path / "spectrum.png"
    out = CliRunner().invoke(
        nmr_app,
        ["analyze", str(folder), "--config", str(config_file), "--plot", str(png)],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["status"] == "ok"
    assert isinstance(data["yield"], float) and abs(data["yield"] - 80.0) < 0.5
    assert "plot" not in data
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rejected_gives_null_yield(make_folder: FolderFactory, config_file: Path) -> None:
    folder = make_folder()
    (folder / "acqu.par").unlink()
    out = CliRunner().invoke(nmr_app, ["analyze", str(folder), "--config", str(config_file)])
    assert out.exit_code == 0
    data = json.loads(out.stdout)
    assert data["status"] == "rejected" and data["yield"] is None
    assert any("acqu.par" in r for r in data["reasons"])


def test_bad_config_is_an_error(make_folder: FolderFactory, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nucleus: 1H\nproduct: {region: [1, 2], nuclei: 1}\n")
    out = CliRunner().invoke(nmr_app, ["analyze", str(make_folder()), "--config", str(bad)])
    assert out.exit_code == 2


def test_registered_in_main_cli() -> None:
    from robochem.cli import app

    out = CliRunner().invoke(app, ["nmr", "analyze", "--help"])
    assert out.exit_code == 0
    assert "--config" in out.output
