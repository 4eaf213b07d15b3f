"""Who may see which schools: the principal a request carries (district or one school).

The API's routes and the status page ask ``visible_schools(request)`` and show only those
schools: a list is filtered to them, and a school, switch, classroom or terminal outside them
answers 404 as an unknown one would. ``AccessMiddleware`` sets the principal from the
request's token (``Authorization: Bearer``) or status-page login (a session cookie); a route
only a district may use depends on ``require_district`` (403 for a school). docs/access.md.

Tokens are looked up by their SHA-256 digest (edumon.tokens says why SHA-256): timing can tell
an attacker at most something about a digest, whose preimage is a 256-bit random token. No
token, session id or digest is ever logged or answered.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from fastapi import HTTPException, Request
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from edumon.config import Config
from edumon.tokens import MAX_TOKEN_LENGTH
from edumon.tokens import digest as token_digest

log = logging.getLogger(__name__)

Role = Literal["district", "school"]

SESSION_COOKIE = "edumon_session"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
WEBHOOK_PATH = "/api/v1/alertmanager/webhook"
OPEN_PATHS = frozenset({"/healthz", "/readyz", LOGIN_PATH, LOGOUT_PATH})
"""Answered without a token: liveness and readiness probes, and the login page itself."""
MAX_SESSIONS = 10_000
"""Logins kept at once; beyond it the least recently used goes (its browser logs in again)."""
REASONS = ("missing", "invalid", "expired", "forbidden")
"""edumon_api_auth_failures_total{reason}: no token; a token or login that matches none; a
status-page login that has ended (or a restart ended it); a school's token on a district route."""
LOG_EVERY_SECONDS = 10.0
"""Refusals are logged at WARNING at most this often per reason (the rest at DEBUG, counted)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: a configured token's name and role, and the schools it sees."""

    name: str
    role: Role
    schools: frozenset[str] | None
    """The school codes it may see; None: every school (the district role)."""


LOOPBACK = Principal("loopback", "district", None)
"""Every request when no token is configured (edumon then listens on loopback only)."""


@dataclass(slots=True)
class _Session:
    principal: Principal
    expires_at: float


def visible_schools(request: HTTPConnection) -> frozenset[str] | None:
    """The school codes this request may see; None means every school (the district role).

    ``request.state.principal`` is set by the access middleware when tokens are configured;
    without tokens (loopback only) every request sees the whole district.
    """
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return None
    schools: frozenset[str] | None = getattr(principal, "schools", None)
    return schools


def principal_of(request: HTTPConnection) -> Principal | None:
    """The request's principal (None on the open paths and the Alertmanager receiver)."""
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else None


def require_district(request: Request) -> None:
    """A dependency for routes only the district may use: 403 for a school's token."""
    if visible_schools(request) is None:
        return
    access = getattr(request.app.state, "access", None)
    if isinstance(access, Access):
        access.refused("forbidden", request.scope)
    raise HTTPException(
        403,
        "此功能仅限区县角色 / only a district role may use this",
    )


class Access:
    """The configured tokens, the status page's logins, and the count of refusals.

    Args:
        tokens: SHA-256 digest of each token -> who it is.
        metrics_token: the /metrics token's digest, or None for an open /metrics.
        receiver_token: whether the Alertmanager receiver checks its own token (then the
            middleware lets its requests through to it).
        session_seconds: how long a login lasts after its last request.
        clock: Unix seconds; tests pass one.
    """

    def __init__(
        self,
        tokens: Mapping[bytes, Principal],
        *,
        metrics_token: bytes | None = None,
        receiver_token: bool = False,
        session_seconds: float = 12 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = dict(tokens)
        self._metrics_token = metrics_token
        self.receiver_token = receiver_token
        self._session_seconds = session_seconds
        self._clock = clock
        # Keyed by the SHA-256 digest of the session id: a memory dump holds no usable cookie.
        self._sessions: OrderedDict[bytes, _Session] = OrderedDict()
        self._failures = dict.fromkeys(REASONS, 0)
        self._logged_at = dict.fromkeys(REASONS, -LOG_EVERY_SECONDS)
        self._unlogged = dict.fromkeys(REASONS, 0)

    @classmethod
    def from_config(cls, config: Config, *, clock: Callable[[], float] = time.monotonic) -> Access:
        """The tokens of ``[[api.tokens]]`` and ``[metrics]``; env tokens are read now."""
        tokens = {t.digest(): Principal(t.name, t.role, t.school_codes) for t in config.api.tokens}
        return cls(
            tokens,
            metrics_token=config.metrics.token_digest(),
            receiver_token=config.notify.receiver_token is not None,
            session_seconds=config.api.session_hours * 3600,
            clock=clock,
        )

    @property
    def enabled(self) -> bool:
        """Whether the API wants a token (any is configured)."""
        return bool(self._tokens)

    @property
    def metrics_protected(self) -> bool:
        return self._metrics_token is not None

    @property
    def failures(self) -> Mapping[str, int]:
        """Refused requests by reason (``REASONS``), since start."""
        return self._failures

    @property
    def open_to_schools(self) -> bool:
        """Whether a school's token exists while /metrics (every school's series) is open."""
        return self._metrics_token is None and any(
            p.schools is not None for p in self._tokens.values()
        )

    def principal_for(self, token: str) -> Principal | None:
        """The principal of a token, or None when it matches none."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        return self._tokens.get(token_digest(token))

    def is_metrics_token(self, token: str) -> bool:
        if self._metrics_token is None or not token or len(token) > MAX_TOKEN_LENGTH:
            return False
        return hmac.compare_digest(token_digest(token), self._metrics_token)

    # -- status-page logins --------------------------------------------------------------

    def login(self, principal: Principal) -> str:
        """A new login for ``principal``; returns the session id for the cookie."""
        now = self._clock()
        self._expire(now)
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        session_id = secrets.token_urlsafe(32)
        self._sessions[token_digest(session_id)] = _Session(principal, now + self._session_seconds)
        return session_id

    def session(self, session_id: str) -> Principal | None:
        """The principal of a live login, which lasts on from now; None if ended or unknown."""
        if not session_id or len(session_id) > MAX_TOKEN_LENGTH:
            return None
        key = token_digest(session_id)
        found = self._sessions.get(key)
        now = self._clock()
        if found is None or found.expires_at <= now:
            self._sessions.pop(key, None)
            return None
        found.expires_at = now + self._session_seconds
        self._sessions.move_to_end(key)
        return found.principal

    def logout(self, session_id: str) -> None:
        if session_id and len(session_id) <= MAX_TOKEN_LENGTH:
            self._sessions.pop(token_digest(session_id), None)

    def _expire(self, now: float) -> None:
        while self._sessions:
            key, oldest = next(iter(self._sessions.items()))
            if oldest.expires_at > now:
                break
            del self._sessions[key]

    # -- refusals ------------------------------------------------------------------------

    def refused(self, reason: str, scope: Scope) -> None:
        """Count and log a refused request: reason, method, path and client, never a token."""
        self._failures[reason] = self._failures.get(reason, 0) + 1
        now = self._clock()
        client = scope.get("client") or ("-", 0)
        fields = (reason, scope.get("method", "-"), scope.get("path", "-"), client[0])
        if reason != "missing" and now - self._logged_at.get(reason, 0.0) >= LOG_EVERY_SECONDS:
            more, self._unlogged[reason] = self._unlogged.get(reason, 0), 0
            self._logged_at[reason] = now
            log.warning(
                "API 访问被拒绝 (access refused) reason=%s method=%s path=%s client=%s "
                "refused_since_last_log=%d",
                *fields,
                more,
            )
        else:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            log.debug(
                "API 访问被拒绝 (access refused) reason=%s method=%s path=%s client=%s", *fields
            )


def bearer_token(headers: Headers) -> str | None:
    """The token of an ``Authorization: Bearer`` header; "" for another scheme; None for none."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def session_cookie(headers: Headers) -> str | None:
    """The login cookie's value, if the request carries one."""
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value:
            return value
    return None


def _wants_html(scope: Scope, headers: Headers) -> bool:
    path: str = scope["path"]
    return (
        scope.get("method") in ("GET", "HEAD")
        and not path.startswith("/api/")
        and path != "/openapi.json"
        and path != "/metrics"
        and "text/html" in headers.get("accept", "")
    )


def login_url(path: str, query: bytes = b"") -> str:
    """/login?next=... back to ``path`` (and its query) once logged in."""
    target = path + ("?" + query.decode("latin-1") if query else "")
    return f"{LOGIN_PATH}?next={quote(target, safe='')}"


_MESSAGES: dict[str, str] = {
    "missing": "需要令牌（Authorization: Bearer）或登录 / a token (Authorization: Bearer) "
    "or a login is required",
    "invalid": "令牌无效 / the token is not valid",
    "expired": "登录已过期，请重新登录 / the login has ended; log in again",
    "forbidden": "此功能仅限区县角色 / only a district role may use this",
}


def _refusal(reason: str, scope: Scope, headers: Headers, *, clear_cookie: bool) -> Response:
    response: Response
    if reason != "forbidden" and _wants_html(scope, headers):
        response = RedirectResponse(login_url(scope["path"], scope.get("query_string", b"")), 303)
    elif reason == "forbidden":
        response = JSONResponse({"detail": _MESSAGES[reason]}, status_code=403)
    else:
        challenge = "Bearer" if reason == "missing" else 'Bearer error="invalid_token"'
        response = JSONResponse(
            {"detail": _MESSAGES[reason]},
            status_code=401,
            headers={"WWW-Authenticate": challenge},
        )
    if clear_cookie:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


class AccessMiddleware:
    """Sets ``request.state.principal`` on every request, or refuses the request.

    Without tokens every request is the district (``LOOPBACK``). With tokens, every path but
    ``OPEN_PATHS`` wants a token or a login: a browser asking for a page is sent to /login, an
    API client gets 401 with ``WWW-Authenticate: Bearer``. /metrics wants its own token (or a
    district one) only when one is configured; the Alertmanager receiver checks its own.
    """

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        access = self.access
        if path in OPEN_PATHS or (path == WEBHOOK_PATH and access.receiver_token):
            await self.app(scope, receive, send)
            return
        if path == "/metrics" and not access.metrics_protected:
            await self.app(scope, receive, send)
            return
        if not access.enabled and path != "/metrics":
            # Without tokens: the whole district, unless a layer wrapping the app (a test's
            # stand-in for a login) has already named who this is.
            scope.setdefault("state", {}).setdefault("principal", LOOPBACK)
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        principal, reason, had_cookie = self._identify(headers, metrics=path == "/metrics")
        if principal is not None and path == "/metrics" and principal.schools is not None:
            principal, reason = None, "forbidden"
        if principal is None:
            access.refused(reason, scope)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = _refusal(reason, scope, headers, clear_cookie=had_cookie)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _identify(self, headers: Headers, *, metrics: bool) -> tuple[Principal | None, str, bool]:
        """(principal, or None and why, whether an ended login's cookie came along)."""
        access = self.access
        token = bearer_token(headers)
        if token is not None:
            if metrics and access.is_metrics_token(token):
                return Principal("metrics", "district", None), "", False
            found = access.principal_for(token)
            return found, "" if found is not None else "invalid", False
        cookie = session_cookie(headers)
        if cookie is not None:
            found = access.session(cookie)
            return found, "" if found is not None else "expired", found is None
        return None, "missing", False


def security_scheme(openapi: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the bearer token declared for every /api/v1 operation."""
    components = openapi.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "[[api.tokens]] 中配置的令牌 / a token of [[api.tokens]] (docs/access.md)",
    }
    for path, operations in openapi.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.setdefault("security", [{"bearer": []}])
                operation.setdefault("responses", {}).setdefault(
                    "401", {"description": "令牌缺失或无效 / the token is missing or not valid"}
                )
    return openapi
