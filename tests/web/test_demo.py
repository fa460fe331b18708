"""`robochem demo` as a newcomer runs it: one command, a login link, a campaign running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from wire import Lines, wait_until_sync

ROBOCHEM = str(Path(sys.executable).with_name("robochem"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_demo_serves_the_simulated_lab_and_runs_an_example_campaign(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ROBOCHEM_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "ROBOCHEM_DATA_DIR": str(tmp_path / "data"),
    }
    log = tmp_path / "demo.stderr"  # read on failure: why it did not exit 0
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [ROBOCHEM, "demo", "--port", str(port), "--speed", "300"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    helpers: list[int] = []
    try:
        lines = Lines(proc.stdout)
        found: dict[str, str] = {}

        def note(line: str) -> bool:
            if m := re.search(r"(http://127\.0\.0\.1:\d+/login/one-time/\S+)", line):
                found["link"] = m.group(1)
            if m := re.search(r"campaign (\d+) \(hat-alkylation\) started", line):
                found["campaign"] = m.group(1)
            return "link" in found and "campaign" in found

        lines.until(note, timeout=90)  # each read bounded: fails on a silent hang
        link, campaign = found["link"], int(found["campaign"])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            def login() -> httpx.Response | None:  # the server starts right after the link
                try:
                    return client.get(link, follow_redirects=True)
                except httpx.ConnectError:
                    return None

            page = wait_until_sync(login, 30)
            assert page.status_code == 200
            # one-time only: the second use is refused ("Link expired"), not redirected
            assert client.get(link, follow_redirects=False).status_code == 410
            devices = client.get("/api/devices").json()
            assert {d["name"] for d in devices} >= {"pump-substrate", "reactor", "nmr"}
            detail = client.get(f"/api/campaigns/{campaign}").json()
            assert detail["status"] in {"running", "paused", "completed"}
            # the simulated lab runs in a process of its own; the Lab page shows its truth
            virtual = client.get("/api/virtual-lab/state").json()
            assert virtual["simulated"] is True and virtual["error"] is None
            assert {"pump-substrate", "reactor", "nmr"} <= set(virtual["state"]["devices"])
        helpers = _children(proc.pid)
        assert len(helpers) == 2, helpers  # the simulated lab and the supervised dashboard
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        finally:
            proc.kill()
    assert code == 0, log.read_text()[-3000:]
    # Ctrl-C stopped everything: no simulator or dashboard is left behind
    assert not [pid for pid in helpers if Path(f"/proc/{pid}").exists()], helpers


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out
