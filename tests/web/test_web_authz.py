"""Every state-changing API route refuses anonymous callers and viewers, needs CSRF with
a session cookie, and works for the roles it is meant for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dashboard_kit import World, client_for, login, seed_campaign

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

Request = tuple[str, str, dict[str, Any] | None]
# (method, path template) -> (least role, request maker given the world and acting user)
MATRIX: dict[tuple[str, str], tuple[str, Callable[[World, str, dict[str, int]], Request]]] = {
    ("POST", "/api/devices/{name}/flow"): (
        "operator", lambda w, u, ids: ("POST", "/api/devices/pump-a/flow", {"ml_min": 1.5})),
    ("POST", "/api/devices/{name}/light"): (
        "operator", lambda w, u, ids: ("POST", "/api/devices/reactor/light", {"percent": 50})),
    ("POST", "/api/devices/{name}/temperature"): (
        "operator",
        lambda w, u, ids: ("POST", "/api/devices/reactor/temperature", {"celsius": 30})),
    ("POST", "/api/devices/{name}/valve"): (
        "operator", lambda w, u, ids: ("POST", "/api/devices/valve/valve", {"position": "2"})),
    ("POST", "/api/emergency-stop"): (
        "operator", lambda w, u, ids: ("POST", "/api/emergency-stop", None)),
    ("POST", "/api/campaigns"): (
        "operator",
        lambda w, u, ids: ("POST", "/api/campaigns", {"protocol_yaml": "name: x\n"})),
    ("POST", "/api/protocols/validate"): (
        "operator",
        lambda w, u, ids: ("POST", "/api/protocols/validate", {"protocol_yaml": "name: x\n"})),
    ("POST", "/api/campaigns/{campaign_id}/start"): (
        "operator", lambda w, u, ids: ("POST", f"/api/campaigns/{ids['created']}/start", None)),
    ("POST", "/api/campaigns/{campaign_id}/pause"): (
        "operator", lambda w, u, ids: ("POST", f"/api/campaigns/{ids['running']}/pause", None)),
    ("POST", "/api/campaigns/{campaign_id}/resume"): (
        "operator", lambda w, u, ids: ("POST", f"/api/campaigns/{ids['paused']}/resume", None)),
    ("POST", "/api/campaigns/{campaign_id}/abort"): (
        "operator",
        lambda w, u, ids: ("POST", f"/api/campaigns/{ids['running']}/abort", {"reason": "t"})),
    ("POST", "/api/tokens"): (
        "operator", lambda w, u, ids: ("POST", "/api/tokens", {"name": "script"})),
    ("DELETE", "/api/tokens/{token_id}"): (
        "operator", lambda w, u, ids: ("DELETE", f"/api/tokens/{w.new_token_id(u)}", None)),
    ("POST", "/api/users"): (
        "admin",
        lambda w, u, ids: ("POST", "/api/users", {
            "name": f"new-{w.new_token_id(u)}", "role": "viewer", "password": "x" * 12})),
    ("PATCH", "/api/users/{name}"): (
        "admin", lambda w, u, ids: ("PATCH", "/api/users/viewer", {"role": "viewer"})),
    ("POST", "/api/campaigns/{campaign_id}/scale-up"): (
        "operator", lambda w, u, ids: _scale_up(w)),
}  # fmt: skip


def _scale_up(world: World) -> Request:
    from test_web_scaleup import attach_platform, finished_campaign

    attach_platform(world)
    return ("POST", f"/api/campaigns/{finished_campaign(world)}/scale-up", {"amount": "1 mmol"})


def _campaigns(world: World) -> dict[str, int]:
    from robochem.storage.models import Campaign

    ids = {}
    with world.database.session() as s:
        for status in ("created", "running", "paused"):
            row = Campaign(name=status, protocol_text="x", protocol_sha256="0" * 64, status=status)
            s.add(row)
            s.flush()
            ids[status] = row.id
    return ids


def test_the_matrix_covers_every_state_changing_api_route(world: World) -> None:
    # Every /api route is in the schema except the (read-only) event stream.
    routes = {
        (method.upper(), path)
        for path, operations in world.app.openapi()["paths"].items()
        if path.startswith("/api/")
        for method in operations
        if method.upper() in UNSAFE
    }
    assert routes == set(MATRIX)


async def _send(client, world: World, key, user: str, headers: dict[str, str]):
    _, make = MATRIX[key]
    ids = _campaigns(world)
    method, url, body = make(world, user, ids)
    return await client.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize("key", sorted(MATRIX), ids=lambda k: f"{k[0]} {k[1]}")
async def test_route_authorization(world: World, key: tuple[str, str]) -> None:
    least, _ = MATRIX[key]
    async with client_for(world.app) as anonymous:
        response = await _send(anonymous, world, key, "operator", {})
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"

        response = await _send(anonymous, world, key, "viewer", world.bearer("viewer"))
        assert response.status_code == 403, response.text

        bad = {"Authorization": "Bearer rc_not-a-token"}
        assert (await _send(anonymous, world, key, "operator", bad)).status_code == 401

        for user in ("operator", "admin"):
            response = await _send(anonymous, world, key, user, world.bearer(user))
            if user == "operator" and least == "admin":
                assert response.status_code == 403, response.text
            else:  # Bearer tokens need no CSRF token
                assert response.status_code < 300, (user, response.status_code, response.text)

    # The same with a browser session: the CSRF token is required.
    user = "admin" if least == "admin" else "operator"
    async with client_for(world.app) as browser:
        csrf = await login(browser, user)
        response = await _send(browser, world, key, user, {})
        assert response.status_code == 403, response.text
        assert "CSRF" in response.json()["detail"]
        wrong = await _send(browser, world, key, user, {"X-CSRF-Token": "x" + csrf})
        assert wrong.status_code == 403
        response = await _send(browser, world, key, user, {"X-CSRF-Token": csrf})
        assert response.status_code < 300, response.text

    async with client_for(world.app) as viewer_browser:
        csrf = await login(viewer_browser, "viewer")
        response = await _send(viewer_browser, world, key, "viewer", {"X-CSRF-Token": csrf})
        assert response.status_code == 403, response.text


async def test_every_read_route_needs_a_login(world: World) -> None:
    ids = seed_campaign(world.database)
    cid, eid = ids["campaign_id"], ids["experiment_ids"][0]
    paths = {
        path
        for path, operations in world.app.openapi()["paths"].items()
        if path.startswith("/api/") and "get" in operations
    } | {"/api/events/stream"}
    async with client_for(world.app) as client:
        for path in sorted(paths):
            url = path.format(campaign_id=cid, experiment_id=eid)
            assert (await client.get(url)).status_code == 401, url
            if path in ("/api/users", "/api/events/stream"):
                continue  # admin only (below); a stream never ends (see test_web_sse)
            ok = await client.get(url, headers=world.bearer("viewer"))
            assert ok.status_code == 200, (url, ok.text)
        assert (await client.get("/api/users", headers=world.bearer("viewer"))).status_code == 403
        assert (await client.get("/api/users", headers=world.bearer("operator"))).status_code == 403
        assert (await client.get("/api/users", headers=world.bearer("admin"))).status_code == 200
