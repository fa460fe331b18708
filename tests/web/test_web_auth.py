"""Passwords, login and logout, sessions, one-time links, pages and the user CLI."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from dashboard_kit import PASSWORD, World, client_for, login, seed_campaign
from typer.testing import CliRunner

from robochem.web import auth
from robochem.web.app import issue_login_link


def test_passwords_are_hashed_with_argon2id() -> None:
    stored = auth.hash_password("s3cret-password")
    assert stored.startswith("$argon2id$") and "m=65536" in stored
    assert auth.verify_password(stored, "s3cret-password")
    assert not auth.verify_password(stored, "wrong")
    assert not auth.verify_password("not a hash", "wrong")


def test_signer_rejects_tampering() -> None:
    signer = auth.Signer(b"x" * 32)
    value = signer.sign({"u": 1})
    assert signer.load(value) == {"u": 1}
    body, mac = value.split(".")
    forged = auth.Signer(b"y" * 32).sign({"u": 2})
    assert signer.load(forged) is None
    assert signer.load(forged.split(".")[0] + "." + mac) is None
    assert signer.load(body) is None
    with pytest.raises(ValueError):
        auth.Signer(b"short")


def test_secret_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "k" / "secret.key"
    key = auth.load_or_create_secret(path)
    assert auth.load_or_create_secret(path) == key and len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/campaigns/3", "/campaigns/3"), ("//evil.example", "/"), ("https://evil", "/"),
     ("/\\evil", "/"), (None, "/"), ("lab", "/")],
)  # fmt: skip
def test_next_after_login_stays_local(target: str | None, expected: str) -> None:
    assert auth.safe_next(target) == expected


async def test_pages_redirect_anonymous_users_to_login(world: World) -> None:
    async with client_for(world.app) as client:
        for path in ("/", "/lab", "/campaigns", "/campaigns/1", "/account"):
            r = await client.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"] == f"/login?next={path}"


async def test_login_sets_a_hardened_session_cookie_and_logout_clears_it(world: World) -> None:
    async with client_for(world.app) as client:
        page = await client.get("/login?next=/campaigns")
        assert page.status_code == 200 and 'name="next" value="/campaigns"' in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = {"name": "operator", "password": PASSWORD, "csrf_token": token, "next": "/campaigns"}
        r = await client.post("/login", data=form)
        assert r.status_code == 303 and r.headers["location"] == "/campaigns"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("rc_session=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=43200" in cookie

        page = await client.get("/lab")
        assert page.status_code == 200 and "operator" in page.text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        assert (await client.get("/api/me")).json()["via"] == "session"

        # Logout needs the CSRF token too (no forced logouts from other sites).
        assert (await client.post("/logout")).status_code == 403
        r = await client.post("/logout", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert (await client.get("/api/me")).status_code == 401


async def test_login_failures(world: World) -> None:
    async with client_for(world.app) as client:
        page = await client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = await client.post(
            "/login", data={"name": "operator", "password": "nope", "csrf_token": token}
        )
        assert r.status_code == 401 and "Wrong name or password" in r.text
        # Each form carries a fresh token: the next attempt uses the re-rendered form's.
        token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
        r = await client.post(
            "/login", data={"name": "ghost", "password": "nope", "csrf_token": token}
        )
        assert r.status_code == 401
        # Without the login-form token (cross-site login attempt): refused.
        client.cookies.clear()
        r = await client.post("/login", data={"name": "operator", "password": PASSWORD})
        assert r.status_code == 403 and "rc_session" not in r.headers.get("set-cookie", "")


async def test_repeated_failed_logins_are_throttled(world: World) -> None:
    a: auth.Auth = world.app.state.auth
    async with client_for(world.app) as client:
        for attempt in range(a.LOGIN_MAX_FAILURES + 1):
            page = await client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            form = {"name": "admin", "password": "guess", "csrf_token": token}
            r = await client.post("/login", data=form)
            assert r.status_code == (401 if attempt < a.LOGIN_MAX_FAILURES else 429)
        page = await client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = {"name": "admin", "password": PASSWORD, "csrf_token": token}
        assert (await client.post("/login", data=form)).status_code == 429  # even if right
        await login(client, "operator")  # other names are not affected


async def test_a_tampered_or_expired_cookie_is_anonymous(world: World) -> None:
    async with client_for(world.app) as client:
        await login(client, "admin")
        good = client.cookies["rc_session"]
        client.cookies.set("rc_session", good[:-3] + "AAA")
        assert (await client.get("/api/me")).status_code == 401
    a: auth.Auth = world.app.state.auth
    payload = {"u": 1, "e": int(time.time()) - 1, "c": "x", "p": "y"}
    assert a.session_principal(a.signer.sign(payload)) is None


async def test_password_change_and_disabling_end_sessions(world: World) -> None:
    async with client_for(world.app) as client, client_for(world.app) as admin:
        await login(client, "operator")
        assert (await client.get("/api/me")).status_code == 200
        r = await admin.patch(
            "/api/users/operator",
            json={"password": "a new password"},
            headers=world.bearer("admin"),
        )
        assert r.status_code == 200
        assert (await client.get("/api/me")).status_code == 401
        await login(client, "operator", "a new password")
        await admin.patch(
            "/api/users/operator", json={"disabled": True}, headers=world.bearer("admin")
        )
        assert (await client.get("/api/me")).status_code == 401


async def test_one_time_link_logs_in_once(world: World) -> None:
    path = issue_login_link(world.app, "admin")
    assert path.startswith("/login/one-time/")
    async with client_for(world.app) as client:
        r = await client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert (await client.get("/api/me")).json()["name"] == "admin"
    async with client_for(world.app) as other:
        r = await other.get(path)
        assert r.status_code == 410 and "already used or has expired" in r.text
        assert (await other.get("/api/me")).status_code == 401
    with pytest.raises(LookupError):
        issue_login_link(world.app, "nobody")


async def test_demo_user_logs_in_by_link_only(world: World) -> None:
    with world.database.session() as s:
        first = auth.ensure_user(s, "demo", "admin").id
        assert auth.ensure_user(s, "demo", "viewer").id == first  # existing user kept
    async with client_for(world.app) as client:
        await client.get(issue_login_link(world.app, "demo"))
        assert (await client.get("/api/me")).json() == {
            "name": "demo", "role": "admin", "via": "session",
        }  # fmt: skip


async def test_one_time_link_expires(world: World) -> None:
    path = issue_login_link(world.app, "viewer", ttl_s=-1)
    async with client_for(world.app) as client:
        assert (await client.get(path)).status_code == 410


async def test_pages_render_for_each_role(world: World) -> None:
    ids = seed_campaign(world.database)
    async with client_for(world.app) as viewer:
        await login(viewer, "viewer")
        lab = (await viewer.get("/lab")).text
        assert 'data-can-operate="false"' in lab and 'id="estop"' not in lab
        campaign = (await viewer.get(f"/campaigns/{ids['campaign_id']}")).text
        assert "Decarboxylative coupling" in campaign and 'data-action="start"' not in campaign
        assert "/static/vendor/plotly.min.js" in campaign
        assert (await viewer.get("/campaigns/999")).status_code == 404
        account = (await viewer.get("/account")).text
        assert 'id="token-create"' not in account and 'id="users"' not in account
    async with client_for(world.app) as operator:
        await login(operator, "operator")
        lab = (await operator.get("/lab")).text
        assert 'data-can-operate="true"' in lab and 'id="estop"' in lab
        campaigns = (await operator.get("/campaigns")).text
        assert 'id="new-campaign"' in campaigns
        campaign = (await operator.get(f"/campaigns/{ids['campaign_id']}")).text
        assert 'data-action="abort"' in campaign
    async with client_for(world.app) as admin:
        await login(admin, "admin")
        assert 'id="users"' in (await admin.get("/account")).text


async def test_docs_and_assets_are_served_locally(world: World) -> None:
    async with client_for(world.app) as client:
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "/api/campaigns/{campaign_id}/export.csv" in docs.text
        assert (await client.get("/openapi.json")).status_code == 200
        js = await client.get("/static/vendor/plotly.min.js")
        assert js.status_code == 200 and len(js.content) > 1_000_000
        assert js.headers["content-type"].startswith("text/javascript")
        for asset in ("style.css", "app.js", "lab.js", "campaigns.js", "campaign.js", "account.js"):
            assert (await client.get(f"/static/{asset}")).status_code == 200, asset


def test_no_external_urls_in_templates_or_static() -> None:
    web = Path(__file__).resolve().parents[2] / "web"
    for path in [*web.glob("templates/*.html"), *web.glob("static/*")]:
        text = path.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), path


def test_user_cli(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    from robochem.cli import app

    monkeypatch.setenv("ROBOCHEM_DATABASE_URL", sqlite_url)
    from robochem.settings import reset_settings

    reset_settings()
    runner = CliRunner()
    r = runner.invoke(app, ["user", "add", "ana", "--role", "operator", "--password-stdin"],
                      input="a long password\n")  # fmt: skip
    assert r.exit_code == 0 and "added user ana (operator)" in r.output
    r = runner.invoke(app, ["user", "add", "ana", "--password-stdin"], input="a long password\n")
    assert r.exit_code == 1 and "already exists" in r.output
    r = runner.invoke(app, ["user", "add", "bo", "--role", "boss", "--password-stdin"], input="x\n")
    assert r.exit_code != 0
    r = runner.invoke(app, ["user", "add", "bo", "--password-stdin"], input="short\n")
    assert r.exit_code == 1 and "too short" in r.output
    r = runner.invoke(app, ["user", "token", "ana", "--name", "nightly"])
    assert r.exit_code == 0
    token = r.stdout.strip().splitlines()[0]
    assert token.startswith("rc_")
    r = runner.invoke(app, ["user", "token", "nobody"])
    assert r.exit_code == 1
    r = runner.invoke(app, ["user", "list"])
    assert r.exit_code == 0 and "ana" in r.output and "operator" in r.output
    r = runner.invoke(app, ["user", "set", "ana", "--role", "admin", "--disable"])
    assert r.exit_code == 0 and "ana: admin, disabled" in r.output
    r = runner.invoke(app, ["user", "set", "ana", "--enable", "--password-stdin"],
                      input="another long password\n")  # fmt: skip
    assert r.exit_code == 0 and "ana: admin, active" in r.output
    assert runner.invoke(app, ["user", "set", "ghost", "--enable"]).exit_code == 1
    assert runner.invoke(app, ["user", "set", "ana", "--role", "boss"]).exit_code == 1

    from robochem.storage.db import Database

    database = Database(sqlite_url)
    try:
        with database.session() as s:
            user = auth.authenticate(s, "ana", "another long password")
            assert user is not None and user.password_hash.startswith("$argon2id$")
        a = auth.Auth(database, b"z" * 32)
        principal = a.token_principal(token)
        assert principal is not None and principal.name == "ana" and principal.via == "token"
    finally:
        database.dispose()
