"""The status page: the district's schools, a school, a switch, as HTML in Chinese at /.

Server-rendered with Jinja2 from the views the JSON API uses; its CSS, script and icon are
packaged with edumon and served from /status-assets (no CDN, no web fonts: it works offline).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from edumon.exporters.api.per_school import SchoolsNow
from edumon.exporters.web.pages import status_router
from edumon.runtime import Runtime

STATIC_PATH = "/status-assets"
"""Where the pages' CSS, script and icon are served (apart from any other static files)."""


def templates() -> Jinja2Templates:
    """The page templates, loaded from the package; HTML-escaped, undefined names fail."""
    env = Environment(
        loader=PackageLoader("edumon.exporters.web", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env)


def install_status_page(
    app: FastAPI, runtime: Runtime, views: SchoolsNow, clock: Callable[[], float]
) -> None:
    """Add the status page to ``app``: the pages at /, /schools/{code}, /switches/{id}, assets.

    Args:
        app: the API's app (edumon.exporters.api.app.create_app).
        runtime: the daemon's live parts; read only.
        views: the API's per-school results (shared, so both compute a school once).
        clock: the current time in Unix seconds.
    """
    app.include_router(status_router(runtime, views, templates(), clock, STATIC_PATH))
    app.mount(
        STATIC_PATH,
        StaticFiles(packages=[("edumon.exporters.web", "static")]),
        name="status-assets",
    )
