"""What every route needs, held on ``app.state.ctx`` (one per app: no module globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from robochem.events import EventBus
from robochem.storage.db import Database
from robochem.web.auth import Auth
from robochem.web.lab import CampaignController, LabController


@dataclass
class WebContext:
    database: Database
    auth: Auth
    bus: EventBus
    lab: LabController | None
    campaigns: CampaignController | None
    platform: str | None
    device_poll_s: float = 0.1
    heartbeat_s: float = 15.0
    # (expires at, counts, active campaigns): /api/status is polled by many clients.
    status_cache: tuple[float, Any, Any] | None = None


async def get_ctx(request: Request) -> WebContext:
    # async on purpose: FastAPI runs a plain ``def`` dependency in the thread pool, a
    # thread hop on every request for an attribute read (~20 % of /api/status CPU time).
    return request.app.state.ctx
