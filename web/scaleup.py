"""Scale-up in the dashboard: write a scale-up campaign from a finished one, and read a
scale-up run's report and NMR checks (the campaign page plots yield over time).

``POST /api/campaigns/{id}/scale-up`` needs the campaign engine of this process (its
platform validates the protocol, as ``robochem scale-up`` does with ``--platform``);
``GET /api/campaigns/{id}/scale-up`` reads stored data only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from robochem.storage.models import Campaign, Role
from robochem.web import schemas
from robochem.web.api import BUSY, ERRORS
from robochem.web.auth import Principal, require_role
from robochem.web.context import WebContext, get_ctx

router = APIRouter(prefix="/api", tags=["scale-up"], responses=ERRORS)
Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
Ctx = Annotated[WebContext, Depends(get_ctx)]
CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1)]

EVENT_KINDS = ("scaleup.check", "scaleup.phase", "scaleup.drift", "scaleup.report")


class ScaleUpRequest(BaseModel):
    amount: str = Field(min_length=1, max_length=50, description="e.g. '5 mmol'")
    objective: Literal["yield", "throughput"] = "yield"
    on_drift: Literal["pause", "stop"] = "pause"


class ScaleUpCreated(BaseModel):
    id: int
    protocol_yaml: str


class ScaleUpCheck(BaseModel):
    segment: int
    phase: str
    minutes: float = Field(description="simulated/lab minutes since the run's first event")
    yield_percent: float | None
    status: str


class ScaleUpData(BaseModel):
    scale_up: bool = Field(description="whether this campaign is a scale-up run")
    report: dict[str, Any] | None
    checks: list[ScaleUpCheck]
    phases: list[dict[str, Any]]
    drift: list[dict[str, Any]]


def _campaign_text(ctx: WebContext, campaign_id: int) -> tuple[str, dict[str, Any]]:
    with ctx.database.session() as session:
        row = session.get(Campaign, campaign_id)
        if row is None:
            raise HTTPException(404, f"no campaign {campaign_id}")
        return row.protocol_text, dict(row.summary or {})


@router.post(
    "/campaigns/{campaign_id}/scale-up", response_model=ScaleUpCreated, status_code=201,
    responses={404: {"model": schemas.Message}, 409: {"model": schemas.Message},
               422: {"model": schemas.Problem}, **BUSY},
)  # fmt: skip
async def create_scale_up(
    campaign_id: CampaignId, body: ScaleUpRequest, ctx: Ctx, principal: Operator
) -> ScaleUpCreated:
    """A scale-up campaign (status created) for ``amount`` of product at the campaign's best
    conditions; start it like any campaign. Protocol errors come back with line numbers."""
    from robochem.protocols.errors import ProtocolError
    from robochem.protocols.load import parse_protocol
    from robochem.protocols.runtime.scaleup import choose_experiment
    from robochem.protocols.scaleup import scale_up_protocol_text
    from robochem.protocols.units import UnitError, parse_quantity
    from robochem.web.lab import ProtocolInvalidError, ProtocolIssue

    engine = ctx.campaigns
    platform = getattr(getattr(engine, "lab", None), "platform", None)
    if engine is None or platform is None:
        raise HTTPException(409, "no campaign engine with a platform attached")
    try:
        amount = parse_quantity(body.amount, "amount")
    except UnitError as exc:
        raise HTTPException(422, str(exc)) from None
    if not amount > 0:
        raise HTTPException(422, f"{body.amount!r}: the amount must be more than 0 mmol")
    await run_in_threadpool(_campaign_text, ctx, campaign_id)  # 404 first

    def write() -> str:
        chosen = choose_experiment(ctx.database, campaign_id, body.objective)
        return scale_up_protocol_text(
            chosen, amount, platform, objective=body.objective, on_drift=body.on_drift
        )

    try:
        text = await run_in_threadpool(write)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    try:  # a full check against the platform: CPU work, kept off the event loop
        await run_in_threadpool(parse_protocol, text, "<scale-up>", platform)
    except ProtocolError as exc:
        issues = [ProtocolIssue(i.message, i.line, i.column, i.path or None) for i in exc.issues]
        raise ProtocolInvalidError(issues) from None
    new_id = await engine.create(text, created_by=principal.name)
    return ScaleUpCreated(id=new_id, protocol_yaml=text)


@router.get(
    "/campaigns/{campaign_id}/scale-up", response_model=ScaleUpData,
    responses={404: {"model": schemas.Message}},
)  # fmt: skip
def scale_up_data(campaign_id: CampaignId, ctx: Ctx, _: Viewer) -> ScaleUpData:
    """The run's report (collected volume, product from the NMR data, productivity,
    space-time yield) and every NMR check with its phase, for the yield-over-time plot."""
    from robochem.protocols.errors import ProtocolError
    from robochem.protocols.scaleup import scale_up_report
    from robochem.protocols.source import yaml_data

    text, summary = _campaign_text(ctx, campaign_id)
    try:
        document = yaml_data(text, f"campaign {campaign_id}")
    except ProtocolError:
        document = None
    # A stored protocol need not be a mapping (found by tests/web/test_openapi_fuzz.py).
    is_scale_up = isinstance(document, dict) and isinstance(document.get("scale_up"), dict)
    events = ctx.bus.history(campaign_id=campaign_id, kinds=EVENT_KINDS, limit=100_000)
    start = min((e.payload.get("t_s") for e in events if e.payload.get("t_s")), default=None)
    checks = []
    for event in events:
        if event.kind != "scaleup.check":
            continue
        t = float(event.payload.get("t_s") or 0.0)
        checks.append(
            ScaleUpCheck(
                segment=int(event.payload.get("index", 0)),
                phase=str(event.payload.get("phase", "")),
                minutes=(t - start) / 60.0 if start is not None else 0.0,
                yield_percent=event.payload.get("yield"),
                status=str(event.payload.get("status", "")),
            )
        )
    phases = [dict(e.payload) for e in events if e.kind == "scaleup.phase"]
    drift = [dict(e.payload) for e in events if e.kind == "scaleup.drift"]
    report = scale_up_report(summary) if "scale_up" in summary else None
    return ScaleUpData(
        scale_up=is_scale_up, report=report, checks=checks, phases=phases, drift=drift
    )
