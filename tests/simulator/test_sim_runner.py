"""`robochem sim` as a user runs it: a separate process, reached only through sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from wire import first_line

from robochem.clock import Clock, set_clock
from robochem.drivers import open_device

ROBOCHEM = str(Path(sys.executable).with_name("robochem"))
SPEED = 100.0


@pytest.fixture(scope="module")
def sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, dict]]:
    tmp = tmp_path_factory.mktemp("sim")
    platform_file = tmp / "platform.yaml"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp)}
    proc = subprocess.Popen(
        [ROBOCHEM, "sim", "--json", "--speed", str(SPEED), "--platform-out", str(platform_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = first_line(proc, timeout=60)
        assert first, proc.stderr.read() if proc.stderr else "no output"
        endpoints = json.loads(first)
        platform = yaml.safe_load(platform_file.read_text())
        yield endpoints, platform
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=15) == 0
        finally:
            proc.kill()


def test_json_first_line_names_every_device_with_driver_and_url(sim_process) -> None:
    endpoints, _ = sim_process
    devices = {name: entry for name, entry in endpoints.items() if name != "state"}
    drivers = {entry["driver"] for entry in devices.values()}
    pump_families = drivers & {"knauer-azura", "harvard-elite11", "chemyx-fusion"}
    assert len(pump_families) == 3
    assert {"knauer-valve", "modbus-photoreactor", "spinsolve"} <= drivers
    assert all("127.0.0.1:" in entry["url"] for entry in devices.values())


def test_platform_file_points_at_the_same_servers_and_clock(sim_process) -> None:
    endpoints, platform = sim_process
    assert {
        n: {"driver": d["driver"], "url": d["url"]} for n, d in platform["devices"].items()
    } == {name: entry for name, entry in endpoints.items() if name != "state"}
    assert platform["clock"]["speed"] == SPEED
    assert platform["state_url"] == endpoints["state"]["url"]


def test_state_tells_what_every_device_physically_does(sim_process) -> None:
    """GET /state with a generic HTTP client: every device of the platform, by kind, and
    the simulated time; other paths and methods are refused."""
    endpoints, platform = sim_process
    url = endpoints["state"]["url"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/state")
    first = httpx.get(url, timeout=5)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    state = first.json()
    assert set(state["devices"]) == set(platform["devices"])
    kinds = {name: d["kind"] for name, d in state["devices"].items()}
    assert kinds == {
        "pump-substrate": "pump", "pump-solvent": "pump", "pump-reagent": "pump",
        "pump-catalyst": "pump", "valve-catalyst": "valve", "valve-collect": "valve",
        "reactor": "photoreactor", "nmr": "nmr",
    }  # fmt: skip
    for name in ("pump-substrate", "pump-solvent", "pump-reagent", "pump-catalyst"):
        assert state["devices"][name] == {"kind": "pump", "running": False, "flow_ml_min": 0.0}
    reactor = state["devices"]["reactor"]
    assert reactor["light"] == {"on": False, "output_percent": 0.0}
    assert set(reactor["temperature"]) == {"control", "setpoint_c", "reading_c"}
    assert state["devices"]["valve-collect"]["position"] in [str(i) for i in range(1, 7)]
    assert state["speed"] == SPEED
    later = httpx.get(url, timeout=5).json()
    assert later["simulated_time"] > state["simulated_time"]  # simulated time moves on
    base = url.removesuffix("/state")
    assert httpx.get(f"{base}/nothing", timeout=5).status_code == 404
    assert httpx.post(url, timeout=5).status_code == 405


async def test_state_follows_the_devices_not_the_drivers(sim_process) -> None:
    """A pump started and the light switched on through their drivers show in /state as
    what the simulators do; stopped again, they show stopped."""
    _, platform = sim_process
    set_clock(Clock(speed=SPEED, epoch=platform["clock"]["epoch"]))
    url = platform["state_url"]
    devices = platform["devices"]
    pump_entry, reactor_entry = devices["pump-solvent"], devices["reactor"]
    async with (
        open_device("knauer-azura", pump_entry["url"], **pump_entry.get("options", {})) as pump,
        open_device("modbus-photoreactor", reactor_entry["url"], watchdog_s=5) as reactor,
    ):
        await pump.set_flow_rate(1.5)
        await pump.start()
        await reactor.light.set_intensity(40)
        await reactor.light.light_on()
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(50):  # the LED ramps up over 0.5 simulated s
                state = (await client.get(url)).json()["devices"]
                if state["reactor"]["light"]["output_percent"] == 40.0:
                    break
                await asyncio.sleep(0.02)
            assert state["pump-solvent"] == {"kind": "pump", "running": True, "flow_ml_min": 1.5}
            assert state["reactor"]["light"] == {"on": True, "output_percent": 40.0}
            await pump.stop()
            await reactor.light.light_off()
            state = (await client.get(url)).json()["devices"]
            assert state["pump-solvent"]["running"] is False
            assert state["pump-solvent"]["flow_ml_min"] == 0.0
            assert state["reactor"]["light"] == {"on": False, "output_percent": 0.0}


async def test_every_device_answers_its_driver(sim_process) -> None:
    _, platform = sim_process
    set_clock(Clock(speed=SPEED, epoch=platform["clock"]["epoch"]))
    for name, entry in platform["devices"].items():
        options = entry.get("options", {})
        async with open_device(entry["driver"], entry["url"], name=name, **options) as device:
            assert await device.is_reachable(), name
    by_driver = {d["driver"]: (n, d) for n, d in platform["devices"].items()}
    name, entry = by_driver["knauer-azura"]
    async with open_device("knauer-azura", entry["url"], **entry.get("options", {})) as pump:
        assert await pump.set_flow_rate(1.25) == pytest.approx(1.25)
        assert await pump.get_flow_rate() == pytest.approx(1.25)
    name, entry = by_driver["modbus-photoreactor"]
    async with open_device("modbus-photoreactor", entry["url"]) as reactor:
        temperature = await reactor.temperature.get_temperature()
        assert 0 < temperature < 60
    name, entry = by_driver["spinsolve"]
    async with open_device("spinsolve", entry["url"]) as nmr:
        assert (await nmr.hardware_check()).connected
