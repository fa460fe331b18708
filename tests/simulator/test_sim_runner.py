"""`robochem sim` as a user runs it: a separate process, reached only through sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

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
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.stderr.read() if proc.stderr else "no output"
        devices = json.loads(first)
        platform = yaml.safe_load(platform_file.read_text())
        yield devices, platform
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=15) == 0
        finally:
            proc.kill()


def test_json_first_line_names_every_device_with_driver_and_url(sim_process) -> None:
    devices, _ = sim_process
    drivers = {entry["driver"] for entry in devices.values()}
    pump_families = drivers & {"knauer-azura", "harvard-elite11", "chemyx-fusion"}
    assert len(pump_families) == 3
    assert {"knauer-valve", "modbus-photoreactor", "spinsolve"} <= drivers
    assert all("127.0.0.1:" in entry["url"] for entry in devices.values())


def test_platform_file_points_at_the_same_servers_and_clock(sim_process) -> None:
    devices, platform = sim_process
    assert {
        n: {"driver": d["driver"], "url": d["url"]} for n, d in platform["devices"].items()
    } == (devices)
    assert platform["clock"]["speed"] == SPEED


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
