"""The dashboard application factory.

    app = create_app(database, bus, lab=lab, campaigns=engine, platform="lab-1")
    await make_server(app, host=settings.host, port=settings.port).serve()

Everything the app holds lives on ``app.state`` (no module globals), so tests and a
process serving two databases can build as many apps as they like.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import jinja2
from argon2 import PasswordHasher
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from robochem import __version__
from robochem.drivers.errors import DeviceError, SetpointRejected
from robochem.events import EventBus
from robochem.settings import Settings, get_settings
from robochem.storage.db import Database, StorageError
from robochem.web import api, data, pages, scaleup, virtual_lab
from robochem.web.auth import Auth, load_or_create_secret
from robochem.web.checker import CheckerBusyError
from robochem.web.context import WebContext
from robochem.web.lab import (
    CampaignController,
    CommandRejectedError,
    ControlError,
    LabController,
    ProtocolInvalidError,
    UnknownCampaignError,
    UnknownDeviceError,
)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Pages load scripts and data only from this origin (Plotly.js is served locally).
# Plotly injects <style> elements at run time, hence 'unsafe-inline' for styles only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)


def plotly_js() -> Path | None:
    """plotly.min.js shipped inside the installed plotly package (no CDN: labs are offline)."""
    try:
        path = Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


class SecurityHeaders:
    """Plain ASGI middleware (cheap on the hot /api/status path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"content-security-policy", CSP.encode()),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def max_body_bytes(settings: Settings) -> int:
    """The largest request body: room for a YAML text of max_yaml_bytes in a JSON string
    (escaping at most triples it) plus the other fields. Larger bodies answer 413 on their
    Content-Length, or as soon as the streamed bytes pass the limit, before being buffered."""
    return 3 * settings.max_yaml_bytes + 64 * 1024


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


def _encodable(value: Any) -> Any:
    """``value`` with every text made encodable as UTF-8 (lone surrogates become "?")."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    return value


def _install_error_handlers(app: FastAPI) -> None:
    async def not_found(_: Request, exc: Exception) -> Response:
        return _error(404, str(exc.args[0]) if exc.args else "not found")

    async def rejected(_: Request, exc: Exception) -> Response:
        return _error(422, str(exc))

    async def conflict(_: Request, exc: Exception) -> Response:
        return _error(409, str(exc))

    async def invalid_protocol(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProtocolInvalidError)
        issues = [
            {"message": i.message, "line": i.line, "column": i.column, "path": i.path}
            for i in exc.issues
        ]
        return _error(422, "the protocol has errors", valid=False, issues=issues)

    for kind in (UnknownDeviceError, UnknownCampaignError, data.NotFoundError):
        app.add_exception_handler(kind, not_found)
    for kind in (SetpointRejected, CommandRejectedError):
        app.add_exception_handler(kind, rejected)
    for kind in (DeviceError, ControlError):
        app.add_exception_handler(kind, conflict)
    async def invalid_request(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # The errors echo the input, which may hold a lone surrogate (JSON "\udc80"): not
        # encodable as UTF-8, it would turn this 422 into a 500. Such characters become "?".
        detail = _encodable(jsonable_encoder(exc.errors()))
        return JSONResponse({"detail": detail}, status_code=422)

    async def busy(_: Request, exc: Exception) -> Response:
        response = _error(429, str(exc))
        response.headers["Retry-After"] = "1"
        return response

    async def storage_failed(_: Request, exc: Exception) -> Response:
        # The server's own trouble (database deleted, full, unreachable): 503 with the one
        # line naming the database, never a traceback.
        return _error(503, str(exc))

    app.add_exception_handler(StorageError, storage_failed)
    app.add_exception_handler(ProtocolInvalidError, invalid_protocol)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(CheckerBusyError, busy)
    app.add_exception_handler(pages.LoginRequired, pages.login_redirect)


def create_app(
    database: Database,
    bus: EventBus,
    *,
    lab: LabController | None = None,
    campaigns: CampaignController | None = None,
    settings: Settings | None = None,
    platform: str | None = None,
    secret_key: bytes | None = None,
    session_max_age_s: int = 12 * 3600,
    device_poll_s: float = 0.1,
    password_hasher: PasswordHasher | None = None,
) -> FastAPI:
    """The dashboard for ``database`` and ``bus``.

    ``lab`` and ``campaigns`` are optional: without them the pages show what the
    database holds and control requests answer 409. ``secret_key`` signs session
    cookies; by default it is kept in ``<data_dir>/dashboard-secret.key`` so sessions
    survive restarts. ``platform`` defaults to ``lab.platform``. ``password_hasher``
    overrides the argon2id parameters (tests use cheap ones).
    """
    settings = settings or get_settings()
    if secret_key is None:
        secret_key = load_or_create_secret(Path(settings.data_dir) / "dashboard-secret.key")
    app = FastAPI(
        title="robochem dashboard",
        version=__version__,
        description=(
            "REST API of the robochem self-driving lab. Authenticate with a session "
            "cookie (browser; send `X-CSRF-Token` on state changes) or "
            "`Authorization: Bearer rc_...` (scripts). Live updates: server-sent events "
            "at `GET /api/events/stream` (see docs/dashboard.md)."
        ),
        docs_url=None,  # the default Swagger UI loads from a CDN; /docs is served locally
        redoc_url=None,
        max_body_size=max_body_bytes(settings),
    )
    auth = Auth(database, secret_key, session_max_age_s=session_max_age_s, hasher=password_hasher)
    app.state.auth = auth
    app.state.ctx = WebContext(
        database=database,
        auth=auth,
        bus=bus,
        lab=lab,
        campaigns=campaigns,
        platform=platform or (getattr(lab, "platform", None) if lab else None),
        device_poll_s=device_poll_s,
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    app.state.templates = Jinja2Templates(env=env)

    vendor = plotly_js()

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> Response:
        if vendor is None:
            raise HTTPException(404, "plotly is not installed")
        return FileResponse(
            vendor, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api.router)
    app.include_router(scaleup.router)
    app.include_router(virtual_lab.router)
    app.include_router(pages.router)
    _install_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    return app


def make_server(app: FastAPI, *, host: str, port: int, log_level: str = "info") -> Any:
    """A uvicorn server for ``app``; ``await server.serve()`` beside the engine in one event
    loop (the event bus is in-process). Open event streams never end by themselves, so
    shutdown waits at most 3 s for them."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=3,
        proxy_headers=False,  # no proxy is trusted unless configured on purpose
    )
    return uvicorn.Server(config)


def issue_login_link(app: FastAPI, user_name: str, *, ttl_s: float = 600.0) -> str:
    """A one-time login path (``/login/one-time/...``) for ``user_name``, as `robochem
    demo` prints it; valid once, for ``ttl_s`` seconds, in this process."""
    from sqlalchemy import select

    from robochem.storage.models import User

    ctx: WebContext = app.state.ctx
    with ctx.database.session() as session:
        user = session.scalar(select(User).where(User.name == user_name))
        if user is None or user.disabled:
            raise LookupError(f"no enabled user named {user_name!r}")
        user_id = user.id
    return f"/login/one-time/{ctx.auth.links.issue(user_id, ttl_s)}"
