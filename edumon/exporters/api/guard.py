"""Requests no route can answer, refused before any route sees them: NUL bytes in the path or
query string.

PostgreSQL rejects NUL in text, so a ``?school=%00`` that reached a query would fail there
(a 503 "database unavailable" before this guard); nothing edumon names contains one. Checked
once for every request, here, rather than parameter by parameter.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
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


NO_NUL = "^[^\\u0000]*$"
"""The JSON-schema pattern of a string without NUL."""


def _no_nul(schema: dict[str, Any]) -> None:
    # A format given on an optional parameter (anyOf string, null) belongs to its string.
    fmt = schema.pop("format", None) if "anyOf" in schema else None
    for part in schema.get("anyOf", ()):
        if fmt is not None and part.get("type") == "string":
            part.setdefault("format", fmt)
    if schema.get("type") == "string" and "pattern" not in schema:
        schema["pattern"] = NO_NUL
    for key in ("items",):
        if isinstance(schema.get(key), dict):
            _no_nul(schema[key])
    for key in ("anyOf", "oneOf", "allOf"):
        for part in schema.get(key, ()):
            if isinstance(part, dict):
                _no_nul(part)


def document_no_nul(app: FastAPI) -> None:
    """Say in the OpenAPI document what ``RejectNul`` enforces: no path or query parameter
    holds NUL (every string parameter gets the pattern ``^[^\\u0000]*$``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            for item in doc.get("paths", {}).values():
                for operation in item.values():
                    for param in operation.get("parameters", ()):
                        if param.get("in") in ("path", "query"):
                            _no_nul(param.get("schema", {}))
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
