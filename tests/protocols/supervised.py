"""Helpers for tests that run ``robochem sim`` and a supervised ``robochem run`` as
processes, kill one of them, and read the virtual lab's ground truth (``GET /state``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from wire import first_line

ROBOCHEM = [sys.executable, "-m", "robochem.cli"]
PUMPS = ("pump-substrate", "pump-reagent", "pump-catalyst", "pump-solvent")
#: The acceptance bound: every pump stopped and the light off this long after a kill.
SAFE_WITHIN_S = 5.0


@dataclass
class Sim:
    platform: Path
    state_url: str
    proc: subprocess.Popen[str]


@contextmanager
def sim_process(tmp_path: Path, speed: float, seed: int = 3) -> Iterator[Sim]:
    """``robochem sim`` in its own process; the platform file and the /state URL."""
    platform = tmp_path / "platform.yaml"
    proc = subprocess.Popen(
        [*ROBOCHEM, "sim", "--json", "--platform-out", str(platform), "--speed", str(speed),
         "--data-dir", str(tmp_path / "nmr"), "--seed", str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        endpoints = json.loads(first_line(proc, timeout=60))  # the servers are up
        yield Sim(platform, endpoints["state"]["url"], proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def lab_state(client: httpx.Client, url: str) -> dict[str, Any]:
    return client.get(url).json()["devices"]


def unsafe(devices: dict[str, Any]) -> list[str]:
    """What is not in safe state: running pumps, a light that is on."""
    out = [name for name in PUMPS if devices[name]["running"] or devices[name]["flow_ml_min"]]
    light = devices["reactor"]["light"]
    if light["on"] or light["output_percent"] > 0:
        out.append("reactor light")
    return out


def seconds_to_safe(client: httpx.Client, url: str, since: float, limit_s: float) -> float:
    """Wall seconds from ``since`` (monotonic) until /state shows the lab safe (or inf)."""
    while time.monotonic() - since < limit_s:
        if not unsafe(lab_state(client, url)):
            return time.monotonic() - since
        time.sleep(0.02)
    return float("inf")


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc: Linux)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def controller_of(supervisor: subprocess.Popen[str], timeout_s: float = 30.0) -> int:
    """The pid of the controller ``robochem run`` (the supervisor) spawned."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = children(supervisor.pid)
        if found:
            return found[0]
        if supervisor.poll() is not None:
            raise AssertionError(f"the supervisor exited with {supervisor.returncode}")
        time.sleep(0.02)
    raise AssertionError("the supervisor spawned no controller")


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def phase(devices: dict[str, Any]) -> str:
    """What the lab is doing, from its physical state."""
    running = [name for name in PUMPS if devices[name]["running"]]
    light = devices["reactor"]["light"]["output_percent"] > 0
    busy = devices["nmr"]["busy"]
    if busy and "shim" not in busy.lower():
        return "acquisition"
    if running and light:
        return "irradiation"
    if running == ["pump-solvent"]:
        return "cleaning"
    if running:
        return "pumping"
    return "idle"


def env_with(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}
