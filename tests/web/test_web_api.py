"""The REST API over httpx: reads from the database, lab and campaign commands, exports."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import openpyxl
import pytest
from dashboard_kit import VALID_PROTOCOL, World, client_for, make_world, seed_campaign

from robochem.storage.models import Event as EventRow


async def test_status_summarises_platform_and_campaigns(world: World, client) -> None:
    seed_campaign(world.database)
    response = await client.get("/api/status", headers=world.bearer("viewer"))
    assert response.status_code == 200
    body = response.json()
    assert body["platform"] == "test-bench"
    assert body["lab_attached"] and body["engine_attached"]
    assert body["campaigns"] == {"total": 1, "by_status": {"running": 1}}
    (active,) = body["active"]
    assert active["experiments_done"] == 6 and active["planned_experiments"] == 10


async def test_devices_and_manual_commands_reach_the_lab(world: World, client) -> None:
    op = world.bearer("operator")
    devices = (await client.get("/api/devices", headers=op)).json()
    assert {d["name"] for d in devices} == {"pump-a", "reactor", "valve"}
    pump = next(d for d in devices if d["name"] == "pump-a")
    assert pump["connected"] and pump["controls"] == ["flow"]

    r = await client.post("/api/devices/pump-a/flow", json={"ml_min": 2.5}, headers=op)
    assert r.status_code == 200 and "2.5 mL/min" in r.json()["detail"]
    await client.post("/api/devices/reactor/light", json={"percent": 80}, headers=op)
    await client.post("/api/devices/reactor/temperature", json={"celsius": 35}, headers=op)
    await client.post("/api/devices/valve/valve", json={"position": "3"}, headers=op)
    assert world.lab is not None
    assert world.lab.calls == [
        ("flow", "pump-a", "2.5"),
        ("light", "reactor", "80.0"),
        ("temperature", "reactor", "35.0"),
        ("valve", "valve", "3"),
    ]
    readings = {
        d["name"]: d["readings"] for d in (await client.get("/api/devices", headers=op)).json()
    }
    assert readings["pump-a"]["flow_ml_min"] == 2.5 and readings["valve"]["position"] == "3"


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/devices/nope/flow", {"ml_min": 1}, 404, "no device named"),
        ("/api/devices/pump-a/flow", {"ml_min": 50}, 422, "outside the allowed range"),
        ("/api/devices/pump-a/flow", {"ml_min": -1}, 422, ""),
        ("/api/devices/pump-a/light", {"percent": 10}, 422, "no light control"),
        ("/api/devices/valve/valve", {"position": "9"}, 422, "no position"),
        ("/api/devices/reactor/light", {"percent": 101}, 422, ""),
        ("/api/devices/pump-a/flow", {"ml_min": 1, "extra": 1}, 422, ""),
    ],
)
async def test_bad_commands_are_refused_with_a_reason(
    world: World, client, path: str, body: dict, status: int, words: str
) -> None:
    r = await client.post(path, json=body, headers=world.bearer("operator"))
    assert r.status_code == status, r.text
    assert words in str(r.json()["detail"])
    assert world.lab is not None and world.lab.calls == []


async def test_a_device_fault_is_a_conflict(world: World, client) -> None:
    assert world.lab is not None
    world.lab.state["pump-a"].faults.append("motor stall")
    r = await client.post(
        "/api/devices/pump-a/flow", json={"ml_min": 1}, headers=world.bearer("operator")
    )
    assert r.status_code == 409 and "motor stall" in r.json()["detail"]


async def test_emergency_stop_stops_devices_and_is_logged(world: World, client) -> None:
    op = world.bearer("operator")
    await client.post("/api/devices/pump-a/flow", json={"ml_min": 4}, headers=op)
    r = await client.post("/api/emergency-stop", headers=op)
    assert r.status_code == 200
    assert world.lab is not None and world.lab.calls[-1] == ("emergency_stop",)
    assert world.lab.state["pump-a"].readings["flow_ml_min"] == 0.0
    (event,) = world.bus.history(kinds=("emergency_stop",))
    assert event.payload == {"by": "operator"}


async def test_without_lab_or_engine_commands_answer_409(bare_world: World) -> None:
    op = bare_world.bearer("operator")
    ids = seed_campaign(bare_world.database)
    async with client_for(bare_world.app) as client:
        assert (await client.get("/api/devices", headers=op)).json() == []
        status = (await client.get("/api/status", headers=op)).json()
        assert not status["lab_attached"] and not status["engine_attached"]
        for path, body in [
            ("/api/devices/pump-a/flow", {"ml_min": 1}),
            ("/api/emergency-stop", None),
            ("/api/campaigns", {"protocol_yaml": "x: 1"}),
            ("/api/protocols/validate", {"protocol_yaml": "x: 1"}),
            (f"/api/campaigns/{ids['campaign_id']}/pause", None),
        ]:
            r = await client.post(path, json=body, headers=op)
            assert r.status_code == 409, (path, r.text)
            assert (
                "no lab attached" in r.json()["detail"]
                or "no campaign engine" in r.json()["detail"]
            )
        # The shipped examples are still offered (read from the package).
        examples = (await client.get("/api/protocols/examples", headers=op)).json()
        import robochem.protocols

        folder = Path(robochem.protocols.__file__).parent / "examples"
        assert [e["name"] for e in examples] == sorted(p.stem for p in folder.glob("*.yaml"))
        for example in examples:
            assert example["text"] == (folder / f"{example['name']}.yaml").read_text()
            assert example["title"] and not example["title"].startswith("#")


async def test_campaign_list_detail_and_experiments(world: World, client) -> None:
    ids = seed_campaign(world.database)
    v = world.bearer("viewer")
    (summary,) = (await client.get("/api/campaigns", headers=v)).json()
    assert summary["experiments_done"] == 6 and summary["experiments_total"] == 7
    assert summary["progress"] == pytest.approx(0.6)
    assert summary["best_yield_percent"] == pytest.approx(
        84.16, abs=0.01
    )  # experiment 4 (rejected) excluded

    detail = (await client.get(f"/api/campaigns/{ids['campaign_id']}", headers=v)).json()
    assert detail["variables"] == ["light_percent", "residence_time_min", "temperature_c"]
    assert detail["current"] == {
        "experiment_id": ids["experiment_ids"][-1],
        "experiment_index": 7,
        "step": "irradiating",
    }
    assert detail["eta"] is not None  # estimated from the mean duration of done experiments

    for n, ok in ((1, True), (2, False)):  # a shim before #2; one that failed before #3
        await world.bus.publish("engine", "nmr.shimmed", {"index": n + 1, "ok": ok},
                                campaign_id=ids["campaign_id"],
                                experiment_id=ids["experiment_ids"][n])
    rows = (await client.get(f"/api/campaigns/{ids['campaign_id']}/experiments", headers=v)).json()
    assert [r["index"] for r in rows] == list(range(1, 8))
    assert [r["nmr_shimmed_before"] for r in rows[:3]] == [False, True, False]
    assert rows[3]["qc_status"] == "rejected" and rows[3]["yield_percent"] is None
    assert rows[6]["measurement_id"] is None and rows[6]["status"] == "running"
    assert rows[0]["nmr_line_width_hz"] == pytest.approx(1.6)  # the standard's, less 0.5 Hz lb
    assert rows[6]["nmr_line_width_hz"] is None

    one = (await client.get(f"/api/experiments/{ids['experiment_ids'][0]}", headers=v)).json()
    assert one["campaign_id"] == ids["campaign_id"]
    assert "plot" not in one["result"] and one["result"]["nucleus"] == "1H"

    for missing in ("/api/campaigns/999", "/api/campaigns/999/experiments",
                    "/api/experiments/999", "/api/campaigns/999/export.csv"):  # fmt: skip
        assert (await client.get(missing, headers=v)).status_code == 404
    assert (await client.get("/api/campaigns/0", headers=v)).status_code == 422
    assert (await client.get(f"/api/campaigns/{2**40}", headers=v)).status_code == 422


async def test_spectrum_has_regions_and_numbers(world: World, client) -> None:
    ids = seed_campaign(world.database)
    v = world.bearer("viewer")
    s = (
        await client.get(f"/api/experiments/{ids['experiment_ids'][1]}/spectrum", headers=v)
    ).json()
    assert len(s["ppm"]) == len(s["intensity"]) == 1000
    assert s["nucleus"] == "1H" and s["qc_status"] == "ok"
    regions = {r["name"]: r for r in s["regions"]}
    assert regions["product"]["role"] == "product"
    assert (regions["product"]["lo"], regions["product"]["hi"]) == (3.8, 4.0)
    assert regions["TMB"]["concentration_M"] == 0.05 and regions["TMB"]["snr"] == 250.0
    assert regions["TMB"]["line_width_hz"] == pytest.approx(1.6)  # 2.1 Hz fitted, 0.5 added
    assert regions["product"]["line_width_hz"] is None  # not fitted
    assert regions["acid"]["integral"] is None  # no report for it: shown as a dash
    running = ids["experiment_ids"][-1]
    r = await client.get(f"/api/experiments/{running}/spectrum", headers=v)
    assert r.status_code == 404 and "no stored spectrum" in r.json()["detail"]


async def test_csv_export_has_one_row_per_experiment(world: World, client) -> None:
    ids = seed_campaign(world.database)
    r = await client.get(
        f"/api/campaigns/{ids['campaign_id']}/export.csv", headers=world.bearer("viewer")
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 7
    assert list(rows[0])[:6] == [
        "experiment", "experiment_id", "status",
        "light_percent", "residence_time_min", "temperature_c",
    ]  # fmt: skip
    assert rows[0]["residence_time_min"] == "2.0" and rows[0]["qc_status"] == "ok"
    assert float(rows[1]["yield_percent"]) > 0
    assert rows[3]["qc_reasons"] == "low SNR" and rows[3]["yield_percent"] == ""


async def test_xlsx_export_opens_in_openpyxl(world: World, client) -> None:
    ids = seed_campaign(world.database)
    r = await client.get(
        f"/api/campaigns/{ids['campaign_id']}/export.xlsx", headers=world.bearer("viewer")
    )
    assert r.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(r.content))
    assert book.sheetnames == ["experiments", "campaign"]
    sheet = book["experiments"]
    header = [c.value for c in sheet[1]]
    assert "yield_percent" in header and "light_percent" in header
    assert sheet.max_row == 8  # header + 7 experiments
    about = {row[0].value: row[1].value for row in book["campaign"].iter_rows(min_row=2)}
    assert about["campaign"] == "Decarboxylative coupling" and about["protocol_sha256"] == "a" * 64


async def test_protocol_download_is_the_stored_text(world: World, client) -> None:
    ids = seed_campaign(world.database)
    r = await client.get(
        f"/api/campaigns/{ids['campaign_id']}/protocol", headers=world.bearer("viewer")
    )
    assert r.text == "name: decarboxylation\nbudget: 10\n"
    assert r.headers["content-disposition"].endswith('.yaml"')


async def test_campaign_events_newest_window_in_order(world: World, client) -> None:
    ids = seed_campaign(world.database)
    cid = ids["campaign_id"]
    for i in range(5):
        await world.bus.publish("engine", "step", {"n": i}, campaign_id=cid)
    await world.bus.publish("engine", "other campaign's", {})
    events = (
        await client.get(f"/api/campaigns/{cid}/events?limit=3", headers=world.bearer("viewer"))
    ).json()
    assert [e["payload"]["n"] for e in events] == [2, 3, 4]
    later = (await client.get(f"/api/campaigns/{cid}/events?after={events[-1]['id']}",
                              headers=world.bearer("viewer"))).json()  # fmt: skip
    assert later == []


async def test_campaign_lifecycle_through_the_engine(world: World, client) -> None:
    op = world.bearer("operator")
    examples = (await client.get("/api/protocols/examples", headers=op)).json()
    assert examples[0]["name"] == "simple"

    bad = "name: x\nbudget: 3\nbadkey: 1\n"
    v = (
        await client.post("/api/protocols/validate", json={"protocol_yaml": bad}, headers=op)
    ).json()
    assert v == {
        "valid": False,
        "issues": [{"message": "unknown key 'badkey'", "line": 3, "column": 1, "path": "badkey"}],
    }
    r = await client.post("/api/campaigns", json={"protocol_yaml": bad}, headers=op)
    assert r.status_code == 422 and r.json()["issues"][0]["line"] == 3

    r = await client.post("/api/campaigns", json={"protocol_yaml": VALID_PROTOCOL}, headers=op)
    assert r.status_code == 201
    cid = r.json()["id"]
    for action, status in [("start", "running"), ("pause", "paused"), ("resume", "running")]:
        r = await client.post(f"/api/campaigns/{cid}/{action}", headers=op)
        assert r.status_code == 200, r.text
        assert (await client.get(f"/api/campaigns/{cid}", headers=op)).json()["status"] == status
    r = await client.post(f"/api/campaigns/{cid}/resume", headers=op)
    assert r.status_code == 409 and "is running" in r.json()["detail"]
    r = await client.post(
        f"/api/campaigns/{cid}/abort", json={"reason": "wrong reagent"}, headers=op
    )
    assert r.status_code == 200
    assert world.engine is not None
    assert ("abort-reason", "wrong reagent (by operator)") in world.engine.calls
    assert (await client.post("/api/campaigns/999/start", headers=op)).status_code == 404
    kinds = [e.kind for e in world.bus.history(campaign_id=cid)]
    assert kinds == ["campaign.created", "campaign.running", "campaign.paused",
                     "campaign.running", "campaign.aborted"]  # fmt: skip


async def test_users_and_tokens(world: World, client) -> None:
    admin, op = world.bearer("admin"), world.bearer("operator")
    r = await client.post(
        "/api/users", json={"name": "bob", "role": "operator", "password": "longenough"},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 201 and r.json()["role"] == "operator"
    dup = {"name": "bob", "role": "viewer", "password": "longenough"}
    assert (await client.post("/api/users", json=dup, headers=admin)).status_code == 409
    weak = {"name": "carol", "role": "viewer", "password": "short"}
    assert (await client.post("/api/users", json=weak, headers=admin)).status_code == 422
    names = [u["name"] for u in (await client.get("/api/users", headers=admin)).json()]
    assert names == ["admin", "bob", "operator", "viewer"]
    # The last enabled admin cannot be demoted or disabled.
    r = await client.patch("/api/users/admin", json={"role": "viewer"}, headers=admin)
    assert r.status_code == 409
    assert (await client.get("/api/me", headers=admin)).json()["role"] == "admin"

    created = (await client.post("/api/tokens", json={"name": "script"}, headers=op)).json()
    assert created["token"].startswith("rc_")
    fresh = {"Authorization": f"Bearer {created['token']}"}
    assert (await client.get("/api/me", headers=fresh)).json() == {
        "name": "operator", "role": "operator", "via": "token",
    }  # fmt: skip
    mine = (await client.get("/api/tokens", headers=op)).json()
    assert [t["name"] for t in mine] == ["test", "script"] and "token" not in mine[0]
    # Someone else's token is not yours to revoke.
    other = world.token_ids["viewer"]
    assert (await client.delete(f"/api/tokens/{other}", headers=op)).status_code == 404
    r = await client.delete(f"/api/tokens/{created['id']}", headers=op)
    assert r.json()["revoked"] is True
    assert (await client.get("/api/me", headers=fresh)).status_code == 401

    # Disabling a user locks out their tokens at once (in this process).
    r = await client.patch("/api/users/operator", json={"disabled": True}, headers=admin)
    assert r.status_code == 200
    assert (await client.get("/api/me", headers=op)).status_code == 401


def test_openapi_documents_every_api_route_with_response_models(world: World) -> None:
    schema = world.app.openapi()
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            ok = op["responses"].get("200") or op["responses"].get("201")
            assert ok, (method, path)
            content = ok.get("content", {})
            assert content, (method, path)
            if "application/json" in content:
                assert content["application/json"]["schema"], (method, path)
            assert "401" in op["responses"] and "403" in op["responses"], (method, path)
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


async def test_api_on_each_database_backend(db_url: str) -> None:
    """A few reads and a command on SQLite and PostgreSQL."""
    world = make_world(db_url)
    try:
        ids = seed_campaign(world.database)
        async with client_for(world.app) as client:
            v = world.bearer("viewer")
            assert len((await client.get("/api/campaigns", headers=v)).json()) == 1
            rows = await client.get(f"/api/campaigns/{ids['campaign_id']}/experiments", headers=v)
            assert len(rows.json()) == 7
            csv_text = (await client.get(f"/api/campaigns/{ids['campaign_id']}/export.csv",
                                         headers=v)).text  # fmt: skip
            assert len(csv_text.strip().splitlines()) == 8
            status = (await client.get("/api/status", headers=v)).json()
            assert status["campaigns"]["by_status"] == {"running": 1}
            r = await client.post("/api/emergency-stop", headers=world.bearer("operator"))
            assert r.status_code == 200
        with world.database.session() as s:
            assert s.query(EventRow).filter_by(kind="emergency_stop").count() == 1
    finally:
        world.database.dispose()


async def test_security_headers(world: World, client: httpx.AsyncClient) -> None:
    r = await client.get("/login")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


async def test_sessions_spectrum_and_xlsx_on_each_database_backend(db_url: str) -> None:
    from dashboard_kit import login

    world = make_world(db_url)
    try:
        ids = seed_campaign(world.database)
        async with client_for(world.app) as browser:
            csrf = await login(browser, "operator")
            r = await browser.post(
                "/api/devices/pump-a/flow", json={"ml_min": 1}, headers={"X-CSRF-Token": csrf}
            )
            assert r.status_code == 200
            spectrum = await browser.get(f"/api/experiments/{ids['experiment_ids'][0]}/spectrum")
            assert len(spectrum.json()["regions"]) == 3
            book = await browser.get(f"/api/campaigns/{ids['campaign_id']}/export.xlsx")
            assert openpyxl.load_workbook(io.BytesIO(book.content))["experiments"].max_row == 8
    finally:
        world.database.dispose()


def test_make_server_binds_where_told(world: World) -> None:
    from robochem.web.app import make_server

    server = make_server(world.app, host="127.0.0.1", port=8123)
    assert (server.config.host, server.config.port) == ("127.0.0.1", 8123)
    assert server.config.timeout_graceful_shutdown == 3


async def test_hostile_input_is_refused_before_the_database(db_url: str) -> None:
    """PostgreSQL refuses NUL in text and 32-bit overflows: a 4xx, never a 500."""
    from dashboard_kit import PASSWORD

    world = make_world(db_url)
    try:
        ids = seed_campaign(world.database)
        async with client_for(world.app) as client:
            op, admin = world.bearer("operator"), world.bearer("admin")
            for path, body, headers in [
                ("/api/campaigns", {"protocol_yaml": "name: a\x00b"}, op),
                ("/api/protocols/validate", {"protocol_yaml": "\x00"}, op),
                (f"/api/campaigns/{ids['campaign_id']}/abort", {"reason": "x\x00"}, op),
                ("/api/devices/valve/valve", {"position": "1\x00"}, op),
                ("/api/tokens", {"name": "t\x00"}, op),
                (
                    "/api/users",
                    {"name": "a", "role": "viewer", "password": "x" * 8 + "\x00"},
                    admin,
                ),
            ]:
                r = await client.post(path, json=body, headers=headers)
                assert r.status_code == 422, (path, r.text)
            r = await client.patch("/api/users/a%00b", json={"disabled": True}, headers=admin)
            assert r.status_code == 422
            # Ids are 32-bit integers on PostgreSQL: larger cursors are refused, not crashed on.
            events = f"/api/campaigns/{ids['campaign_id']}/events?after={2**31}"
            assert (await client.get(events, headers=op)).status_code == 422
        async with client_for(world.app) as anonymous:
            page = await anonymous.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            form = {"name": "op\x00", "password": PASSWORD, "csrf_token": token}
            assert (await anonymous.post("/login", data=form)).status_code == 401
    finally:
        world.database.dispose()


async def test_a_database_deleted_under_the_dashboard_is_a_503_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "dash.db"
    world = make_world(f"sqlite:///{path}")
    async with client_for(world.app) as client:
        viewer = world.bearer("viewer")
        assert (await client.get("/api/campaigns", headers=viewer)).status_code == 200
        path.unlink()
        r = await client.get("/api/campaigns", headers=viewer)
    assert r.status_code == 503
    assert f"{path} was deleted while in use" in r.json()["detail"]
    world.database.dispose()
