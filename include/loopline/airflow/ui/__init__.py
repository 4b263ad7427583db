"""The Models view in the Airflow UI, as an Airflow plugin: a "Models" entry in the UI's
navigation that shows the read-only pages of ``loopline.airflow.ui.app`` (mounted by the
api-server under ``/loopline``, behind Airflow's own authentication).

Every Airflow process imports the plugins folder (scheduler, dag-processor, each task), so
importing this module costs nothing: the FastAPI app, Airflow's API security and the data layer
(pandas, MLflow, the warehouse) are imported when the api-server serves the first request.
``plugins/loopline_ui.py`` re-exports the plugin.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/loopline"
URL_ROUTE = "loopline"  # the Airflow UI shows the view at /plugin/loopline


class LazyApp:
    """An ASGI app that builds the Models view's FastAPI app on its first request."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from loopline.airflow.ui.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


app = LazyApp()

FASTAPI_APP = {"app": app, "url_prefix": URL_PREFIX, "name": "loopline models"}
NAV_VIEW = {
    "name": "Models",
    "href": f"{URL_PREFIX}/",
    "destination": "nav",
    "url_route": URL_ROUTE,
    "nav_top_level": True,  # its own entry in the navigation, not under "Plugins"
    "icon": f"{URL_PREFIX}/icon.svg",
}


class LooplineUIPlugin(AirflowPlugin):
    """The Models view: a FastAPI app under /loopline and its entry in the UI's navigation."""

    name = "loopline_ui"
    fastapi_apps = [FASTAPI_APP]
    external_views = [NAV_VIEW]
