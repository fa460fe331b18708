"""Server-rendered pages. They carry little data themselves: the small scripts in
``static/`` fetch it from the API and follow the event stream."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from robochem import __version__
from robochem.storage.models import Role, User
from robochem.web import auth, data
from robochem.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Principal,
    check_csrf,
    current_principal,
    safe_next,
)
from robochem.web.context import WebContext, get_ctx

router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


async def login_redirect(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    from urllib.parse import quote

    return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)


async def page_user(
    request: Request, principal: Annotated[Principal | None, Depends(current_principal)]
) -> Principal:
    if principal is None:
        raise LoginRequired(request.url.path)
    return principal


User_ = Annotated[Principal, Depends(page_user)]
Ctx = Annotated[WebContext, Depends(get_ctx)]


def render(
    request: Request,
    name: str,
    principal: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    ctx: WebContext = request.app.state.ctx
    base = {
        "me": principal,
        "csrf": principal.csrf if principal and principal.csrf else "",
        "can_operate": bool(principal and principal.can(Role.OPERATOR)),
        "is_admin": bool(principal and principal.can(Role.ADMIN)),
        "platform": ctx.platform,
        "lab_attached": ctx.lab is not None,
        "engine_attached": ctx.campaigns is not None,
        "version": __version__,
        "nav": context.pop("nav", ""),
    }
    return request.app.state.templates.TemplateResponse(
        request, name, {**base, **context}, status_code=status_code
    )


def _set_session(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


# -- login -----------------------------------------------------------------------------


def _login_page(request: Request, next_path: str, error: str | None, status: int) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", None, status_code=status, next=next_path, error=error,
        login_csrf=token,
    )  # fmt: skip
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=1800, httponly=True, samesite="strict", path="/login"
    )
    return response


@router.get("/login")
async def login_form(
    request: Request, principal: Annotated[Principal | None, Depends(current_principal)]
) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if principal is not None:
        return RedirectResponse(next_path, status_code=303)
    return _login_page(request, next_path, None, 200)


@router.post("/login")
async def login(
    request: Request,
    name: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    next_path = safe_next(next)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf_token):
        return _login_page(request, next_path, "The form expired; please try again.", 403)
    a: auth.Auth = request.app.state.auth
    if a.login_blocked(name):
        message = "Too many failed attempts for this name; wait a few minutes."
        return _login_page(request, next_path, message, 429)

    def check() -> User | None:
        with a.database.session() as session:
            return auth.authenticate(session, name, password, hasher=a.hasher)

    # A name that cannot exist never reaches the database (PostgreSQL refuses NUL bytes).
    user = await run_in_threadpool(check) if auth.USER_NAME.match(name) else None
    if user is None:
        a.login_failed(name)
        return _login_page(request, next_path, "Wrong name or password.", 401)
    a.login_succeeded(name)
    response = RedirectResponse(next_path, status_code=303)
    _set_session(response, request, a.session_cookie(user), a.session_max_age_s)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(
    request: Request, principal: Annotated[Principal | None, Depends(current_principal)]
) -> Response:
    if principal is not None:
        await check_csrf(request, principal)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/login/one-time/{token}")
async def one_time_login(request: Request, token: Annotated[str, Path(max_length=200)]) -> Response:
    a: auth.Auth = request.app.state.auth
    user_id = a.links.redeem(token)

    def load() -> User | None:
        with a.database.session() as session:
            user = session.get(User, user_id) if user_id is not None else None
            return None if user is None or user.disabled else user

    user = await run_in_threadpool(load)
    if user is None:
        return render(
            request, "message.html", None, status_code=410, title="Link expired",
            message="This login link was already used or has expired. Ask for a new one.",
        )  # fmt: skip
    response = RedirectResponse("/", status_code=303)
    _set_session(response, request, a.session_cookie(user), a.session_max_age_s)
    return response


# -- pages -----------------------------------------------------------------------------


@router.get("/")
async def home(_: User_) -> Response:
    return RedirectResponse("/lab", status_code=303)


@router.get("/lab")
async def lab_page(request: Request, me: User_) -> Response:
    return render(request, "lab.html", me, nav="lab")


@router.get("/campaigns")
async def campaigns_page(request: Request, me: User_) -> Response:
    return render(request, "campaigns.html", me, nav="campaigns")


@router.get("/campaigns/{campaign_id}")
def campaign_page(
    request: Request, me: User_, ctx: Ctx, campaign_id: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> Response:
    try:
        detail = data.campaign(ctx.database, campaign_id)
    except data.NotFoundError:
        return render(
            request, "message.html", me, status_code=404, nav="campaigns",
            title="No such campaign", message=f"There is no campaign {campaign_id}.",
        )  # fmt: skip
    return render(request, "campaign.html", me, nav="campaigns", campaign=detail)


@router.get("/account")
async def account_page(request: Request, me: User_) -> Response:
    return render(request, "account.html", me, nav="account")


@router.get("/docs")
async def api_docs(request: Request) -> Response:
    """A plain API reference built from the OpenAPI schema (works offline, unlike the
    CDN-hosted Swagger UI). The schema itself is at /openapi.json."""
    schema = request.app.openapi()
    endpoints = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "tag": (op.get("tags") or ["other"])[0],
                    "params": [p["name"] for p in op.get("parameters", [])],
                    "body": body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1],
                    "codes": sorted(op.get("responses", {})),
                }
            )
    return render(request, "docs.html", None, nav="docs", endpoints=endpoints, info=schema["info"])
