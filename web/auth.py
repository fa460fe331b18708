"""Users, passwords, sessions, CSRF, API tokens and one-time login links.

- Passwords: argon2id (argon2-cffi defaults: RFC 9106 low-memory profile, 64 MiB).
- Sessions: a signed cookie (HMAC-SHA256 over a small JSON payload: user id, expiry,
  CSRF token, a fingerprint of the password hash) — HttpOnly, SameSite=Lax, Secure on
  https. No server-side table: changing a user's password, role or disabling them takes
  effect on the next request because the user row is read every time; logging out
  deletes the cookie.
- CSRF: every POST/PUT/PATCH/DELETE authenticated by the session cookie must carry the
  session's CSRF token in ``X-CSRF-Token`` (or a ``csrf_token`` form field). Requests with
  ``Authorization: Bearer`` are exempt: browsers never add that header by themselves.
- API tokens: ``rc_`` + 32 random bytes; only their sha256 is stored.
- One-time login links: a random token held (hashed) in memory by this process, valid
  once for a few minutes, exchanged for a session at ``/login/one-time/{token}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from robochem.storage.db import Database
from robochem.storage.models import ApiToken, Role, User

SESSION_COOKIE = "rc_session"
LOGIN_CSRF_COOKIE = "rc_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_PREFIX = "rc_"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")
MIN_PASSWORD = 8

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
_dummy_hashes: dict[int, str] = {}


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    return (hasher or _hasher).hash(password)


def verify_password(
    password_hash: str, password: str, hasher: PasswordHasher | None = None
) -> bool:
    try:
        return (hasher or _hasher).verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _dummy_hash(hasher: PasswordHasher) -> str:
    # Verified against when the user does not exist, so both cases cost the same time.
    if id(hasher) not in _dummy_hashes:
        _dummy_hashes[id(hasher)] = hasher.hash(secrets.token_hex(16))
    return _dummy_hashes[id(hasher)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- users -----------------------------------------------------------------------------


class UserError(ValueError):
    """A user operation refused: bad name, weak password, duplicate, unknown user."""


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise UserError(f"unknown role {role!r}: use one of {allowed}") from None


def create_user(
    session: Session,
    name: str,
    role: str,
    password: str,
    *,
    hasher: PasswordHasher | None = None,
) -> User:
    if not USER_NAME.match(name):
        raise UserError(f"user name {name!r}: 1-100 letters, digits or _ . @ -")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password too short: at least {MIN_PASSWORD} characters")
    checked = check_role(role)
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise UserError(f"user {name!r} already exists")
    user = User(name=name, role=checked.value, password_hash=hash_password(password, hasher))
    session.add(user)
    session.flush()
    return user


def ensure_user(session: Session, name: str, role: str) -> User:
    """The user ``name``, created with ``role`` and an unguessable password if missing (for
    `robochem demo`, whose users log in through one-time links)."""
    user = session.scalar(select(User).where(User.name == name))
    return user or create_user(session, name, role, secrets.token_urlsafe(32))


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserError(f"no user named {name!r}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def authenticate(
    session: Session, name: str, password: str, *, hasher: PasswordHasher | None = None
) -> User | None:
    """The enabled user with this name and password, else None (same cost either way)."""
    hasher = hasher or _hasher
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        verify_password(_dummy_hash(hasher), password, hasher)
        return None
    if not verify_password(user.password_hash, password, hasher) or user.disabled:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        # Stronger parameters since the hash was made: upgrade it while we know the password.
        user.password_hash = hash_password(password, hasher)
    return user


def new_api_token(session: Session, user: User, label: str) -> tuple[ApiToken, str]:
    """A new token for ``user``: the row and the plain token (shown once, never stored)."""
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=label, token_sha256=_sha256(plain))
    session.add(row)
    session.flush()
    return row, plain


# -- signed values -----------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """JSON payloads signed with HMAC-SHA256: ``base64(json).base64(mac)``."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("secret key must be at least 32 bytes")
        self._key = key

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def sign(self, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def load(self, value: str) -> dict[str, Any] | None:
        body, _, mac = value.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            payload = json.loads(_unb64(body))
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None


def load_or_create_secret(path: Path) -> bytes:
    """A persistent signing key (so sessions survive restarts), created mode 0600."""
    if path.is_file():
        key = bytes.fromhex(path.read_text().strip())
        if len(key) >= 32:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key


# -- one-time links ------------------------------------------------------------------


class OneTimeLinks:
    """Login tokens valid once, for ``ttl_s`` seconds, in this process only."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def issue(self, user_id: int, ttl_s: float = 600.0) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._pending = {k: v for k, v in self._pending.items() if v[1] > now}
            self._pending[_sha256(token)] = (user_id, now + ttl_s)
        return token

    def redeem(self, token: str) -> int | None:
        with self._lock:
            entry = self._pending.pop(_sha256(token), None)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]


# -- principals ------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    user_id: int
    name: str
    role: Role
    via: str  # "session" or "token"
    csrf: str | None = None  # only for sessions

    def can(self, role: Role | str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[Role(role)]


_SESSION_USER = select(User.id, User.name, User.role, User.disabled, User.password_hash).where(
    User.id == bindparam("user_id")
)


def _password_fingerprint(password_hash: str) -> str:
    # Changing the password changes this, which ends every older session.
    return _sha256(password_hash)[:16]


class Auth:
    """Per-app authentication state: signing key, one-time links, token lookups."""

    TOKEN_CACHE_S = 10.0  # a revoked token may work this long in *other* processes
    TOKEN_TOUCH_S = 60.0  # last_used_at is written at most this often per token

    def __init__(
        self,
        database: Database,
        secret_key: bytes,
        *,
        session_max_age_s: int = 12 * 3600,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.database = database
        self.hasher = hasher or _hasher
        self.signer = Signer(secret_key)
        self.links = OneTimeLinks()
        self.session_max_age_s = session_max_age_s
        self._token_cache: dict[str, tuple[Principal | None, float]] = {}
        self._touched: dict[str, float] = {}
        self._failures: dict[str, list[float]] = {}

    # sessions
    def session_cookie(self, user: User) -> str:
        return self.signer.sign(
            {
                "u": user.id,
                "e": int(time.time()) + self.session_max_age_s,
                "c": secrets.token_urlsafe(24),
                "p": _password_fingerprint(user.password_hash),
            }
        )

    def session_principal(self, cookie: str) -> Principal | None:
        payload = self.signer.load(cookie)
        if not payload or not isinstance(payload.get("e"), int) or payload["e"] < time.time():
            return None
        user_id = payload.get("u")
        if not isinstance(user_id, int):
            return None
        # Read on every request (a disabled user or a new password takes effect at once),
        # so with a plain connection: an ORM session costs ~5x more per request.
        with self.database.engine.connect() as connection:
            user = connection.execute(_SESSION_USER, {"user_id": user_id}).first()
        if user is None or user.disabled:
            return None
        if payload.get("p") != _password_fingerprint(user.password_hash):
            return None
        return Principal(user.id, user.name, Role(user.role), "session", str(payload["c"]))

    # tokens
    def cached_token_principal(self, token: str) -> tuple[bool, Principal | None]:
        """(hit, principal) from the short-lived cache, without touching the database."""
        cached = self._token_cache.get(_sha256(token))
        if cached is not None and cached[1] > time.monotonic():
            return True, cached[0]
        return False, None

    def token_principal(self, token: str) -> Principal | None:
        digest = _sha256(token)
        now = time.monotonic()
        cached = self._token_cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        principal = None
        with self.database.session() as session:
            row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest))
            if row is not None and not row.revoked and not row.user.disabled:
                user = row.user
                principal = Principal(user.id, user.name, Role(user.role), "token")
                if self._touched.get(digest, 0.0) < now - self.TOKEN_TOUCH_S:
                    row.last_used_at = _now()
                    self._touched[digest] = now
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[digest] = (principal, now + self.TOKEN_CACHE_S)
        return principal

    # login throttle: argon2 already costs ~0.1-0.5 s per guess; this caps guesses per name
    LOGIN_WINDOW_S = 300.0
    LOGIN_MAX_FAILURES = 10

    def login_blocked(self, name: str) -> bool:
        """Too many recent failed logins for ``name`` (per process, in memory)."""
        now = time.monotonic()
        recent = [t for t in self._failures.get(name, []) if t > now - self.LOGIN_WINDOW_S]
        self._failures[name] = recent
        return len(recent) >= self.LOGIN_MAX_FAILURES

    def login_failed(self, name: str) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()
        self._failures.setdefault(name, []).append(time.monotonic())

    def login_succeeded(self, name: str) -> None:
        self._failures.pop(name, None)

    def forget_tokens(self) -> None:
        """Drop cached lookups (after a revocation in this process)."""
        self._token_cache.clear()


def get_auth(request: Request) -> Auth:
    return request.app.state.auth


bearer_scheme = HTTPBearer(auto_error=False, description="An API token: `rc_...`")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal | None:
    """The caller, from a Bearer token or the session cookie; None if anonymous."""
    if hasattr(request.state, "principal"):
        return request.state.principal
    auth = get_auth(request)
    principal: Principal | None = None
    if credentials is not None:
        hit, principal = auth.cached_token_principal(credentials.credentials)
        if not hit:  # the lookup hits the database: keep it off the event loop
            principal = await run_in_threadpool(auth.token_principal, credentials.credentials)
        if principal is None:
            raise HTTPException(
                401, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"}
            )
    elif cookie := request.cookies.get(SESSION_COOKIE):
        principal = await run_in_threadpool(auth.session_principal, cookie)
    request.state.principal = principal
    return principal


async def check_csrf(request: Request, principal: Principal) -> None:
    if principal.via != "session" or request.method not in UNSAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not principal.csrf or not hmac.compare_digest(sent, principal.csrf):
        raise HTTPException(403, "missing or wrong CSRF token (send the X-CSRF-Token header)")


def require_role(role: Role | str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller must be logged in with at least ``role`` (and pass CSRF)."""
    needed = Role(role)

    async def dependency(
        request: Request, principal: Annotated[Principal | None, Depends(current_principal)]
    ) -> Principal:
        if principal is None:
            raise HTTPException(
                401, "log in or send an API token", headers={"WWW-Authenticate": "Bearer"}
            )
        if not principal.can(needed):
            raise HTTPException(403, f"needs the {needed.value} role (you are {principal.role})")
        await check_csrf(request, principal)
        return principal

    dependency.__name__ = f"require_{needed.value}"
    return dependency


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (open redirects) becomes '/'."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
