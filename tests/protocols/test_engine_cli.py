"""``robochem run``/``campaigns list``/``export`` as processes against ``robochem sim``,
and (slow) the crash test: the engine killed with SIGKILL, then ``--resume`` to the end."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_kit import ROOT, engine_protocol
from sqlalchemy import select
from supervised import controller_of

from robochem.protocols.runtime.supervisor import EXIT_CONTROLLER_DIED
from robochem.storage.db import Database
from robochem.storage.models import Campaign, Experiment

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
    platform = tmp_path / "platform.yaml"
    proc = subprocess.Popen(
        [*ROBOCHEM, "sim", "--json", "--platform-out", str(platform), "--speed", "1000",
         "--data-dir", str(tmp_path / "nmr"), "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # the JSON line: the servers are up
        yield platform
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


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


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_completes(sim: Path, tmp_path: Path) -> None:
    """Kill the engine (the controller ``robochem run`` supervises) with SIGKILL a few
    times; --resume always finishes the campaign with nothing lost or duplicated
    (ROBOCHEM_TEST_KILLS sets the number of kills, default 5)."""
    kills = int(os.environ.get("ROBOCHEM_TEST_KILLS", "5"))
    rng = random.Random(7)
    protocol = tmp_path / "protocol.yaml"
    budget = 3
    protocol.write_text(engine_protocol(budget=budget))
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    base = ["--platform", str(sim), "--db", db_url, "--on-rejected", "fail"]
    args = ["run", str(protocol), *base]
    campaign_id = None
    for _ in range(kills):
        proc = subprocess.Popen(
            [*ROBOCHEM, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if campaign_id is None:
            campaign_id = int(first.split()[1])
            args = ["run", "--resume", str(campaign_id), *base]
        controller = controller_of(proc)
        time.sleep(rng.uniform(1.0, 6.0))  # start-up takes ~2 s
        if proc.poll() is not None:
            break  # finished before the kill
        os.kill(controller, signal.SIGKILL)
        # the supervisor made the lab safe; a kill before the devices were open leaves it
        # nothing to do, and it exits as its controller did
        assert proc.wait(30) in (EXIT_CONTROLLER_DIED, 128 + signal.SIGKILL)
    final = robochem(*args, timeout=300)
    assert final.returncode == 0 or "completed: it cannot run again" in final.stderr, final.stderr

    db = Database(db_url)
    with db.session() as s:
        campaign = s.get(Campaign, campaign_id)
        assert campaign is not None and campaign.status == "completed"
        exps = list(
            s.scalars(
                select(Experiment)
                .where(Experiment.campaign_id == campaign_id)
                .order_by(Experiment.index)
            )
        )
    db.dispose()
    assert [e.index for e in exps] == list(range(len(exps)))
    superseded = {e.repeat_of_id for e in exps if e.repeat_of_id}
    told = [e for e in exps if e.status in ("done", "failed") and e.id not in superseded]
    assert len(told) == budget
    # the kills landed in experiments (not only in start-up), and every interrupted
    # experiment was repeated exactly once, with the same conditions
    assert any(e.status == "interrupted" for e in exps)
    by_id = {e.id: e for e in exps}
    for e in exps:
        repeats = [r for r in exps if r.repeat_of_id == e.id]
        if e.status == "interrupted":
            assert len(repeats) == 1 and repeats[0].conditions == e.conditions
        if e.repeat_of_id:
            assert by_id[e.repeat_of_id].conditions == e.conditions
        assert e.status != "running" and e.status != "queued"
    # the stored optimiser state holds exactly the told experiments, in index order
    observations = campaign.optimizer_state["observations"]
    assert [o["point"] for o in observations] == [e.conditions for e in told]
