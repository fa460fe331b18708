"""The REST API under /api. Routes are thin: they read through ``data`` or call the lab
and campaign controllers. Reads need the viewer role, lab and campaign commands the
operator role, user management the admin role."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from robochem.protocols.measures import Goal
from robochem.storage.models import ApiToken, Role, User
from robochem.web import auth, data, schemas
from robochem.web.auth import Principal, require_role
from robochem.web.context import WebContext, get_ctx
from robochem.web.lab import (
    CampaignController,
    DeviceState,
    LabController,
    ProtocolIssue,
)
from robochem.web.sse import event_stream

STATUS_TTL_S = 1.0
NO_LAB = "no lab attached: this dashboard is not connected to any devices"
NO_ENGINE = "no campaign engine attached: campaigns can be viewed but not created or controlled"

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.Message, "description": "Unparseable request body"},
    401: {"model": schemas.Message, "description": "Not logged in / no valid token"},
    403: {"model": schemas.Message, "description": "Role too low, or CSRF token missing"},
    413: {"description": "Request body over the size limit (3 x max_yaml_bytes + 64 kB)"},
    422: {"model": schemas.Problem, "description": "Invalid request or refused setpoint"},
}
BUSY: dict[int | str, dict[str, Any]] = {
    429: {"model": schemas.Message, "description": "Every protocol checker is busy; retry"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": schemas.Message}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": schemas.Message, "description": "Refused in the present state"}
}

router = APIRouter(prefix="/api", responses=ERRORS)
Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
Ctx = Annotated[WebContext, Depends(get_ctx)]
CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ExperimentId = Annotated[int, Path(ge=1, le=2**31 - 1)]
DeviceName = Annotated[str, Path(min_length=1, max_length=200)]


def _not_found(error: LookupError) -> HTTPException:
    return HTTPException(404, str(error.args[0]) if error.args else "not found")


def _lab(ctx: WebContext) -> LabController:
    if ctx.lab is None:
        raise HTTPException(409, NO_LAB)
    return ctx.lab


def _engine(ctx: WebContext) -> CampaignController:
    if ctx.campaigns is None:
        raise HTTPException(409, NO_ENGINE)
    return ctx.campaigns


def device_out(d: DeviceState) -> schemas.Device:
    return schemas.Device(
        name=d.name,
        driver=d.driver,
        kind=d.kind,
        connected=d.connected,
        readings=dict(d.readings),
        faults=list(d.faults),
        controls=list(d.controls),
        positions=[str(p) for p in d.positions],
        limits=dict(d.limits),
        updated_at=d.updated_at,
    )


# -- status and devices ------------------------------------------------------------------


@router.get("/me", response_model=schemas.Me, tags=["auth"])
def me(principal: Viewer) -> schemas.Me:
    return schemas.Me(name=principal.name, role=principal.role, via=principal.via)


@router.get("/status", response_model=schemas.Status, tags=["lab"])
async def status(ctx: Ctx, _: Viewer) -> schemas.Status:
    """Platform and campaigns at a glance; cheap enough to poll (campaign counts may be
    up to a second old)."""
    cached = ctx.status_cache
    now = time.monotonic()
    if cached is None or cached[0] < now:
        counts, active = await run_in_threadpool(data.status, ctx.database)
        ctx.status_cache = cached = (now + STATUS_TTL_S, counts, active)
    _, counts, active = cached
    return schemas.Status(
        platform=ctx.platform,
        lab_attached=ctx.lab is not None,
        engine_attached=ctx.campaigns is not None,
        time=dt.datetime.now(dt.UTC),
        campaigns=counts,
        active=active,
    )


@router.get("/devices", response_model=list[schemas.Device], tags=["lab"])
def devices(ctx: Ctx, _: Viewer) -> list[schemas.Device]:
    """Every device with its latest readings, connection and faults (empty without a lab)."""
    return [device_out(d) for d in ctx.lab.devices()] if ctx.lab else []


def _known(lab: LabController, name: str) -> None:
    if name not in {d.name for d in lab.devices()}:
        raise HTTPException(404, f"no device named {name!r}")


COMMAND_ERRORS = {**NOT_FOUND, **CONFLICT}


@router.post(
    "/devices/{name}/flow", response_model=schemas.CommandResult, responses=COMMAND_ERRORS,
    tags=["lab"],
)  # fmt: skip
async def set_flow(
    name: DeviceName, body: schemas.FlowCommand, ctx: Ctx, _: Operator
) -> schemas.CommandResult:
    lab = _lab(ctx)
    _known(lab, name)
    await lab.set_flow(name, body.ml_min)
    return schemas.CommandResult(detail=f"{name}: flow set to {body.ml_min:g} mL/min")


@router.post(
    "/devices/{name}/light", response_model=schemas.CommandResult, responses=COMMAND_ERRORS,
    tags=["lab"],
)  # fmt: skip
async def set_light(
    name: DeviceName, body: schemas.LightCommand, ctx: Ctx, _: Operator
) -> schemas.CommandResult:
    lab = _lab(ctx)
    _known(lab, name)
    await lab.set_light(name, body.percent)
    return schemas.CommandResult(detail=f"{name}: light set to {body.percent:g} %")


@router.post(
    "/devices/{name}/temperature", response_model=schemas.CommandResult,
    responses=COMMAND_ERRORS, tags=["lab"],
)  # fmt: skip
async def set_temperature(
    name: DeviceName, body: schemas.TemperatureCommand, ctx: Ctx, _: Operator
) -> schemas.CommandResult:
    lab = _lab(ctx)
    _known(lab, name)
    await lab.set_temperature(name, body.celsius)
    return schemas.CommandResult(detail=f"{name}: temperature set to {body.celsius:g} °C")


@router.post(
    "/devices/{name}/valve", response_model=schemas.CommandResult, responses=COMMAND_ERRORS,
    tags=["lab"],
)  # fmt: skip
async def set_valve(
    name: DeviceName, body: schemas.ValveCommand, ctx: Ctx, _: Operator
) -> schemas.CommandResult:
    lab = _lab(ctx)
    _known(lab, name)
    await lab.set_valve(name, body.position)
    return schemas.CommandResult(detail=f"{name}: valve moved to {body.position}")


@router.post(
    "/emergency-stop", response_model=schemas.CommandResult, responses=CONFLICT, tags=["lab"]
)
async def emergency_stop(ctx: Ctx, principal: Operator) -> schemas.CommandResult:
    """Stop all pumps, lights and heaters and pause running campaigns."""
    lab = _lab(ctx)
    await lab.emergency_stop()
    await ctx.bus.publish("web", "emergency_stop", {"by": principal.name})
    return schemas.CommandResult(detail="emergency stop sent to every device")


# -- campaigns -------------------------------------------------------------------------


@router.get("/campaigns", response_model=list[schemas.CampaignSummary], tags=["campaigns"])
def list_campaigns(ctx: Ctx, _: Viewer) -> list[schemas.CampaignSummary]:
    return data.campaigns(ctx.database)


def _issues(issues: list[ProtocolIssue]) -> list[schemas.Issue]:
    return [
        schemas.Issue(message=i.message, line=i.line, column=i.column, path=i.path) for i in issues
    ]


@router.post(
    "/campaigns", response_model=schemas.Created, status_code=201,
    responses={**CONFLICT, **BUSY}, tags=["campaigns"],
)  # fmt: skip
async def create_campaign(
    body: schemas.NewCampaign, ctx: Ctx, principal: Operator
) -> schemas.Created:
    """Create a campaign from protocol YAML (errors come back with their line numbers)."""
    engine = _engine(ctx)
    return schemas.Created(id=await engine.create(body.protocol_yaml, created_by=principal.name))


@router.post(
    "/protocols/validate", response_model=schemas.Validation, responses={**CONFLICT, **BUSY},
    tags=["campaigns"],
)  # fmt: skip
def validate_protocol(body: schemas.ProtocolText, ctx: Ctx, _: Operator) -> schemas.Validation:
    """Check protocol YAML against this platform: 200 with ``valid`` and every issue at its
    line, however malformed the text (a plain ``def``: FastAPI runs it in a worker thread,
    and the engine's ``validate`` checks in a separate process bounded in time)."""
    issues = _issues(_engine(ctx).validate(body.protocol_yaml))
    return schemas.Validation(valid=not issues, issues=issues)


def packaged_examples() -> list[schemas.Example]:
    """Shipped example protocols, read from robochem.protocols/examples."""
    import robochem.protocols

    folder = FilePath(robochem.protocols.__file__).parent / "examples"
    out = []
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.strip()), "")
        out.append(schemas.Example(name=path.stem, title=title or path.stem, text=text))
    return out


@router.get("/protocols/examples", response_model=list[schemas.Example], tags=["campaigns"])
def examples(ctx: Ctx, _: Viewer) -> list[schemas.Example]:
    if ctx.campaigns is not None:
        return [
            schemas.Example(name=e.name, title=e.title, text=e.text)
            for e in ctx.campaigns.examples()
        ]
    return packaged_examples()


@router.get(
    "/campaigns/{campaign_id}", response_model=schemas.CampaignDetail, responses=NOT_FOUND,
    tags=["campaigns"],
)  # fmt: skip
def get_campaign(campaign_id: CampaignId, ctx: Ctx, _: Viewer) -> schemas.CampaignDetail:
    progress = ctx.campaigns.progress(campaign_id) if ctx.campaigns else None
    try:
        return data.campaign(ctx.database, campaign_id, progress)
    except data.NotFoundError as error:
        raise _not_found(error) from None


class BestValue(BaseModel):
    """The best value of one objective: under its goal, among the done experiments' latest
    measurements that quality control did not reject."""

    objective: str
    measure: str
    goal: Goal
    value: float | None = Field(description="None until a usable measurement exists")
    experiment_id: int | None
    experiment_index: int | None


class BestResults(BaseModel):
    campaign_id: int
    experiments_done: int
    objectives: list[BestValue] = Field(description="One per objective, in protocol order.")
    problem: str | None = Field(
        description="Why the stored protocol's objectives could not be read (then no values)."
    )


@router.get(
    "/campaigns/{campaign_id}/best", response_model=BestResults, responses=NOT_FOUND,
    tags=["campaigns"],
)  # fmt: skip
def get_best(campaign_id: CampaignId, ctx: Ctx, _: Viewer) -> BestResults:
    """The campaign's best result: each objective's best value under its goal (maximise or
    minimise), and the experiment that gave it (robochem.storage.results, as the CLI)."""
    try:
        found = data.best(ctx.database, campaign_id)
    except data.NotFoundError as error:
        raise _not_found(error) from None
    return BestResults(
        campaign_id=found.campaign_id,
        experiments_done=found.experiments_done,
        objectives=[BestValue(**asdict(b)) for b in found.objectives.values()],
        problem=found.problem,
    )


def _exists(ctx: WebContext, campaign_id: int) -> None:
    try:
        data.protocol(ctx.database, campaign_id)
    except data.NotFoundError as error:
        raise _not_found(error) from None


CONTROL = {**NOT_FOUND, **CONFLICT}


@router.post(
    "/campaigns/{campaign_id}/start", response_model=schemas.CommandResult, responses=CONTROL,
    tags=["campaigns"],
)  # fmt: skip
async def start_campaign(campaign_id: CampaignId, ctx: Ctx, _: Operator) -> schemas.CommandResult:
    engine = _engine(ctx)
    _exists(ctx, campaign_id)
    await engine.start(campaign_id)
    return schemas.CommandResult(detail=f"campaign {campaign_id} starting")


@router.post(
    "/campaigns/{campaign_id}/pause", response_model=schemas.CommandResult, responses=CONTROL,
    tags=["campaigns"],
)  # fmt: skip
async def pause_campaign(campaign_id: CampaignId, ctx: Ctx, _: Operator) -> schemas.CommandResult:
    engine = _engine(ctx)
    _exists(ctx, campaign_id)
    await engine.pause(campaign_id)
    return schemas.CommandResult(detail=f"campaign {campaign_id} pausing")


@router.post(
    "/campaigns/{campaign_id}/resume", response_model=schemas.CommandResult, responses=CONTROL,
    tags=["campaigns"],
)  # fmt: skip
async def resume_campaign(campaign_id: CampaignId, ctx: Ctx, _: Operator) -> schemas.CommandResult:
    engine = _engine(ctx)
    _exists(ctx, campaign_id)
    await engine.resume(campaign_id)
    return schemas.CommandResult(detail=f"campaign {campaign_id} resuming")


@router.post(
    "/campaigns/{campaign_id}/abort", response_model=schemas.CommandResult, responses=CONTROL,
    tags=["campaigns"],
)  # fmt: skip
async def abort_campaign(
    campaign_id: CampaignId, ctx: Ctx, principal: Operator, body: schemas.AbortRequest | None = None
) -> schemas.CommandResult:
    engine = _engine(ctx)
    _exists(ctx, campaign_id)
    reason = (body or schemas.AbortRequest()).reason
    await engine.abort(campaign_id, f"{reason} (by {principal.name})")
    return schemas.CommandResult(detail=f"campaign {campaign_id} aborting")


@router.get(
    "/campaigns/{campaign_id}/experiments", response_model=list[schemas.ExperimentRow],
    responses=NOT_FOUND, tags=["campaigns"],
)  # fmt: skip
def list_experiments(campaign_id: CampaignId, ctx: Ctx, _: Viewer) -> list[schemas.ExperimentRow]:
    try:
        return data.experiments(ctx.database, campaign_id)
    except data.NotFoundError as error:
        raise _not_found(error) from None


@router.get(
    "/campaigns/{campaign_id}/events", response_model=list[schemas.EventOut],
    responses=NOT_FOUND, tags=["campaigns"],
)  # fmt: skip
def campaign_events(
    campaign_id: CampaignId,
    ctx: Ctx,
    _: Viewer,
    after: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="Only events with a larger id")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="The most recent this many")] = 200,
) -> list[schemas.EventOut]:
    try:
        return data.events(ctx.database, campaign_id, after_id=after, limit=limit)
    except data.NotFoundError as error:
        raise _not_found(error) from None


def _filename(name: str, suffix: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80] or "campaign"
    return f"{stem}{suffix}"


@router.get(
    "/campaigns/{campaign_id}/export.csv", response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"text/csv": {}}}}, tags=["campaigns"],
)  # fmt: skip
def export_csv(campaign_id: CampaignId, ctx: Ctx, _: Viewer) -> Response:
    """One row per experiment: conditions and measures."""
    try:
        name, _text = data.protocol(ctx.database, campaign_id)
        body = data.export_csv(ctx.database, campaign_id)
    except data.NotFoundError as error:
        raise _not_found(error) from None
    disposition = f'attachment; filename="{_filename(f"{campaign_id}-{name}", ".csv")}"'
    return Response(body, media_type="text/csv", headers={"Content-Disposition": disposition})


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/campaigns/{campaign_id}/export.xlsx", response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {XLSX: {}}}}, tags=["campaigns"],
)  # fmt: skip
def export_xlsx(campaign_id: CampaignId, ctx: Ctx, _: Viewer) -> Response:
    try:
        name, _text = data.protocol(ctx.database, campaign_id)
        body = data.export_xlsx(ctx.database, campaign_id)
    except data.NotFoundError as error:
        raise _not_found(error) from None
    disposition = f'attachment; filename="{_filename(f"{campaign_id}-{name}", ".xlsx")}"'
    return Response(body, media_type=XLSX, headers={"Content-Disposition": disposition})


@router.get(
    "/campaigns/{campaign_id}/protocol", response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"application/yaml": {}}}}, tags=["campaigns"],
)  # fmt: skip
def download_protocol(campaign_id: CampaignId, ctx: Ctx, _: Viewer) -> Response:
    """The protocol YAML exactly as the campaign stored it."""
    try:
        name, text = data.protocol(ctx.database, campaign_id)
    except data.NotFoundError as error:
        raise _not_found(error) from None
    disposition = f'attachment; filename="{_filename(f"{campaign_id}-{name}", ".yaml")}"'
    return Response(
        text, media_type="application/yaml", headers={"Content-Disposition": disposition}
    )


@router.get(
    "/experiments/{experiment_id}", response_model=schemas.ExperimentDetail,
    responses=NOT_FOUND, tags=["campaigns"],
)  # fmt: skip
def get_experiment(experiment_id: ExperimentId, ctx: Ctx, _: Viewer) -> schemas.ExperimentDetail:
    try:
        return data.experiment(ctx.database, experiment_id)
    except data.NotFoundError as error:
        raise _not_found(error) from None


@router.get(
    "/experiments/{experiment_id}/spectrum", response_model=schemas.Spectrum,
    responses=NOT_FOUND, tags=["campaigns"],
)  # fmt: skip
def get_spectrum(experiment_id: ExperimentId, ctx: Ctx, _: Viewer) -> schemas.Spectrum:
    """The processed NMR spectrum (decimated) with integration regions and their numbers."""
    try:
        return data.spectrum(ctx.database, experiment_id)
    except data.NotFoundError as error:
        raise _not_found(error) from None


# -- live events -------------------------------------------------------------------------


@router.get("/events/stream", response_class=StreamingResponse, include_in_schema=False)
async def stream_events(
    ctx: Ctx,
    _: Viewer,
    after: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    campaign_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    devices: bool = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events (kept out of the OpenAPI schema: it never ends).

    Resumes after ``Last-Event-ID`` (sent by a reconnecting browser) or ``after``; with
    neither, only events from now on. ``devices=true`` adds device snapshots.
    """
    start = after
    if last_event_id and last_event_id.strip().isdigit() and len(last_event_id.strip()) < 10:
        start = int(last_event_id.strip())
    if start is None:
        start = await run_in_threadpool(data.latest_event_id, ctx.database)
    return StreamingResponse(
        event_stream(ctx, after_id=start, campaign_id=campaign_id, devices=devices),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- users and tokens --------------------------------------------------------------------


def _user_out(u: User) -> schemas.UserOut:
    return schemas.UserOut(
        id=u.id, name=u.name, role=u.role, disabled=u.disabled, created_at=u.created_at
    )


@router.get("/users", response_model=list[schemas.UserOut], tags=["users"])
def list_users(ctx: Ctx, _: Admin) -> list[schemas.UserOut]:
    with ctx.database.session() as session:
        return [_user_out(u) for u in auth.list_users(session)]


@router.post(
    "/users", response_model=schemas.UserOut, status_code=201, responses=CONFLICT,
    tags=["users"],
)  # fmt: skip
def add_user(body: schemas.NewUser, ctx: Ctx, _: Admin) -> schemas.UserOut:
    with ctx.database.session() as session:
        if session.scalar(select(User).where(User.name == body.name)) is not None:
            raise HTTPException(409, f"user {body.name!r} already exists")
        try:
            user = auth.create_user(
                session, body.name, body.role, body.password, hasher=ctx.auth.hasher
            )
            return _user_out(user)
        except auth.UserError as error:
            raise HTTPException(422, str(error)) from None


@router.patch(
    "/users/{name}", response_model=schemas.UserOut, responses={**NOT_FOUND, **CONFLICT},
    tags=["users"],
)  # fmt: skip
def change_user(
    name: Annotated[str, Path(pattern=schemas.NAME)], body: schemas.UserChange, ctx: Ctx, _: Admin
) -> schemas.UserOut:
    """Change a role, disable or enable, or set a new password (ends the user's sessions)."""
    with ctx.database.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise HTTPException(404, f"no user named {name!r}")
        if body.role is not None:
            user.role = body.role
        if body.disabled is not None:
            user.disabled = body.disabled
        if body.password is not None:
            user.password_hash = auth.hash_password(body.password, ctx.auth.hasher)
        session.flush()
        admins = session.scalars(
            select(User).where(User.role == Role.ADMIN, User.disabled.is_(False))
        ).all()
        if not admins:
            session.rollback()
            raise HTTPException(409, "refused: that would leave no enabled admin")
        ctx.auth.forget_tokens()
        return _user_out(user)


def _token_out(t: ApiToken) -> schemas.TokenOut:
    return schemas.TokenOut(
        id=t.id, name=t.name, created_at=t.created_at, last_used_at=t.last_used_at,
        revoked=t.revoked,
    )  # fmt: skip


@router.get("/tokens", response_model=list[schemas.TokenOut], tags=["users"])
def list_tokens(ctx: Ctx, principal: Viewer) -> list[schemas.TokenOut]:
    """Your own API tokens (never the secrets: those are shown once, at creation)."""
    with ctx.database.session() as session:
        rows = session.scalars(
            select(ApiToken).where(ApiToken.user_id == principal.user_id).order_by(ApiToken.id)
        )
        return [_token_out(t) for t in rows]


@router.post("/tokens", response_model=schemas.TokenCreated, status_code=201, tags=["users"])
def create_token(body: schemas.NewToken, ctx: Ctx, principal: Operator) -> schemas.TokenCreated:
    """A new API token for yourself: use it as ``Authorization: Bearer rc_...``."""
    with ctx.database.session() as session:
        user = session.get(User, principal.user_id)
        assert user is not None  # the principal was just loaded
        row, plain = auth.new_api_token(session, user, body.name)
        return schemas.TokenCreated(**_token_out(row).model_dump(), token=plain)


@router.delete(
    "/tokens/{token_id}", response_model=schemas.TokenOut, responses=NOT_FOUND, tags=["users"]
)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], ctx: Ctx, principal: Operator
) -> schemas.TokenOut:
    with ctx.database.session() as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.user_id != principal.user_id:
            raise HTTPException(404, f"you have no token {token_id}")
        row.revoked = True
        ctx.auth.forget_tokens()
        return _token_out(row)
