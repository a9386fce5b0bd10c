"""The public pages: `/` (what this is, where to log in) and `/docs`, served without internet.

Swagger UI's files come from the pinned `fastapi-offline` package and are served under
`/static/swagger-ui/`; the page starts it from a static script, so no request leaves the
server and no inline script is needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from worker.web.pages import _render

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent.parent / "static"
SWAGGER_UI = Path(fastapi_offline.__file__).resolve().parent / "static"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def mount_static(app: FastAPI) -> None:
    """Our CSS and scripts at /static/, Swagger UI's at /static/swagger-ui/ (mounted first)."""
    app.mount("/static/swagger-ui", StaticFiles(directory=SWAGGER_UI), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


@router.get("/")
def landing() -> HTMLResponse:
    return _render("landing.html")


@router.get("/login")
def login_for(slug: str = "") -> Response:
    """The landing page's form: on to the organisation's own login page."""
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        return RedirectResponse("/", status_code=303)
    return RedirectResponse(f"/orgs/{slug}/login", status_code=303)


@router.get("/docs")
def docs() -> HTMLResponse:
    return _render("docs.html")
