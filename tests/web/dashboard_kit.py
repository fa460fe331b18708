"""Test doubles and helpers for the dashboard tests: FakeLab and FakeEngine (not product
code), users with tokens, a seeded campaign, httpx clients over ASGI, login."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from argon2 import PasswordHasher
from fastapi import FastAPI

from robochem.drivers.errors import DeviceFault, SetpointRejected
from robochem.events import EventBus
from robochem.storage.db import Database
from robochem.storage.models import Campaign, CampaignStatus, Experiment, Measurement
from robochem.web.app import create_app
from robochem.web.auth import create_user, new_api_token
from robochem.web.lab import (
    CampaignProgress,
    CommandRejectedError,
    ControlError,
    DeviceState,
    ExampleProtocol,
    ProtocolInvalidError,
    ProtocolIssue,
    UnknownCampaignError,
    UnknownDeviceError,
)

# Cheap argon2id parameters: the tests create many users.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery"
SECRET = b"k" * 32


class FakeLab:
    """A LabController double: three devices whose state changes with commands."""

    platform = "test-bench"

    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.state: dict[str, DeviceState] = {
            "pump-a": DeviceState(
                "pump-a", "knauer_azura", "pump", True,
                {"flow_ml_min": 0.0, "pressure_bar": 1.2}, [], ["flow"],
                limits={"flow_ml_min": [0, 10]}, updated_at=now,
            ),
            "reactor": DeviceState(
                "reactor", "photoreactor_modbus", "photoreactor", True,
                {"light_percent": 0.0, "temperature_c": 25.0}, [], ["light", "temperature"],
                updated_at=now,
            ),
            "valve": DeviceState(
                "valve", "knauer_valve", "valve", True, {"position": "1"}, [], ["valve"],
                positions=["1", "2", "3", "4", "5", "6"], updated_at=now,
            ),
        }  # fmt: skip
        self.calls: list[tuple[str, ...]] = []

    def devices(self) -> list[DeviceState]:
        return [
            replace(d, readings=dict(d.readings), faults=list(d.faults))
            for d in self.state.values()
        ]

    def _device(self, name: str, control: str) -> DeviceState:
        if name not in self.state:
            raise UnknownDeviceError(name)
        device = self.state[name]
        if control not in device.controls:
            raise CommandRejectedError(f"{name} has no {control} control")
        if device.faults:
            raise DeviceFault(device.faults[0], device=name)
        return device

    def _touch(self, device: DeviceState, key: str, value: Any) -> None:
        device.readings[key] = value
        device.updated_at = dt.datetime.now(dt.UTC)

    async def set_flow(self, device: str, ml_min: float) -> None:
        d = self._device(device, "flow")
        if ml_min > 10:
            raise SetpointRejected(
                device=device, quantity="flow", value=ml_min, unit="mL/min", allowed="0-10"
            )
        self.calls.append(("flow", device, str(ml_min)))
        self._touch(d, "flow_ml_min", ml_min)

    async def set_light(self, device: str, percent: float) -> None:
        d = self._device(device, "light")
        self.calls.append(("light", device, str(percent)))
        self._touch(d, "light_percent", percent)

    async def set_temperature(self, device: str, celsius: float) -> None:
        d = self._device(device, "temperature")
        self.calls.append(("temperature", device, str(celsius)))
        self._touch(d, "temperature_c", celsius)

    async def set_valve(self, device: str, position: str) -> None:
        d = self._device(device, "valve")
        if position not in d.positions:
            raise CommandRejectedError(f"{device}: no position {position!r}")
        self.calls.append(("valve", device, position))
        self._touch(d, "position", position)

    async def emergency_stop(self) -> None:
        self.calls.append(("emergency_stop",))
        self._touch(self.state["pump-a"], "flow_ml_min", 0.0)
        self._touch(self.state["reactor"], "light_percent", 0.0)


VALID_PROTOCOL = "name: test campaign\nobjective: yield\nbudget: 5\n"


@dataclass
class FakeEngine:
    """A CampaignController double: stores campaigns, moves statuses, publishes events."""

    database: Database
    bus: EventBus
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def examples(self) -> list[ExampleProtocol]:
        return [ExampleProtocol("simple", "A simple campaign", VALID_PROTOCOL)]

    def validate(self, protocol_yaml: str) -> list[ProtocolIssue]:
        return [
            ProtocolIssue(f"unknown key {m.group(1)!r}", line=n, column=1, path=m.group(1))
            for n, text in enumerate(protocol_yaml.splitlines(), start=1)
            if (m := re.match(r"^(bad\w*):", text))
        ]

    async def create(self, protocol_yaml: str, *, created_by: str) -> int:
        if issues := self.validate(protocol_yaml):
            raise ProtocolInvalidError(issues)
        with self.database.session() as session:
            row = Campaign(
                name=f"by {created_by}",
                protocol_text=protocol_yaml,
                protocol_sha256=hashlib.sha256(protocol_yaml.encode()).hexdigest(),
            )
            session.add(row)
            session.flush()
            campaign_id = row.id
        await self.bus.publish("engine", "campaign.created", campaign_id=campaign_id)
        return campaign_id

    async def _move(self, campaign_id: int, allowed: tuple[str, ...], to: str) -> None:
        with self.database.session() as session:
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise UnknownCampaignError(f"no campaign {campaign_id}")
            if row.status not in allowed:
                raise ControlError(f"campaign {campaign_id} is {row.status}")
            row.status = to
        self.calls.append((to, campaign_id))
        await self.bus.publish("engine", f"campaign.{to}", campaign_id=campaign_id)

    async def start(self, campaign_id: int) -> None:
        await self._move(campaign_id, ("created",), CampaignStatus.RUNNING)

    async def pause(self, campaign_id: int) -> None:
        await self._move(campaign_id, ("running",), CampaignStatus.PAUSED)

    async def resume(self, campaign_id: int) -> None:
        await self._move(campaign_id, ("paused",), CampaignStatus.RUNNING)

    async def abort(self, campaign_id: int, reason: str) -> None:
        self.calls.append(("abort-reason", reason))
        await self._move(campaign_id, ("created", "running", "paused"), CampaignStatus.ABORTED)

    def progress(self, campaign_id: int) -> CampaignProgress | None:
        return None


# -- data ------------------------------------------------------------------------------


def synthetic_plot(product_height: float) -> dict[str, Any]:
    ppm = [10 - i * 0.01 for i in range(1000)]

    def peak(x: float, at: float, h: float) -> float:
        return h / (1 + ((x - at) / 0.02) ** 2)

    intensity = [peak(x, 7.26, 1.0) + peak(x, 3.9, product_height) + peak(x, 2.1, 0.5) for x in ppm]
    return {
        "ppm": ppm,
        "intensity": intensity,
        "regions": [
            {"role": "internal_standard", "name": "TMB", "lo": 7.1, "hi": 7.4},
            {"role": "product", "name": "product", "lo": 3.8, "hi": 4.0},
            {"role": "substrate", "name": "acid", "lo": 2.0, "hi": 2.2},
        ],
    }


def seed_campaign(database: Database, *, name: str = "Decarboxylative coupling") -> dict[str, Any]:
    """A running campaign: 6 experiments done (one rejected by QC), one running."""
    t0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
    with database.session() as s:
        campaign = Campaign(
            name=name,
            protocol_text="name: decarboxylation\nbudget: 10\n",
            protocol_sha256="a" * 64,
            status=CampaignStatus.RUNNING,
            started_at=t0,
            summary={"planned_experiments": 10, "current_step": "irradiating"},
        )
        s.add(campaign)
        s.flush()
        experiment_ids = []
        for i in range(7):
            conditions = {
                "residence_time_min": 2.0 + 1.5 * i,
                "light_percent": 40 + 8 * i,
                "temperature_c": 25 + (i % 3) * 5,
            }
            done = i < 6
            e = Experiment(
                campaign_id=campaign.id,
                index=i + 1,
                conditions=conditions,
                status="done" if done else "running",
                started_at=t0 + dt.timedelta(minutes=20 * i),
                ended_at=t0 + dt.timedelta(minutes=20 * i + 18) if done else None,
            )
            s.add(e)
            s.flush()
            experiment_ids.append(e.id)
            if not done:
                continue
            rejected = i == 3
            y = None if rejected else round(30 + 55 * math.sin(i / 6 * math.pi / 1.2), 2)
            s.add(
                Measurement(
                    experiment_id=e.id,
                    yield_percent=y,
                    conversion_percent=None if rejected else min(100.0, (y or 0) + 10),
                    throughput_mmol_h=None if rejected else round(3.0 / (1 + i * 0.4), 3),
                    qc_status="rejected" if rejected else ("warning" if i == 5 else "ok"),
                    qc_reasons=["low SNR"] if rejected else [],
                    result={
                        "yield": y,
                        "nucleus": "1H",
                        "integrals": {
                            "TMB": {"integral": 1.0, "concentration_M": 0.05,
                                    "fwhm_hz": 2.1, "role": "internal_standard"},
                            "product": {
                                "integral": (y or 1) / 50,
                                "concentration_M": 0.001 * (y or 0),
                            },
                        },
                        "snr": {"TMB": 250.0, "product": 80.0, "acid": 40.0},
                        "processing": {"line_broadening_hz": 0.5},
                        "plot": synthetic_plot((y or 5) / 60),
                    },
                )
            )
    return {"campaign_id": campaign.id, "experiment_ids": experiment_ids}


# -- app and users ---------------------------------------------------------------------


@dataclass
class World:
    app: FastAPI
    database: Database
    bus: EventBus
    lab: FakeLab | None
    engine: FakeEngine | None
    tokens: dict[str, str]  # role name -> bearer token
    token_ids: dict[str, int]

    def bearer(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def new_token_id(self, user: str) -> int:
        from sqlalchemy import select

        from robochem.storage.models import User

        with self.database.session() as s:
            row, _ = new_api_token(s, s.scalar(select(User).where(User.name == user)), "extra")
            return row.id


def make_world(
    url: str, *, lab: bool = True, engine: bool = True, upgrade_schema: bool = True
) -> World:
    database = Database(url, upgrade_schema=upgrade_schema)
    bus = EventBus(database)
    fake_lab = FakeLab() if lab else None
    fake_engine = FakeEngine(database, bus) if engine else None
    app = create_app(
        database,
        bus,
        lab=fake_lab,
        campaigns=fake_engine,
        secret_key=SECRET,
        device_poll_s=0.05,
        password_hasher=FAST_HASHER,
    )
    tokens, token_ids = {}, {}
    with database.session() as s:
        for role in ("viewer", "operator", "admin"):
            user = create_user(s, role, role, PASSWORD, hasher=FAST_HASHER)
            row, plain = new_api_token(s, user, "test")
            tokens[role], token_ids[role] = plain, row.id
    return World(app, database, bus, fake_lab, fake_engine, tokens, token_ids)


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def login(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token (from the page meta)."""
    page = await client.get("/login")
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = await client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": login_csrf, "next": "/lab"},
    )
    assert response.status_code == 303, response.text
    lab = await client.get("/lab")
    return re.search(r'<meta name="csrf-token" content="([^"]*)">', lab.text).group(1)
