"""A real ``robochem serve`` on ``robochem sim`` under hostile input: never a 5xx, the
process that drives the lab keeps answering, and commands that cannot succeed answer 409
with the reason before anything is scheduled.

One server for the module (benchmarks.api_fuzz.served_lab: the console scripts as
subprocesses, a temporary SQLite database, an admin made with ``robochem user add`` and a
token from ``robochem user token``), with check_timeout_s = 3 so that the overrunning check
below is stopped quickly. Time bounds here are generous because the machine is shared;
``python -m benchmarks.hostile_input`` measures the acceptance (4xx within 2 s) and
``python -m benchmarks.api_fuzz`` runs schemathesis at full size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from benchmarks.api_fuzz import ServedLab, fuzz_mode, served_lab
from benchmarks.hostile_input import CASES, EXAMPLE, StatusPoller, heavy_protocol, post_case
from robochem.storage.db import Database
from robochem.storage.models import Campaign

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab() -> Iterator[ServedLab]:
    with served_lab(speed=100, settings={"ROBOCHEM_CHECK_TIMEOUT_S": "3"}) as served:
        yield served


@pytest.fixture(scope="module")
def client(lab: ServedLab) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=lab.base, headers=lab.bearer(), timeout=60) as c:
        yield c


def test_hostile_bodies_get_a_4xx_while_status_keeps_answering(
    lab: ServedLab, client: httpx.Client
) -> None:
    with StatusPoller(lab.base, lab.bearer(), period_s=0.05) as poller:
        for name, case in CASES.items():
            body = case.make()
            created, t1, text1 = post_case(client, "/api/campaigns", body)
            assert 400 <= created < 500, (name, created, text1[:300])
            checked, t2, text2 = post_case(client, "/api/protocols/validate", body)
            if checked == 200:  # validation answers with the issue at its line
                result = json.loads(text2)
                assert result["valid"] is False, name
                (issue,) = result["issues"]
                assert case.expect in issue["message"], (name, issue)
            else:  # not JSON text at all (binary, NUL), or a body over the limit (413)
                assert 400 <= checked < 500, (name, checked, text2[:300])
            assert t1 < 10 and t2 < 10, (name, t1, t2)
        answered, failed, slowest = poller.worst_between(0.0, time.monotonic())
    assert failed == 0 and answered > 20 and slowest < 5, (answered, failed, slowest)


def test_a_streamed_body_over_the_limit_is_refused_while_it_streams(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: 30 MB sent in chunks
        yield b'{"protocol_yaml": "'
        for _ in range(30 * 16):
            yield b"x" * 65536
        yield b'"}'

    r = client.post(
        "/api/protocols/validate", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413


def test_a_check_that_runs_too_long_is_stopped(lab: ServedLab, client: httpx.Client) -> None:
    """Valid YAML whose check against the platform would take hours (10^6 combinations of
    categorical labels times the corners) is stopped at check_timeout_s, or at the check's
    memory cap if it reaches that first."""
    text = heavy_protocol()
    with StatusPoller(lab.base, lab.bearer(), period_s=0.05) as poller:
        start = time.monotonic()
        r = client.post("/api/protocols/validate", json={"protocol_yaml": text})
        seconds = time.monotonic() - start
        answered, failed, slowest = poller.worst_between(start, time.monotonic())
    assert r.status_code == 200
    (issue,) = r.json()["issues"]
    timed_out = "took longer than 3 s (setting check_timeout_s) and was stopped"
    assert timed_out in issue["message"] or "needed more than 1024 MB" in issue["message"]
    assert seconds < 15
    assert failed == 0 and answered > 10 and slowest < 5, (answered, failed, slowest)


def test_an_amount_that_does_not_parse_is_a_422(client: httpx.Client) -> None:
    r = client.post("/api/campaigns/1/scale-up", json={"amount": "5 mmol("})
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "cannot read '5 mmol(' as a quantity; expected an amount of substance such as '5 mmol'"
    )


def test_commands_that_cannot_succeed_answer_409_before_anything_runs(
    lab: ServedLab, client: httpx.Client
) -> None:
    def create() -> int:
        r = client.post("/api/campaigns", json={"protocol_yaml": EXAMPLE.read_text()})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def status(cid: int) -> str:
        return str(client.get(f"/api/campaigns/{cid}").json()["status"])

    def wait_for(cid: int, wanted: str) -> None:
        deadline = time.monotonic() + 120
        while status(cid) != wanted:
            assert time.monotonic() < deadline, f"campaign {cid} is {status(cid)}, not {wanted}"
            time.sleep(0.2)

    def refused(cid: int, verb: str, reason: str) -> None:
        r = client.post(f"/api/campaigns/{cid}/{verb}")
        assert r.status_code == 409, (verb, r.status_code, r.text)
        assert r.json()["detail"] == f"cannot {verb} campaign {cid}: {reason}"

    one, two = create(), create()
    refused(two, "resume", "it is created and has not been started")
    refused(two, "pause", "it is created and has not been started")
    assert client.post(f"/api/campaigns/{one}/start").status_code == 200
    refused(one, "start", "it is already running")
    refused(two, "start", f"campaign {one} is running on this platform (one at a time)")
    wait_for(one, "running")
    refused(one, "resume", "it is running")
    assert client.post(f"/api/campaigns/{one}/abort", json={"reason": "test"}).status_code == 200
    wait_for(one, "aborted")
    reason = client.get(f"/api/campaigns/{one}").json()["status_reason"]
    refused(one, "start", f"it is aborted ({reason}), and a finished campaign cannot run again; "
                          "create a new one")  # fmt: skip
    refused(one, "pause", "it is aborted")
    refused(one, "resume", "it is aborted")

    database = Database(lab.env["ROBOCHEM_DATABASE_URL"], upgrade_schema=False)
    try:
        for final in ("completed", "failed"):  # ended elsewhere (another process, a crash)
            with database.session() as session:
                row = session.get(Campaign, two)
                assert row is not None
                row.status, row.status_reason = final, None
            refused(
                two, "start", f"it is {final}, and a finished campaign cannot run again; "
                "create a new one",
            )  # fmt: skip
    finally:
        database.dispose()
    assert status(two) == "failed"  # nothing was scheduled
    events = client.get(f"/api/campaigns/{two}/events").json()
    assert [e["kind"] for e in events if e["kind"].startswith("campaign.")] == []


def test_starting_a_campaign_another_process_runs_is_a_409(
    lab: ServedLab, client: httpx.Client
) -> None:
    """A headless ``robochem run`` holds the campaign (its lock): the dashboard must not
    drive the same campaign a second time."""
    from robochem.storage.locks import campaign_lock

    r = client.post("/api/campaigns", json={"protocol_yaml": EXAMPLE.read_text()})
    assert r.status_code == 201, r.text
    cid = int(r.json()["id"])
    database = Database(lab.env["ROBOCHEM_DATABASE_URL"], upgrade_schema=False)
    try:
        with campaign_lock(database, cid):  # as the other process's engine does
            r = client.post(f"/api/campaigns/{cid}/start")
            assert r.status_code == 409, r.text
            assert "is being run by another process" in r.json()["detail"]
    finally:
        database.dispose()
    assert client.get(f"/api/campaigns/{cid}").json()["status"] == "created"


def test_schemathesis_finds_no_server_error(lab: ServedLab) -> None:
    """All checks, anonymous and with the admin's token, a few hundred cases each."""
    for anonymous in (True, False):
        result = fuzz_mode(lab, anonymous=anonymous, max_examples=2, seed=1)
        assert result.cases >= 300, result
        assert result.server_errors == [], result.server_errors
        assert sum(n for code, n in result.statuses.items() if code >= 500) == 0
    assert httpx.get(f"{lab.base}/api/me", headers=lab.bearer()).status_code == 200


def test_nothing_died_unobserved_in_the_server(lab: ServedLab) -> None:
    log = lab.log_text()
    assert "never retrieved" not in log
    assert "Traceback" not in log, log[-3000:]
