"""GET/POST /login and /logout: the status page's token login, kept in a session cookie.

A school administrator pastes the school's token once; the browser then holds an HttpOnly,
SameSite=Strict cookie (Secure over https) naming a login that edumon keeps in memory, never the
token. The page is self-contained (no script, no stylesheet to fetch) so that it shows before
any login. docs/access.md.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edumon.exporters.api.access import (
    LOGIN_PATH,
    LOGOUT_PATH,
    SESSION_COOKIE,
    Access,
    session_cookie,
)

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 8192
"""A login form is a token and a path; a larger body is refused unread."""


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this server, never another site."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(c in target for c in "\\\r\n\t\0")
    ):
        return "/"
    return target


_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>登录 · edumon</title>
<style>
body {{ font-family: system-ui, "PingFang SC", "Microsoft YaHei", sans-serif; margin: 0;
  background: #f3f5f7; color: #1f2933; }}
main {{ max-width: 26rem; margin: 12vh auto; padding: 1.5rem; background: #fff;
  border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
h1 {{ font-size: 1.3rem; margin: 0 0 1rem; }}
label {{ display: block; margin-bottom: .4rem; }}
input[type=password] {{ width: 100%; box-sizing: border-box; padding: .6rem; font-size: 1rem;
  border: 1px solid #9aa5b1; border-radius: 4px; }}
button {{ margin-top: 1rem; padding: .6rem 1.4rem; font-size: 1rem; border: 0;
  border-radius: 4px; background: #1d4ed8; color: #fff; }}
.error {{ color: #b91c1c; }}
.en {{ color: #616e7c; font-size: .9em; }}
</style>
</head>
<body>
<main>
<h1>edumon 登录 <span class="en">Log in</span></h1>
{body}
</main>
</body>
</html>
"""

_FORM = """{notice}
<form method="post" action="/login">
<label for="token">访问令牌 <span class="en">Access token</span></label>
<input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">登录 <span class="en">Log in</span></button>
</form>
<p class="en">令牌由区县网络中心发放（edumon token new）。
Tokens are issued by the district's network centre.</p>
"""


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(body=body),
        status_code=status,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def _form(next_: str, notice: str = "", status: int = 200) -> HTMLResponse:
    return _page(_FORM.format(notice=notice, next=html.escape(next_, quote=True)), status)


def _same_origin(request: Request) -> bool:
    """A form posted from this server's own pages (login CSRF is refused)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def login_router(access: Access) -> APIRouter:
    """The login and logout routes, outside the OpenAPI document (they serve browsers)."""
    router = APIRouter(include_in_schema=False)

    @router.get(LOGIN_PATH)
    async def login_form(request: Request, next: str | None = None) -> Response:
        if not access.enabled:
            return _page(
                '<p>未配置访问令牌，无需登录。<span class="en">No tokens are configured: '
                'no login is needed.</span></p><p><a href="/">返回首页 / Home</a></p>'
            )
        notice = ""
        cookie = session_cookie(request.headers)
        current = access.session(cookie) if cookie else None
        if current is not None:
            notice = (
                f"<p>已登录为 {html.escape(current.name)} "
                f'<span class="en">Logged in as {html.escape(current.name)}</span> · '
                '<a href="/logout">退出 / Log out</a></p>'
            )
        return _form(safe_next(next), notice)

    @router.post(LOGIN_PATH)
    async def login(request: Request) -> Response:
        if not access.enabled:
            return RedirectResponse("/", 303)
        if not _same_origin(request):
            access.refused("forbidden", request.scope)
            return _page(
                '<p class="error">请从本站的登录页登录 <span class="en">Log in from this '
                "server's own login page</span></p>",
                403,
            )
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_FORM_BYTES:
            return _form("/", '<p class="error">表单无效 / invalid form</p>', 400)
        body = await request.body()
        try:
            fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
        except ValueError:  # more fields than a login form has
            return _form("/", '<p class="error">表单无效 / invalid form</p>', 400)
        token = (fields.get("token") or [""])[0].strip()
        next_ = safe_next((fields.get("next") or ["/"])[0])
        principal = access.principal_for(token)
        if principal is None:
            access.refused("invalid" if token else "missing", request.scope)
            return _form(
                next_,
                '<p class="error">令牌无效，请检查后重试 '
                '<span class="en">The token is not valid; check it and try again</span></p>',
                401,
            )
        session_id = access.login(principal)
        log.info(
            "状态页登录 (status page login) name=%s role=%s client=%s",
            principal.name,
            principal.role,
            request.client.host if request.client else "-",
        )
        response = RedirectResponse(next_, 303)
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.get(LOGOUT_PATH)
    @router.post(LOGOUT_PATH)
    async def logout(request: Request) -> Response:
        cookie = session_cookie(request.headers)
        if cookie is not None:
            access.logout(cookie)
        response = RedirectResponse(LOGIN_PATH, 303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return router
