"""The supervisor of ``robochem run`` as a user meets it, through processes and the
virtual lab's ``GET /state``: a stop signal is forwarded (the controller's own abort, no
second safe state), a hung controller is killed and the lab made safe, and a controller
that never connected the lab is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from engine_kit import engine_protocol
from sqlalchemy import select
from supervised import (
    ROBOCHEM,
    controller_of,
    env_with,
    lab_state,
    phase,
    seconds_to_safe,
    sim_process,
    unsafe,
    wait_gone,
)

from robochem.protocols.runtime.supervisor import EXIT_CONTROLLER_DIED
from robochem.storage.db import Database
from robochem.storage.models import Campaign, Event

SPEED = 300.0


def start_run(
    tmp_path: Path, platform: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(engine_protocol(budget=2))
    return subprocess.Popen(
        [*ROBOCHEM, "run", str(protocol), "--platform", str(platform),
         "--db", f"sqlite:///{tmp_path / 'db.sqlite'}", "--on-rejected", "fail"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def wait_flowing(client: httpx.Client, url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if phase(lab_state(client, url)) == "irradiation":
            return
        time.sleep(0.01)
    raise AssertionError("the campaign never pumped under light")


@pytest.mark.slow
def test_sigterm_is_forwarded_to_the_controller_which_aborts_in_safe_state(
    tmp_path: Path,
) -> None:
    with sim_process(tmp_path, SPEED) as sim, httpx.Client(timeout=5) as client:
        proc = start_run(tmp_path, sim.platform)
        controller = controller_of(proc)
        wait_flowing(client, sim.state_url, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 4, err  # aborted, by the controller's own abort path
        assert wait_gone(controller, 10)
        assert not unsafe(lab_state(client, sim.state_url))
        assert "robochem supervisor:" not in err  # it had nothing to make safe
        assert "aborted" in err


@pytest.mark.slow
def test_a_hung_controller_is_killed_and_the_lab_made_safe(tmp_path: Path) -> None:
    with sim_process(tmp_path, SPEED) as sim, httpx.Client(timeout=5) as client:
        proc = start_run(tmp_path, sim.platform, env_with(ROBOCHEM_HANG_TIMEOUT_S="3"))
        controller = controller_of(proc)
        wait_flowing(client, sim.state_url, proc)
        os.kill(controller, signal.SIGSTOP)  # alive, but its event loop answers no more
        stopped = time.monotonic()
        safe_s = seconds_to_safe(client, sim.state_url, stopped, limit_s=20)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == EXIT_CONTROLLER_DIED, err
        assert safe_s < 3 + 5, safe_s  # the hang timeout, then the 5 s bound
        assert wait_gone(controller, 10)
        assert "hung: no heartbeat for 3 s" in err
        assert "lab made safe in" in err
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with db.session() as s:
            (event,) = s.scalars(select(Event).where(Event.kind == "supervisor.safe_state"))
            campaign = s.get(Campaign, event.campaign_id)
            assert campaign is not None and campaign.status == "running"  # resumable
            assert event.payload["controller"]["exit"] == "hung: no heartbeat for 3 s"
            # Not before the hang timeout: it had been silent at least that long when killed.
            assert event.payload["controller"]["silent_s"] >= 3
            assert event.payload["last_step"]  # what it was doing when it hung
    finally:
        db.dispose()


def test_a_controller_that_never_connected_the_lab_is_left_alone(tmp_path: Path) -> None:
    """Nothing to make safe: its devices were never opened (here: none answers)."""
    data = yaml.safe_load((Path(__file__).parents[2] / "protocols/platforms/simulated.yaml")
                          .read_text())  # fmt: skip
    for number, device in enumerate(data["devices"].values()):
        device["url"] = (
            f"modbus+rtu+socket://127.0.0.1:{9 + number}?unit=1"
            if device["driver"] == "modbus-photoreactor"
            else f"tcp://127.0.0.1:{9 + number}"
            if device["driver"] in ("knauer-azura", "knauer-valve", "spinsolve")
            else f"socket://127.0.0.1:{9 + number}"
        )
    platform = tmp_path / "platform.yaml"
    platform.write_text(yaml.safe_dump(data))
    proc = start_run(tmp_path, platform)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "cannot connect the lab" in err
    assert "robochem supervisor:" not in err
