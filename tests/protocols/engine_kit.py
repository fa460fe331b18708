"""The engine tests' kit: a narrowed protocol, the in-process simulated lab with its
database, bus and connected lab (the ``env`` fixture in conftest.py), and event waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from robochem.clock import set_clock
from robochem.events import Event, EventBus
from robochem.protocols.load import parse_platform
from robochem.protocols.platform import Platform
from robochem.protocols.runtime.engine import Engine, EngineState, Policy, create_campaign
from robochem.protocols.runtime.lab import Lab, connect_lab
from robochem.simulator.runner import SimulatedPlatform
from robochem.storage.db import Database
from robochem.storage.models import Campaign, Experiment

ROOT = Path(__file__).resolve().parents[2]
PUMPS = ("pump-substrate", "pump-reagent", "pump-catalyst", "pump-solvent")


def engine_protocol(budget: int = 2, initial: int = 2) -> str:
    """hat-alkylation, narrowed to fast, high-yield conditions."""
    text = (ROOT / "protocols" / "examples" / "hat-alkylation.yaml").read_text()
    swaps = {
        "{type: residence_time, low: 1 min, high: 20 min, log: true}": (
            "{type: residence_time, low: 8 min, high: 9 min}"
        ),
        "{type: light, low: 0 %, high: 100 %}": "{type: light, low: 40 %, high: 50 %}",
        "low: 0.5 mol%, high: 5 mol%": "low: 2.5 mol%, high: 3 mol%",
        "low: 0.05 M, high: 0.3 M": "low: 0.11 M, high: 0.12 M",
        "temperature: {type: temperature, low: 10 degC, high: 60 degC}": (
            "temperature: {type: temperature, low: 26 degC, high: 28 degC}"
        ),
        "budget: 30": f"budget: {budget}",
        "initial_experiments: 8": f"initial_experiments: {initial}",
    }
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@dataclass
class Env:
    sim: SimulatedPlatform
    platform: Platform
    db: Database
    bus: EventBus
    lab: Lab

    def campaign(self, budget: int = 2, initial: int = 2) -> int:
        return create_campaign(self.db, engine_protocol(budget, initial), platform=self.platform)

    def engine(self, campaign_id: int, **kwargs: Any) -> Engine:
        kwargs.setdefault("policy", Policy(on_rejected="fail"))
        return Engine(self.db, self.bus, self.lab, campaign_id, clock=self.sim.clock, **kwargs)

    def experiments(self, campaign_id: int) -> list[Experiment]:
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(Experiment)
                    .where(Experiment.campaign_id == campaign_id)
                    .order_by(Experiment.index)
                )
            )

    def campaign_row(self, campaign_id: int) -> Campaign:
        with self.db.session() as s:
            row = s.get(Campaign, campaign_id)
            assert row is not None
            return row

    def assert_safe(self) -> None:
        world = self.sim.world
        for pump in PUMPS:
            assert world._flow_ml_min(pump) == 0.0, pump
        reactor = self.sim.servers["reactor"]
        assert not reactor.led_enabled
        assert reactor.led_output_percent == 0.0
        assert str(self.sim.servers["valve-collect"].position) == "1"


async def wait_event(
    bus: EventBus, where: Callable[[Event], bool], task: asyncio.Task[Any], wall_s: float = 60
) -> Event:
    """The first event matching ``where`` (fails early if the engine task ends first)."""
    with bus.subscribe(where) as sub:
        getter = asyncio.ensure_future(sub.get())
        done, _ = await asyncio.wait({getter, task}, timeout=wall_s, return_when="FIRST_COMPLETED")
        if getter in done:
            return getter.result()
        getter.cancel()
        if task in done:
            task.result()
            raise AssertionError("the engine ended before the expected event")
        raise AssertionError("timed out waiting for an event")


def step_event(kind: str, index: int | None = None) -> Callable[[Event], bool]:
    return lambda e: (
        e.kind == "step"
        and e.payload.get("step") == kind
        and (index is None or e.payload.get("index") == index)
    )


def state_event(state: EngineState) -> Callable[[Event], bool]:
    return lambda e: e.kind == "campaign.state" and e.payload.get("to") == state


@contextlib.asynccontextmanager
async def simulated_env(
    env_type: type[Env],
    tmp_path: Path,
    database_url: str,
    *,
    speed: float = 1000,
    seed: int = 3,
    device_options: dict[str, dict[str, Any]] | None = None,
) -> AsyncIterator[Env]:
    """The in-process simulated lab, its platform (``device_options`` added per device),
    a database, a bus and the connected lab, as ``env_type``; all closed afterwards."""
    sim = SimulatedPlatform(speed=speed, data_root=tmp_path / "nmr", seed=seed)
    await sim.start()
    set_clock(sim.clock)
    data = sim.platform()
    for name, options in (device_options or {}).items():
        data["devices"][name]["options"] = {**data["devices"][name].get("options", {}), **options}
    platform = parse_platform(yaml.safe_dump(data), "sim-platform.yaml")
    db = Database(database_url)
    lab = await connect_lab(platform)
    try:
        yield env_type(sim, platform, db, EventBus(db, clock=sim.clock), lab)
    finally:
        await lab.close()
        await sim.stop()
        db.dispose()
