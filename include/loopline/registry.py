"""MLflow tracking and Model Registry adapter, and the gate step that moves the aliases.

Each model spec has an experiment ``loopline-<model>`` and a registered model ``<model>``;
the alias ``champion`` names the version that scores, ``challenger`` the last one that did not
pass the gate. Every gate decision and rollback is appended to ``warehouse.model_events``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from functools import cache
from importlib import metadata

import pandas as pd

from loopline import config, storage, warehouse
from loopline.spec import ModelSpec

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"
REQUIREMENTS = ("xgboost", "scikit-learn", "pandas", "numpy", "scipy")


def client():
    """An MlflowClient on the configured tracking store (telemetry off: no network here)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow import MlflowClient

    uri = config.mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def experiment_id(spec: ModelSpec) -> str:
    mlflow_client = client()
    name = f"loopline-{spec.name}"
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = storage.join(config.mlflow_artifacts(), spec.name)
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except Exception:  # created meanwhile by a concurrent task
        return mlflow_client.get_experiment_by_name(name).experiment_id


@cache
def git_commit() -> str:
    if os.environ.get("LOOPLINE_GIT_COMMIT"):
        return os.environ["LOOPLINE_GIT_COMMIT"]
    try:
        return subprocess.run(
            ["git", "-C", str(config.REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def pip_requirements() -> list[str]:
    """Exact versions of what the model needs to load (instead of MLflow's slow inference)."""
    return [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS]


def log_model(model, name: str, sample: pd.DataFrame, score, registered_name: str | None = None):
    """Log a fitted pipeline with its signature; register it when ``registered_name`` is set."""
    import mlflow
    import skops.io

    # Our own artifact, so its non-sklearn types (the XGBoost booster) are trusted by name.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return mlflow.sklearn.log_model(
        model,
        name=name,
        signature=mlflow.models.infer_signature(sample, score),
        registered_model_name=registered_name,
        pip_requirements=pip_requirements(),
        skops_trusted_types=trusted,
    )


def load_model(uri: str):
    import mlflow

    client()
    return mlflow.sklearn.load_model(uri)


def load_frame(run_id: str, path: str) -> pd.DataFrame:
    import mlflow

    client()
    return pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))


def log_frame(frame: pd.DataFrame, path: str) -> None:
    """Log a DataFrame as a Parquet artifact of the active run."""
    import tempfile

    import mlflow

    folder, name = os.path.split(path)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, name)
        frame.to_parquet(local, index=False)
        mlflow.log_artifact(local, artifact_path=folder or None)


def champion_version(name: str):
    """The version the ``champion`` alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def set_alias(name: str, alias: str, version: int | str) -> None:
    client().set_registered_model_alias(name, alias, str(version))


def record_event(
    model: str,
    event: str,
    version: int,
    previous: int | None,
    reasons: list[str],
    metrics: dict,
    mlflow_run_id: str | None = None,
    dag_run_id: str | None = None,
) -> None:
    """Append to the promotion/rollback history (``warehouse.model_events``)."""
    from sqlalchemy import text

    with warehouse.engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO warehouse.model_events (model, event, version, previous_champion, "
                "reasons, metrics, mlflow_run_id, dag_run_id) VALUES (:m, :e, :v, :p, "
                "CAST(:r AS jsonb), CAST(:x AS jsonb), :run, :dag)"
            ),
            {
                "m": model,
                "e": event,
                "v": int(version),
                "p": previous,
                "r": json.dumps(reasons),
                "x": json.dumps(metrics),
                "run": mlflow_run_id,
                "dag": dag_run_id,
            },
        )


def run_gate(spec: ModelSpec, version: int, *, dag_run_id: str | None = None) -> dict:
    """Score the candidate version, the baseline and the current champion on the candidate's
    holdout now, decide, move the alias, and record the decision."""
    from loopline import gate
    from loopline.evaluate import metrics, slice_metrics
    from loopline.train import LABEL, score

    mlflow_client = client()
    candidate = mlflow_client.get_model_version(spec.name, str(version))
    run_id = candidate.run_id
    holdout = load_frame(run_id, "data/holdout.parquet")
    y = holdout[LABEL].to_numpy()
    scored = {
        "candidate": score(spec, load_model(f"models:/{spec.name}/{version}"), holdout),
        "baseline": score(spec, load_model(f"runs:/{run_id}/baseline"), holdout),
    }
    current = champion_version(spec.name)
    if current is not None and int(current.version) != int(version):
        scored["champion"] = score(
            spec, load_model(f"models:/{spec.name}/{current.version}"), holdout
        )
    results = {name: metrics(spec, y, s) for name, s in scored.items()}
    slices = {name: slice_metrics(spec, holdout, s) for name, s in scored.items()}
    decision = gate.decide(
        spec.gate,
        spec.metric.primary,
        results["candidate"],
        results["baseline"],
        results.get("champion"),
        slices["candidate"],
        slices.get("champion"),
    )
    set_alias(spec.name, decision.alias, version)
    previous = int(current.version) if current is not None else None
    record_event(
        spec.name,
        "promoted" if decision.promote else "rejected",
        version,
        previous,
        decision.reasons,
        {n: {k: v for k, v in r.items() if v == v} for n, r in results.items()},
        run_id,
        dag_run_id,
    )
    log.info("model %s version %s: %s", spec.name, version, "; ".join(decision.reasons))
    return {
        "version": int(version),
        "promoted": decision.promote,
        "alias": decision.alias,
        "previous_champion": previous,
        "reasons": decision.reasons,
    }


class RollbackError(ValueError):
    """Nothing to roll back to, or the requested version does not exist."""


def history(model: str) -> pd.DataFrame:
    """The append-only promotion / rejection / rollback history."""
    return warehouse.query(
        "SELECT id, created_at, event, version, previous_champion, reasons, dag_run_id "
        "FROM warehouse.model_events WHERE model = :m ORDER BY id",
        {"m": model},
    )


def rollback(
    model: str,
    to_version: int | None = None,
    *,
    reason: str = "manual rollback",
    dag_run_id: str | None = None,
) -> dict:
    """Point ``champion`` at ``to_version``, or at the champion before the current one."""
    current = champion_version(model)
    if current is None:
        raise RollbackError(f"model '{model}' has no champion to roll back")
    if to_version is None:
        # The champion the current one replaced: walk back through promotions and rollbacks.
        events = history(model)
        made = events[
            (events.version == int(current.version))
            & events.event.isin(["promoted", "rolled_back"])
        ]
        previous = made.previous_champion.dropna()
        if previous.empty:
            raise RollbackError(f"model '{model}' v{current.version} replaced no earlier champion")
        to_version = int(previous.iloc[-1])
    try:
        target = client().get_model_version(model, str(to_version))
    except Exception as exc:
        raise RollbackError(f"model '{model}' has no version {to_version}") from exc
    set_alias(model, CHAMPION, target.version)
    record_event(
        model,
        "rolled_back",
        int(target.version),
        int(current.version),
        [f"{reason}: champion v{current.version} -> v{target.version}"],
        {},
        target.run_id,
        dag_run_id,
    )
    return {
        "model": model,
        "champion": int(target.version),
        "previous_champion": int(current.version),
    }
