"""``robochem sim``: the reference simulated platform on localhost.

Starts one simulator server per device (three pump families, a switching valve, an LED
photoreactor with an Omron-compatible temperature controller, a Spinsolve NMR), each on a
free port, and describes them as a platform (device name -> driver + URL) that the
drivers, the engine and the dashboard use exactly as they would a real lab. Beside them,
``GET /state`` (:mod:`.state_server`) tells what the lab physically does.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robochem.clock import Clock, set_clock

log = logging.getLogger("robochem.simulator.runner")

#: The reaction behind the simulated lab unless ``--reaction`` names another preset.
DEFAULT_REACTION = "hat-alkylation"


@dataclass(frozen=True)
class SimDeviceSpec:
    name: str
    driver: str
    factory: Callable[..., Any]  # builds the simulator: factory(clock=..., **options)
    options: dict[str, Any] = field(default_factory=dict)
    driver_options: dict[str, Any] = field(default_factory=dict)
    role: str = ""


def _syringe_flow_limits(diameter_mm: float, min_mm_min: float, max_mm_min: float) -> list[str]:
    """[min, max] flow of a syringe pump from its pusher speed range, as platform-file text."""
    area_mm2 = math.pi * (diameter_mm / 2) ** 2
    return [
        f"{area_mm2 * min_mm_min / 1000:.3g} mL/min",
        f"{area_mm2 * max_mm_min / 1000:.3g} mL/min",
    ]


def sim_limits() -> dict[str, dict[str, Any]]:
    """Device name -> platform-file ``limits`` (text with units), from the simulators' own
    ranges (syringe pumps: pusher speed x the 14.567 mm syringe they start with)."""
    from robochem.simulator import chemyx, harvard

    def hplc() -> dict[str, Any]:  # Azura with a 10 mL head
        return {"flow": ["0.001 mL/min", "10 mL/min"], "max_pressure": "400 bar"}

    return {
        "pump-substrate": hplc(),
        "pump-solvent": hplc(),
        "pump-reagent": {
            "flow": _syringe_flow_limits(14.567, harvard.MIN_SPEED_MM_MIN, harvard.MAX_SPEED_MM_MIN)
        },
        "pump-catalyst": {
            "flow": _syringe_flow_limits(14.567, chemyx.MIN_SPEED_MM_MIN, chemyx.MAX_SPEED_MM_MIN)
        },
        "valve-catalyst": {"positions": [str(i) for i in range(1, 7)]},
        "valve-collect": {"positions": [str(i) for i in range(1, 7)]},
        "reactor": {
            "light": ["0 %", "100 %"],
            "temperature": ["-20 degC", "150 degC"],
            "wavelengths": ["365 nm", "450 nm"],  # the world fits the preset's LED
        },
    }


#: The simulated flow path (as ``simulator.fluidics.standard_path`` with the presets' reactor); the
#: platform file's ``fluidics:`` section, see docs/protocols.md.
SIM_FLUIDICS: dict[str, Any] = {
    "pumps": {
        "pump-substrate": {"dead_volume": "0.1 mL"},
        "pump-reagent": {"dead_volume": "0.1 mL"},
        "pump-catalyst": {"dead_volume": "0.1 mL", "selector": "valve-catalyst"},
        "pump-solvent": {"dead_volume": "0.1 mL"},
    },
    "mixer_volume": "0.05 mL",
    "reactor": {"device": "reactor", "volume": "3.9 mL", "inner_diameter": "1.59 mm"},
    "nmr": {
        "device": "nmr", "cell_volume": "0.1 mL", "transfer_volume": "0.5 mL",
        # Shim before the first experiment and again once the drifting field has broadened
        # the standard's line past 2 Hz (the simulated magnet drifts 0.1 Hz an hour).
        "shim": {"method": "QuickShim", "max_line_width": "2 Hz", "at_start": True},
    },
    "outlet_volume": "0.3 mL",
    "collection": {"valve": "valve-collect", "waste": "1", "collect": "2"},
    "gas_inlet": None,
    "back_pressure": "5 bar",
}


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
            "pump-solvent",
            "knauer-azura",
            KnauerPumpSimulator,
            {"head_ml": 10, "model": "P4.1S"},
            {"head_ml": 10, "model": "P4.1S"},
            "pumps solvent: dilutes the stocks and carries slugs",
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
            "valve-catalyst",
            "knauer-valve",
            KnauerValveSimulator,
            {"valve_type": "6"},
            {},
            "selects the photocatalyst stock the catalyst pump draws (positions 1-6)",
        ),
        SimDeviceSpec(
            "valve-collect",
            "knauer-valve",
            KnauerValveSimulator,
            {"valve_type": "6"},
            {},
            "reactor outlet: position 1 waste, 2 collection",
        ),
        SimDeviceSpec(
            "reactor",
            "modbus-photoreactor",
            PhotoreactorSimulator,
            {},
            # The LED switches off 5 wall seconds after the last heartbeat (the watchdog
            # counts real time, as a device's firmware does, at any clock speed).
            {"watchdog_s": 5},
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
        reaction: str | None = DEFAULT_REACTION,
        seed: int = 0,
        faults: list[Any] | None = None,
    ) -> None:
        self.clock = Clock(speed=speed, epoch=epoch if epoch is not None else time.time())
        self.host = host
        self.data_root = Path(data_root) if data_root else _default_data_root()
        self.specs = reference_devices(self.data_root)
        self.servers: dict[str, Any] = {}
        self.reaction = reaction
        self.seed = seed
        self.faults = faults or []
        self.world: Any = None  # the VirtualLab, when a reaction is loaded
        self.state_server: Any = None  # GET /state, while running

    async def start(self) -> SimulatedPlatform:
        from robochem.simulator.state_server import StateServer

        self.data_root.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.specs:
                server = spec.factory(clock=self.clock, host=self.host, **spec.options)
                await server.start()
                self.servers[spec.name] = server
            if self.reaction is not None:
                self.world = build_world(self.servers, self.reaction, self.seed, self.faults)
                self.world.start()
            self.state_server = await StateServer(self.state, host=self.host).start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        if self.state_server is not None:
            await self.state_server.stop()
            self.state_server = None
        if self.world is not None:
            await self.world.stop()
            self.world = None
        for server in reversed(list(self.servers.values())):
            try:
                await server.stop()
            except (OSError, TimeoutError) as exc:  # stop the others all the same
                log.warning("stopping the %s simulator failed: %r", server.family, exc)
        self.servers.clear()

    async def __aenter__(self) -> SimulatedPlatform:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def state(self) -> dict[str, Any]:
        """What every device physically does now (the body of ``GET /state``)."""
        from robochem.simulator.state_server import lab_state

        return lab_state(self.servers, self.clock, self.world)

    def state_url(self) -> str:
        return self.state_server.url() if self.state_server is not None else "sim"

    def device_urls(self) -> dict[str, dict[str, str]]:
        """Device name -> {"driver", "url"}."""
        return {
            spec.name: {"driver": spec.driver, "url": self.servers[spec.name].url()}
            for spec in self.specs
        }

    def endpoints(self) -> dict[str, dict[str, str]]:
        """What ``--json`` prints: every device, plus ``"state": {"url": ...}``."""
        return {**self.device_urls(), "state": {"url": self.state_url()}}

    def platform(self) -> dict[str, Any]:
        """The platform file pointing the drivers at these simulators (docs/protocols.md).

        Before :meth:`start` every URL is ``sim`` ("given by the running simulator"): that is
        the layout shipped as ``protocols/platforms/simulated.yaml``.
        """
        devices: dict[str, Any] = {}
        limits = sim_limits()
        for spec in self.specs:
            server = self.servers.get(spec.name)
            url = server.url() if server is not None else "sim"
            entry: dict[str, Any] = {"driver": spec.driver, "url": url}
            if spec.driver_options:
                entry["options"] = dict(spec.driver_options)
            if spec.role:
                entry["role"] = spec.role
            if spec.name in limits:
                entry["limits"] = limits[spec.name]
            devices[spec.name] = entry
        return {
            "robochem": 1,
            "name": "simulated-lab",
            "simulated": True,
            "reaction": self.reaction,
            "clock": {"speed": self.clock.speed, "epoch": self.clock.epoch},
            "state_url": self.state_url(),
            "devices": devices,
            "fluidics": copy.deepcopy(SIM_FLUIDICS),
        }

    def write_platform(self, path: Path) -> None:
        header = (
            "# Written by `robochem sim`: the drivers' URLs point at the simulated lab.\n"
            "# Valid while that process runs; its ports change on every start.\n"
        )
        path.write_text(header + yaml.safe_dump(self.platform(), sort_keys=False))


def reference_layout(preset: Any) -> Any:
    """How the reference platform's devices carry a preset's stocks.

    The first two stocks (substrate with the internal standard, reagent) have their own
    pumps; the remaining stocks are photocatalysts drawn by the catalyst pump through the
    selector valve (position 1 = the first one); a solvent pump dilutes and carries.
    """
    from robochem.simulator.world import WorldLayout

    stocks = [s.name for s in preset.stocks]
    return WorldLayout(
        pumps={
            "pump-substrate": stocks[0],
            "pump-reagent": stocks[1],
            "pump-catalyst": stocks[2],
            "pump-solvent": "solvent",
        },
        selected_pump="pump-catalyst",
        selector_valve="valve-catalyst",
        selector_positions={str(i + 1): name for i, name in enumerate(stocks[2:])},
        collection_valve="valve-collect",
        collect_position="2",
        reactor="reactor",
        nmr="nmr",
        pressure_pumps=("pump-substrate", "pump-solvent"),
    )


def build_world(servers: dict[str, Any], reaction: str, seed: int, faults: list[Any]) -> Any:
    from robochem.simulator.reactions import get_preset
    from robochem.simulator.world import VirtualLab

    preset = get_preset(reaction)
    return VirtualLab(servers, preset, reference_layout(preset), seed=seed, faults=faults)


def _default_data_root() -> Path:
    from robochem.settings import get_settings

    return get_settings().data_dir / "sim-nmr"


#: Wall seconds the lab keeps running after the stdin of ``--until-stdin-closes`` closes:
#: long enough for a controller whose supervisor died to make it safe (docs/engine.md).
STDIN_LINGER_S = 10.0


async def run_until_stopped(
    platform: SimulatedPlatform,
    *,
    as_json: bool,
    platform_out: Path | None,
    until_stdin_closes: bool = False,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C raises instead
            loop.add_signal_handler(sig, stop.set)
    if until_stdin_closes:  # the parent (robochem demo) holds stdin: its death closes it
        fd = sys.stdin.fileno()

        def readable() -> None:
            if not os.read(fd, 4096):
                loop.remove_reader(fd)
                loop.call_later(STDIN_LINGER_S, stop.set)

        loop.add_reader(fd, readable)
    async with platform:
        if platform_out is not None:
            platform.write_platform(platform_out)  # before the JSON line announces readiness
        if as_json:
            # The first line of stdout, so a parent process can read it and go.
            sys.stdout.write(json.dumps(platform.endpoints()) + "\n")
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
    table.add_row("(ground truth)", "GET /state", platform.state_url())
    console.print(table)
    console.print(f"reaction: {platform.reaction} (seed {platform.seed})")
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
    reaction: str = DEFAULT_REACTION,
    seed: int = 0,
    faults: list[Any] | None = None,
    until_stdin_closes: bool = False,
) -> None:
    platform = SimulatedPlatform(
        speed=speed, data_root=data_dir, reaction=reaction, seed=seed, faults=faults
    )
    set_clock(platform.clock)
    asyncio.run(
        run_until_stopped(
            platform,
            as_json=as_json,
            platform_out=platform_out,
            until_stdin_closes=until_stdin_closes,
        )
    )
