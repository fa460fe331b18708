"""`robochem scale-up`: the protocol it writes, its validation and its refusals (no devices).

The finished campaign is stored directly (one done experiment with its measurement), as a
campaign run on the simulated lab leaves it; the engine run is tests/protocols/test_scaleup.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from robochem.cli import app
from robochem.protocols.load import load_platform, parse_protocol
from robochem.protocols.scaleup import plan_scale_up
from robochem.storage.db import Database
from robochem.storage.models import Campaign, Experiment, Measurement

ROOT = Path(__file__).resolve().parents[2]
HAT = ROOT / "protocols" / "examples" / "hat-alkylation.yaml"
SIMULATED = ROOT / "protocols" / "platforms" / "simulated.yaml"
OPTIMUM = {
    "residence_time": 671.2,
    "light": 70.48,
    "catalyst_loading": 0.017264,
    "concentration": 0.0848,
    "temperature": 26.73,
}
FAST = {**OPTIMUM, "residence_time": 60.0, "light": 100.0, "concentration": 0.2}
runner = CliRunner()


def stored_campaign(url: str, status: str = "completed", inventory_ml: float = 100.0) -> int:
    db = Database(url)
    try:
        with db.session() as s:
            campaign = Campaign(
                name="hat-alkylation",
                protocol_text=HAT.read_text(),
                protocol_sha256="0" * 64,
                status=status,
                summary={
                    "platform": "simulated-lab",
                    "inventory": {
                        "substrate": inventory_ml,
                        "donor": 50.0,
                        "catalyst": 50.0,
                        "MeCN": 400.0,
                    },
                },
            )
            s.add(campaign)
            s.flush()
            for index, (conditions, y, tp) in enumerate([(OPTIMUM, 75.0, 1.33), (FAST, 12.0, 8.5)]):
                exp = Experiment(
                    campaign_id=campaign.id, index=index, conditions=conditions, status="done"
                )
                s.add(exp)
                s.flush()
                s.add(
                    Measurement(
                        experiment_id=exp.id,
                        yield_percent=y,
                        throughput_mmol_h=tp,
                        qc_status="ok",
                    )
                )
            return campaign.id
    finally:
        db.dispose()


def test_scale_up_writes_a_valid_protocol(tmp_path: Path, sqlite_url: str) -> None:
    cid = stored_campaign(sqlite_url)
    out = tmp_path / "scale-up.yaml"
    result = runner.invoke(
        app, ["scale-up", str(cid), "--amount", "5 mmol", "--out", str(out), "--db", sqlite_url]
    )
    assert result.exit_code == 0, result.output
    assert "scale-up 'hat-alkylation-scale-up': OK" in result.stderr
    assert "3.76 h of collection" in result.stderr  # 5 mmol / 1.33 mmol/h
    assert "syringe refills: 1" in result.stderr  # the catalyst syringe holds 10 mL
    platform = load_platform(SIMULATED)
    protocol = parse_protocol(out.read_text(), str(out), platform)
    su = protocol.scale_up
    assert su is not None and su.source_campaign == cid and su.objective == "yield"
    assert su.amount.value == 5.0 and su.run_time.value == pytest.approx(5 / 1.33 * 3600, rel=1e-3)
    plan = plan_scale_up(protocol, platform)
    assert plan.conditions == pytest.approx(OPTIMUM, rel=1e-5)
    assert plan.flow_ml_min == pytest.approx(3.9 / 671.2 * 60, rel=1e-5)
    data = yaml.safe_load(out.read_text())
    assert data["stocks"]["substrate"]["available"] == "100 mL"  # what the campaign left
    # the same through robochem validate and robochem run --dry-run
    checked = runner.invoke(app, ["validate", str(out), "--platform", str(SIMULATED)])
    assert checked.exit_code == 0, checked.output
    dry = runner.invoke(app, ["run", str(out), "--platform", str(SIMULATED), "--dry-run"])
    assert dry.exit_code == 0 and "3.76 h of collection" in dry.stdout, dry.output


def test_throughput_objective_picks_the_fast_experiment(sqlite_url: str) -> None:
    cid = stored_campaign(sqlite_url)
    result = runner.invoke(
        app, ["scale-up", str(cid), "-a", "2 mmol", "--objective", "throughput", "--db", sqlite_url]
    )
    data = yaml.safe_load(result.stdout)
    assert data["scale_up"]["conditions"]["residence_time"] == "60 s"
    assert data["scale_up"]["expected_throughput"] == "8.5 mmol/h"
    # at 1 min residence time the catalyst syringe (10 mL) empties during the start-up:
    # refused with the reason, not run until a syringe is dry
    assert result.exit_code == 1
    assert (
        "scale_up.steady_state.max_time: pump-catalyst (a syringe pump with 10 mL) delivers "
        "28.28 mL at 0.6733 mL/min in the longest start-up (42 min)" in result.stderr
    ), result.stderr


def test_not_enough_stock_is_an_error_at_the_field(tmp_path: Path, sqlite_url: str) -> None:
    cid = stored_campaign(sqlite_url, inventory_ml=5.0)
    out = tmp_path / "s.yaml"
    result = runner.invoke(
        app, ["scale-up", str(cid), "--amount", "5 mmol", "-o", str(out), "--db", sqlite_url]
    )
    assert result.exit_code == 1
    line = next(i for i, t in enumerate(out.read_text().splitlines(), 1) if "5 mL" in t)
    assert (
        f"{out}:{line}:16: stocks.substrate.available: '5 mL' is not enough for the scale-up"
        in result.stderr
    ), result.stderr
    assert "problem(s): the scale-up cannot run as written" in result.stderr


def test_refusals(sqlite_url: str) -> None:
    running = stored_campaign(sqlite_url, status="running")
    result = runner.invoke(app, ["scale-up", str(running), "-a", "1 mmol", "--db", sqlite_url])
    assert result.exit_code == 1 and "scale up a completed campaign" in result.stderr
    missing = runner.invoke(app, ["scale-up", "999", "-a", "1 mmol", "--db", sqlite_url])
    assert missing.exit_code == 1 and "no campaign 999" in missing.stderr
    bad = runner.invoke(app, ["scale-up", "1", "-a", "5 mL", "--db", sqlite_url])
    assert bad.exit_code == 2 and "is a volume, expected an amount of substance" in bad.output


def test_conditions_outside_the_bounds_are_rejected(tmp_path: Path, sqlite_url: str) -> None:
    cid = stored_campaign(sqlite_url)
    out = tmp_path / "s.yaml"
    runner.invoke(app, ["scale-up", str(cid), "-a", "1 mmol", "-o", str(out), "--db", sqlite_url])
    text = out.read_text().replace("light: 70.48 %", "light: 120 %")
    text = text.replace("residence_time: 671.2 s", "residence_tme: 671.2 s")
    (tmp_path / "bad.yaml").write_text(text)
    result = runner.invoke(
        app, ["validate", str(tmp_path / "bad.yaml"), "--platform", str(SIMULATED)]
    )
    assert result.exit_code == 1
    assert "scale_up.conditions.light: '120 %' is outside the bounds of light [0 %, 100 %]" in (
        result.stderr
    )
    assert "scale_up.conditions.residence_tme: 'residence_tme' is not a variable" in result.stderr
    assert "did you mean 'residence_time'?" in result.stderr
