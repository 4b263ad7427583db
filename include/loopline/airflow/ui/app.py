"""The Models view's FastAPI app (mounted by Airflow's api-server under ``/loopline``): read-only
pages built from ``loopline.steps.overview``.

    GET /loopline/                                  every model: champion, drift, decision, ...
    GET /loopline/models/<name>                     one model: history, versions and their cards
    GET /loopline/models/<name>/drift/<report_id>   a stored drift report (HTML)

Behind Airflow's own authentication: every route needs a valid Airflow JWT (the ``_token``
cookie Airflow's login sets, or ``Authorization: Bearer``) of a user the auth manager lets read
DAGs. Without one a browser is sent to Airflow's login page (and back); an API client gets 401.
The data layer (pandas, MLflow, the warehouse) is imported inside the handlers.
"""

from __future__ import annotations

from pathlib import Path

from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from loopline.airflow.ui import pages

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}

# Every page: model data is not cached, and only the Airflow UI itself may frame it.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
}
# A drift report is a stored file: its inline styles and images, nothing else (no scripts).
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


def base(request: Request) -> str:
    """The path the app is mounted at (``/loopline``, after any base_url path of Airflow)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def airflow_root(request: Request) -> str:
    """Where Airflow's own UI is (its base_url path): links to its pages go there."""
    return str(request.scope.get("app_root_path", "")).rstrip("/")


def page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


def failure(request: Request, exc: Exception) -> HTMLResponse:
    """A loopline error as a page: an unknown model or report is 404, a store down is 503."""
    from loopline.core.errors import PermanentError, SpecError, UnknownModelError

    # Their messages name a server path: not for the page.
    if isinstance(exc, (SpecError, UnknownModelError)):
        title, text, status = "No such model", "There is no model by that name.", 404
    elif isinstance(exc, PermanentError):
        title, text, status = "Not found", str(exc), 404
    else:
        title, text, status = "Data unavailable", str(exc), 503
    return page(pages.message_page(base(request), title, text), status)


def needs_login(exc: HTTPException) -> bool:
    """No token, an expired one, or one this deployment cannot read (a stale cookie)."""
    return exc.status_code == 401 or (exc.status_code == 403 and exc.detail == "Invalid JWT token")


def login_url(request: Request) -> str:
    """Airflow's login page, coming back here afterwards."""
    from airflow.api_fastapi.app import get_auth_manager

    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = get_auth_manager().get_url_login(next_url=here)
    root = str(request.scope.get("app_root_path", "")).rstrip("/")  # Airflow's base_url path
    return f"{root}{url}" if url.startswith("/") else url


def overview_page(request: Request) -> Response:
    from loopline.core.errors import LooplineError
    from loopline.steps import overview

    try:
        models = overview.models()
    except LooplineError as exc:
        return failure(request, exc)
    return page(pages.overview_page(base(request), models, airflow_root(request)))


def model_page(request: Request, name: str) -> Response:
    from loopline.core.errors import LooplineError
    from loopline.steps import overview

    try:
        detail = overview.detail(name)
    except LooplineError as exc:
        return failure(request, exc)
    return page(pages.model_page(base(request), detail, airflow_root(request)))


def drift_report(request: Request, name: str, report_id: int) -> Response:
    from loopline.core.errors import LooplineError
    from loopline.steps import overview

    try:
        report = overview.drift_report(name, report_id)
    except LooplineError as exc:
        return failure(request, exc)
    headers = {**PAGE_HEADERS, "Content-Security-Policy": REPORT_CSP}
    body = pages.with_report_nav(base(request), name, report)
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


def static(name: str) -> Response:
    """The view's own style and icon (``static/``), nothing else."""
    path = STATIC / name
    if path.suffix not in MEDIA_TYPES or path.parent != STATIC or not path.is_file():
        raise HTTPException(404)
    headers = {**PAGE_HEADERS, "Cache-Control": "max-age=3600"}
    return Response(path.read_bytes(), media_type=MEDIA_TYPES[path.suffix], headers=headers)


def icon() -> Response:
    return static("icon.svg")


async def http_error(request: Request, exc: HTTPException) -> Response:
    """A browser without a valid session goes to Airflow's login page (and comes back); a
    browser at an unknown address gets a page; an API client gets the error as JSON."""
    browser = "text/html" in request.headers.get("accept", "")
    if browser and needs_login(exc):
        return RedirectResponse(login_url(request), status_code=303)
    if browser and exc.status_code == 404:
        return page(pages.message_page(base(request), "Not found", "No such page."), 404)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


async def not_found(request: Request, exc: RequestValidationError) -> Response:
    """A malformed address (e.g. a report id that is not a number)."""
    return page(pages.message_page(base(request), "Not found", "No such page."), 404)


def create_app() -> FastAPI:
    """The app; its handlers are plain functions, so they run in Starlette's thread pool (the
    warehouse and MLflow calls block)."""
    app = FastAPI(
        title="loopline models",
        # Airflow's own check: a valid token of a user who may read DAGs (401/403 otherwise).
        dependencies=[Depends(requires_access_dag("GET"))],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.get("/", response_class=HTMLResponse)(overview_page)
    app.get("/models/{name}", response_class=HTMLResponse)(model_page)
    app.get("/models/{name}/drift/{report_id}", response_class=HTMLResponse)(drift_report)
    app.get("/icon.svg", include_in_schema=False)(icon)
    app.get("/static/{name}", include_in_schema=False)(static)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, not_found)
    return app
