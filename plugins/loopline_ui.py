"""The Models view in the Airflow UI: a "Models" entry in the navigation showing each model's
champion, drift, retraining decisions, realized performance and history (read-only, behind
Airflow's login). See docs/models_view.md.

Defined in the library's Airflow layer (``loopline.airflow.ui``); importing it is cheap, so
every Airflow process can load the plugins folder without paying for the view."""

from loopline.airflow.ui import LooplineUIPlugin

__all__ = ["LooplineUIPlugin"]
