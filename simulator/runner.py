"""``robochem sim``: the reference simulated platform on localhost.

Starts one simulator server per device (three pump families, a switching valve, an LED
photoreactor with an Omron-compatible temperature controller, a Spinsolve NMR), each on a
free port, and describes them as a platform (device name -> driver + URL) that the
drivers, the engine and the dashboard use exactly as they would a real lab.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robochem.clock import Clock, set_clock


@dataclass(frozen=True)
class SimDeviceSpec:
    name: str
    driver: str
    factory: Callable[..., Any]  # builds the simulator: factory(clock=..., **options)
    options: dict[str, Any] = field(default_factory=dict)
    driver_options: dict[str, Any] = field(default_factory=dict)
    role: str = ""


def reference_devices(data_root: Path) -> list[SimDeviceSpec]:
    """The reference platform. Imports are local so ``robochem --help`` stays fast."""
    from robochem.simulator.chemyx import ChemyxSimulator
    from robochem.simulator.harvard import Elite11Simulator
    from robochem.simulator.knauer import KnauerPumpSimulator, KnauerValveSimulator
    from robochem.simulator.modbus_reactor import PhotoreactorSimulator
    from robochem.simulator.spinsolve import SpinsolveSimulator

    return [
        SimDeviceSpec(
            "pump-substrate",
            "knauer-azura",
            KnauerPumpSimulator,
            {"head_ml": 10, "model": "P4.1S"},
            {"head_ml": 10, "model": "P4.1S"},
            "pumps the substrate stock (HPLC pump with pressure sensor)",
        ),
        SimDeviceSpec(
            "pump-reagent",
            "harvard-elite11",
            Elite11Simulator,
            {},
            {},
            "pumps the reagent stock (syringe pump)",
        ),
        SimDeviceSpec(
            "pump-catalyst",
            "chemyx-fusion",
            ChemyxSimulator,
            {},
            {},
            "pumps the photocatalyst stock (syringe pump)",
        ),
        SimDeviceSpec(
            "valve-collect",
            "knauer-valve",
            KnauerValveSimulator,
            {},
            {},
            "sends the reactor outlet to waste or collection",
        ),
        SimDeviceSpec(
            "reactor",
            "modbus-photoreactor",
            PhotoreactorSimulator,
            {},
            {},
            "LED photoreactor with temperature control (Modbus RTU over TCP)",
        ),
        SimDeviceSpec(
            "nmr",
            "spinsolve",
            SpinsolveSimulator,
            {"data_root": data_root},
            {},
            "inline benchtop NMR (Spinsolve remote control)",
        ),
    ]


class SimulatedPlatform:
    """All reference simulators, started and stopped together."""

    def __init__(
        self,
        *,
        speed: float = 1.0,
        data_root: Path | None = None,
        host: str = "127.0.0.1",
        epoch: float | None = None,
    ) -> None:
        self.clock = Clock(speed=speed, epoch=epoch if epoch is not None else time.time())
        self.host = host
        self.data_root = Path(data_root) if data_root else _default_data_root()
        self.specs = reference_devices(self.data_root)
        self.servers: dict[str, Any] = {}

    async def start(self) -> SimulatedPlatform:
        self.data_root.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.specs:
                server = spec.factory(clock=self.clock, host=self.host, **spec.options)
                await server.start()
                self.servers[spec.name] = server
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        for server in reversed(list(self.servers.values())):
            with contextlib.suppress(Exception):
                await server.stop()
        self.servers.clear()

    async def __aenter__(self) -> SimulatedPlatform:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def device_urls(self) -> dict[str, dict[str, str]]:
        """Device name -> {"driver", "url"}: what ``--json`` prints."""
        return {
            spec.name: {"driver": spec.driver, "url": self.servers[spec.name].url()}
            for spec in self.specs
        }

    def platform(self) -> dict[str, Any]:
        """The platform description pointing the drivers at these simulators."""
        devices: dict[str, Any] = {}
        for spec in self.specs:
            entry: dict[str, Any] = {"driver": spec.driver, "url": self.servers[spec.name].url()}
            if spec.driver_options:
                entry["options"] = dict(spec.driver_options)
            if spec.role:
                entry["role"] = spec.role
            devices[spec.name] = entry
        return {
            "name": "simulated-lab",
            "simulated": True,
            "clock": {"speed": self.clock.speed, "epoch": self.clock.epoch},
            "devices": devices,
        }

    def write_platform(self, path: Path) -> None:
        header = (
            "# Written by `robochem sim`: the drivers' URLs point at the simulated lab.\n"
            "# Valid while that process runs; its ports change on every start.\n"
        )
        path.write_text(header + yaml.safe_dump(self.platform(), sort_keys=False))


def _default_data_root() -> Path:
    from robochem.settings import get_settings

    return get_settings().data_dir / "sim-nmr"


async def run_until_stopped(
    platform: SimulatedPlatform, *, as_json: bool, platform_out: Path | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C raises instead
            loop.add_signal_handler(sig, stop.set)
    async with platform:
        if platform_out is not None:
            platform.write_platform(platform_out)  # before the JSON line announces readiness
        if as_json:
            # The first line of stdout, so a parent process can read it and go.
            sys.stdout.write(json.dumps(platform.device_urls()) + "\n")
            sys.stdout.flush()
        _print_summary(platform, platform_out)
        await stop.wait()


def _print_summary(platform: SimulatedPlatform, platform_out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    table = Table("device", "driver", "url", title="robochem simulated lab")
    for name, entry in platform.device_urls().items():
        table.add_row(name, entry["driver"], entry["url"])
    console.print(table)
    console.print(
        f"clock speed x{platform.clock.speed:g} (epoch {platform.clock.epoch:.3f}); "
        f"NMR data in {platform.data_root}"
    )
    if platform_out is not None:
        console.print(f"platform file: {platform_out}")
    console.print("Ctrl-C or SIGTERM stops the lab.")


def sim_command(
    as_json: bool = False,
    platform_out: Path | None = None,
    speed: float = 1.0,
    data_dir: Path | None = None,
) -> None:
    platform = SimulatedPlatform(speed=speed, data_root=data_dir)
    set_clock(platform.clock)
    asyncio.run(run_until_stopped(platform, as_json=as_json, platform_out=platform_out))
