"""Requests no route can answer, refused before any route sees them: NUL bytes in the path or
query string.

PostgreSQL rejects NUL in text, so a ``?school=%00`` that reached a query would fail there
(a 503 "database unavailable" before this guard); nothing edumon names contains one. Checked
once for every request, here, rather than parameter by parameter.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

NUL_DETAIL = "请求中含有 NUL 字符 / the request contains a NUL character (%00), which no name holds"


def _has_nul(raw: bytes) -> bool:
    return b"\x00" in raw or b"\x00" in unquote_to_bytes(raw)


class RejectNul:
    """ASGI middleware: a request with NUL in its path or query string answers 422.

    The body is FastAPI's validation error format, so clients and the OpenAPI schema see the
    422 every route with parameters already documents.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
            where = "path" if _has_nul(path) or "\x00" in scope["path"] else None
            if where is None and _has_nul(scope.get("query_string", b"")):
                where = "query"
            if where is not None:
                body = json.dumps(
                    {
                        "detail": [
                            {"loc": [where], "msg": NUL_DETAIL, "type": "value_error", "input": ""}
                        ]
                    },
                    ensure_ascii=False,
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 422,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
