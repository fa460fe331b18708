"""``robochem run``/``campaigns list``/``export`` as processes against ``robochem sim``.
The crash test (kill -9, then ``--resume`` to the end) is tests/protocols/test_chaos.py."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_kit import ROOT, engine_protocol
from supervised import sim_process

ROBOCHEM = [sys.executable, "-m", "robochem.cli"]
#: a terminal wide enough for rich's tables not to wrap their cells
WIDE = {**os.environ, "COLUMNS": "200"}


def robochem(*args: str, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*ROBOCHEM, *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def test_dry_run_prints_duration_and_reagents() -> None:
    result = robochem(
        "run",
        str(ROOT / "protocols/examples/cf3-trifluoromethylation.yaml"),
        "--platform",
        str(ROOT / "protocols/platforms/simulated.yaml"),
        "--dry-run",
    )
    assert result.returncode == 0, result.stderr
    assert "estimated duration:" in result.stdout
    for stock in ("substrate", "reagent", "catalyst", "MeCN"):
        assert stock in result.stdout


def test_dry_run_and_validate_show_the_reagent_upper_bound() -> None:
    """The bound that test_example_campaign.py checks against a campaign's actual use is the
    one a chemist sees, in ``run --dry-run`` and in ``validate``."""
    from robochem.protocols.checks import reagent_needs
    from robochem.protocols.load import load_platform, load_protocol

    example = ROOT / "protocols/examples/hat-alkylation.yaml"
    platform_file = ROOT / "protocols/platforms/simulated.yaml"
    platform = load_platform(platform_file)
    needs = reagent_needs(load_protocol(example, platform), platform)
    dry = robochem("run", str(example), "--platform", str(platform_file), "--dry-run", env=WIDE)
    assert dry.returncode == 0, dry.stderr
    assert "upper bound (mL)" in dry.stdout
    rows = {
        cells[0]: cells
        for line in dry.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│┃ ").split("│")]) == 6
    }
    for stock, (needed, available) in needs.items():
        assert stock in rows, (stock, dry.stdout)
        assert float(rows[stock][3]) == pytest.approx(needed, rel=1e-3)
        assert float(rows[stock][4]) == pytest.approx(available)
    checked = robochem("validate", str(example), "--platform", str(platform_file))
    assert checked.returncode == 0, checked.stderr
    assert f"catalyst: up to {needs['catalyst'][0]:.4g} mL of 300 mL" in checked.stdout


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Path]:
    """``robochem sim`` at x1000 in its own process; yields its platform file."""
    with sim_process(tmp_path, speed=1000) as lab:
        yield lab.platform


def test_run_list_and_export(sim: Path, tmp_path: Path) -> None:
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(engine_protocol(budget=2))
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = robochem(
        "run", str(protocol), "--platform", str(sim), "--db", db, "--on-rejected", "fail"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "campaign 1"
    assert "campaign 1 completed" in result.stderr

    listed = robochem("campaigns", "list", "--json", "--db", db)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["id"] == 1 and row["status"] == "completed" and row["name"] == "hat-alkylation"
    assert set(row["best"]) == {"yield", "throughput"}

    exported = robochem("export", "1", "--format", "csv", "--db", db)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert rows[0][:7] == [
        "index",
        "status",
        "residence_time (s)",
        "light (%)",
        "catalyst_loading (equiv)",
        "concentration (M)",
        "temperature (degC)",
    ]
    assert {"yield (%)", "conversion (%)", "throughput (mmol/h)", "qc_status"} <= set(rows[0])
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(len(rows) - 1)]

    out = tmp_path / "c1.xlsx"
    assert (
        robochem("export", "1", "--format", "xlsx", "--out", str(out), "--db", db).returncode == 0
    )
    import pandas as pd

    frame = pd.read_excel(out)
    assert list(frame.columns) == rows[0] and len(frame) == len(rows) - 1
