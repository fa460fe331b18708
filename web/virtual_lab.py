"""``GET /api/virtual-lab/state``: the simulated lab's physical truth, for the Lab page.

When the dashboard drives a lab that ``robochem sim`` simulates, the platform file names
the simulator's ``GET /state`` (``state_url``; docs/virtual-lab.md). This route relays it,
so the Lab page can show, beside what the drivers report, what the devices physically do
(a pump a driver believes stopped but that still runs shows up here). The dashboard never
controls anything through it.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from robochem.storage.models import Role
from robochem.web import schemas
from robochem.web.auth import Principal, require_role

__all__ = ["router"]

#: Wall seconds the simulator has to answer (it answers from memory, in milliseconds).
TIMEOUT_S = 2.0

router = APIRouter(
    prefix="/api",
    tags=["virtual lab"],
    responses={401: {"model": schemas.Message}, 403: {"model": schemas.Message}},
)
Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]


class VirtualLabState(BaseModel):
    simulated: bool = Field(description="a simulated lab is behind this dashboard")
    url: str | None = Field(default=None, description="the simulator's GET /state")
    state: dict[str, Any] | None = Field(
        default=None, description="its answer: per device what it physically does, and the time"
    )
    error: str | None = Field(default=None, description="why the simulator did not answer")


@router.get("/virtual-lab/state", response_model=VirtualLabState)
async def virtual_lab_state(request: Request, _: Viewer) -> VirtualLabState:
    """What the simulated devices physically do (not what their drivers report)."""
    url = getattr(request.app.state, "virtual_lab_url", None)
    if not url or url == "sim":  # "sim": a simulated platform file not written by a sim
        return VirtualLabState(simulated=False)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            response = await client.get(url)
        response.raise_for_status()
        return VirtualLabState(simulated=True, url=url, state=response.json())
    except (httpx.HTTPError, ValueError) as exc:  # the lab is down: say so, not a 5xx
        return VirtualLabState(simulated=True, url=url, error=f"{type(exc).__name__}: {exc}")
