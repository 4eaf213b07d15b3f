"""The HTTP app: every router of the status API under /api/v1, health checks and /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi_offline import FastAPIOffline
from prometheus_client.exposition import choose_encoder

from edumon.exporters import schemas as s
from edumon.exporters.api.access import Access, AccessMiddleware, security_scheme
from edumon.exporters.api.alertmanager import alertmanager_router
from edumon.exporters.api.availability import availability_router
from edumon.exporters.api.district import district_router
from edumon.exporters.api.events import events_router
from edumon.exporters.api.guard import RejectNul, document_no_nul
from edumon.exporters.api.login import login_router
from edumon.exporters.api.lookup import API_PREFIX
from edumon.exporters.api.outages import outages_router
from edumon.exporters.api.per_school import SchoolsNow
from edumon.exporters.api.quality import quality_router
from edumon.exporters.api.reports import reports_router
from edumon.exporters.api.schools import schools_router
from edumon.exporters.api.switches import switches_router
from edumon.exporters.api.terminals import terminals_router
from edumon.exporters.metrics import Exposition
from edumon.exporters.web import install_status_page
from edumon.runtime import Runtime

# /readyz answers within this even if the database hangs (the store's own ping is shorter).
READY_TIMEOUT_SECONDS = 10.0

DOCS_STATIC = "/static/docs"
"""Where Swagger UI's and ReDoc's files are served from (packaged by fastapi-offline): /docs
and /redoc work on a network-centre machine without internet, and no CDN is ever asked."""


def create_app(runtime: Runtime, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """The HTTP app: the status API, health checks and Prometheus /metrics.

    Args:
        runtime: the daemon's live parts; handlers only read from it.
        clock: the current time in Unix seconds (lessons now, today's date); tests pass one.

    Returns:
        A FastAPI app with its own metrics registry; OpenAPI at /openapi.json, Swagger UI at
        /docs and ReDoc at /redoc, their assets under /static/docs.
    """
    app: FastAPI = FastAPIOffline(
        title="edumon",
        summary="Status of a district's school network links against its bandwidth targets",
        version="1",
        static_url=DOCS_STATIC,
        # Swagger UI would send the schema to an online validator and show its badge.
        swagger_ui_parameters={"validatorUrl": None},
    )
    # Who each request is (tokens, status-page logins): docs/access.md.
    access = Access.from_config(runtime.config)
    app.state.access = access
    runtime.access = access
    app.add_middleware(AccessMiddleware, access=access)
    app.include_router(login_router(access))
    # Outermost: a NUL in the path or query is refused before anything reads the request.
    app.add_middleware(RejectNul)
    document_no_nul(app)
    exposition = Exposition(runtime, clock=clock)
    app.state.exposition = exposition  # the daemon keeps it fresh (Exposition.keep_fresh)
    # Each school's results, computed per school and kept until that school changes.
    views = SchoolsNow(runtime, clock)
    app.state.schools_now = views
    # In this order in the OpenAPI document.
    for router in (
        district_router(runtime, views, clock),
        schools_router(runtime, views),
        switches_router(runtime, views),
        events_router(runtime, views),
        terminals_router(runtime, views, clock),
        availability_router(runtime, clock),
        reports_router(runtime, clock),
        alertmanager_router(runtime),
        outages_router(runtime),
        quality_router(runtime, clock),
    ):
        app.include_router(router, prefix=API_PREFIX)
    install_status_page(app, runtime, views, clock)  # the HTML status page at /

    @app.get("/healthz", response_model=s.Health, tags=["health"])
    async def healthz() -> s.Health:
        """Liveness: the process serves HTTP."""
        return s.Health(status="ok")

    @app.get(
        "/readyz",
        response_model=s.Health,
        tags=["health"],
        responses={
            503: {
                "model": s.Health,
                "description": "Not ready: the database is unreachable, or the collector is "
                "blind (its MQTT broker link is down); ``detail`` lists every reason",
            }
        },
    )
    async def readyz() -> s.Health | JSONResponse:
        """Readiness: the database answers and the collector hears its MQTT broker."""
        reasons = [*_blind_reasons(runtime, clock())]
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                ok = await runtime.store.ping()
        except TimeoutError:
            ok = False
        failing = runtime.store.write_failing
        if not ok:
            reasons.insert(0, "the database is unreachable")
        elif failing is not None:
            # Reads answer but writes fail (a disk read-only, full, or an unwritable WAL):
            # what arrives waits in memory, bounded (docs/storage.md).
            reasons.insert(0, f"数据库写入失败 / database writes are failing: {failing}")
        if not reasons:
            return s.Health(status="ready")
        body = s.Health(status="unavailable", detail="; ".join(reasons))
        return JSONResponse(body.model_dump(), status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        # Prometheus asks for OpenMetrics in its Accept header; a browser gets plain text.
        _, content_type = choose_encoder(request.headers.get("accept", ""))
        openmetrics = content_type.startswith("application/openmetrics-text")

        async def body() -> AsyncIterator[bytes]:
            # A family at a time, handing the loop back between families: polling and
            # ingest never wait for a whole city's exposition (edumon.exporters.metrics).
            for chunk in exposition.chunks(openmetrics=openmetrics):
                if chunk:  # an empty one is a pause, not a body part
                    yield chunk
                await asyncio.sleep(0)

        return StreamingResponse(body(), media_type=content_type)

    if access.enabled:
        app.openapi = _with_security(app)  # type: ignore[method-assign]
    return app


def _blind_reasons(runtime: Runtime, now: float) -> list[str]:
    """Why /readyz fails on the MQTT side: the broker link down past its grace."""
    collector = runtime.collector
    if runtime.ingest is None or not collector.blind(now):
        return []
    return [
        f"MQTT 服务器连接已中断 {collector.blind_seconds(now):.0f} 秒，终端状态未知 / "
        f"blind: the MQTT broker link has been down for {collector.blind_seconds(now):.0f} s, "
        "terminals are unknown"
    ]


def _with_security(app: FastAPI) -> Callable[[], dict[str, Any]]:
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = security_scheme(plain())
        return app.openapi_schema

    return openapi
