"""The dashboard's scale-up: the button's API (write and create a scale-up campaign, with
protocol errors by line) and the data of the scale-up panel (report, NMR checks over time)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx
from dashboard_kit import World, login

from robochem.protocols.load import load_platform, parse_protocol
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


def finished_campaign(world: World, substrate_left_ml: float = 100.0) -> int:
    with world.database.session() as s:
        campaign = Campaign(
            name="hat-alkylation",
            protocol_text=HAT.read_text(),
            protocol_sha256="0" * 64,
            status="completed",
            summary={
                "platform": "simulated-lab",
                "inventory": {
                    "substrate": substrate_left_ml, "donor": 50.0, "catalyst": 50.0, "MeCN": 400.0
                },
            },
        )  # fmt: skip
        s.add(campaign)
        s.flush()
        exp = Experiment(campaign_id=campaign.id, index=0, conditions=OPTIMUM, status="done")
        s.add(exp)
        s.flush()
        s.add(
            Measurement(
                experiment_id=exp.id, yield_percent=75.0, throughput_mmol_h=1.33, qc_status="ok"
            )
        )
        return campaign.id


def attach_platform(world: World) -> None:
    assert world.engine is not None
    world.engine.lab = SimpleNamespace(platform=load_platform(SIMULATED))  # type: ignore[attr-defined]


async def test_scale_up_button_creates_a_validated_campaign(
    world: World, client: httpx.AsyncClient
) -> None:
    attach_platform(world)
    source = finished_campaign(world)
    path = f"/api/campaigns/{source}/scale-up"
    body = {"amount": "2 mmol", "objective": "yield", "on_drift": "stop"}
    assert (await client.post(path, json=body, headers=world.bearer("viewer"))).status_code == 403
    response = await client.post(path, json=body, headers=world.bearer("operator"))
    assert response.status_code == 201, response.text
    created = response.json()
    protocol = parse_protocol(created["protocol_yaml"], "x.yaml", load_platform(SIMULATED))
    assert protocol.scale_up is not None and protocol.scale_up.amount.value == 2.0
    assert protocol.scale_up.monitoring.on_drift == "stop"
    v = world.bearer("viewer")
    panel = (await client.get(f"/api/campaigns/{created['id']}/scale-up", headers=v)).json()
    assert panel["scale_up"] is True and panel["report"] is None and panel["checks"] == []
    assert (await client.get(path, headers=v)).json()["scale_up"] is False
    # the page of a finished campaign offers the button to operators
    await login(client, "operator")
    page = await client.get(f"/campaigns/{source}")
    assert 'id="scaleup-open"' in page.text and "/static/scaleup.js" in page.text


async def test_scale_up_refusals(world: World, client: httpx.AsyncClient) -> None:
    op = world.bearer("operator")
    source = finished_campaign(world, substrate_left_ml=2.0)
    path = f"/api/campaigns/{source}/scale-up"
    no_platform = await client.post(path, json={"amount": "1 mmol"}, headers=op)
    assert no_platform.status_code == 409
    attach_platform(world)
    short = await client.post(path, json={"amount": "5 mmol"}, headers=op)
    assert short.status_code == 422
    (issue,) = short.json()["issues"]
    assert issue["path"] == "stocks.substrate.available" and issue["line"] > 1
    assert "is not enough for the scale-up" in issue["message"]
    unit = await client.post(path, json={"amount": "5 mL"}, headers=op)
    assert unit.status_code == 422 and "amount of substance" in unit.json()["detail"]
    missing = await client.post(
        "/api/campaigns/999/scale-up", json={"amount": "1 mmol"}, headers=op
    )
    assert missing.status_code == 404


async def test_scale_up_panel_data(world: World, client: httpx.AsyncClient) -> None:
    attach_platform(world)
    source = finished_campaign(world)
    made = await client.post(
        f"/api/campaigns/{source}/scale-up", json={"amount": "1 mmol"},
        headers=world.bearer("operator"),
    )  # fmt: skip
    cid = made.json()["id"]
    with world.database.session() as s:
        row = s.get(Campaign, cid)
        assert row is not None
        row.summary = {
            **row.summary,
            "scale_up": {
                "target_mmol": 1.0, "product_mmol": 0.5, "collected_ml": 16.0,
                "collection_s": 1800.0, "reactor_ml": 3.9, "limiting_m": 0.0848,
                "status": "running",
            },
        }  # fmt: skip
    for t, phase, y in [(1000.0, "startup", 74.0), (1720.0, "startup", 75.0),
                        (2440.0, "collecting", 75.5)]:  # fmt: skip
        await world.bus.publish(
            "engine", "scaleup.check", {"index": 0, "phase": phase, "t_s": t, "yield": y,
                                        "status": "ok"}, campaign_id=cid,
        )  # fmt: skip
    panel = (
        await client.get(f"/api/campaigns/{cid}/scale-up", headers=world.bearer("viewer"))
    ).json()
    assert [(c["phase"], c["minutes"], c["yield_percent"]) for c in panel["checks"]] == [
        ("startup", 0.0, 74.0), ("startup", 12.0, 75.0), ("collecting", 24.0, 75.5)
    ]  # fmt: skip
    report = panel["report"]
    assert report["productivity_mmol_h"] == 1.0  # 0.5 mmol in 0.5 h
    assert abs(report["space_time_yield_mmol_l_h"] - 1.0 / 0.0039) < 1e-6
    assert abs(report["mean_yield_percent"] - 100 * 0.5 / (0.0848 * 16.0)) < 1e-9
