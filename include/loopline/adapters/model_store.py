"""The model store: MLflow tracking and Model Registry. The only module that imports mlflow;
every artifact path and tag name loopline uses is defined here.

Each model spec has an experiment ``loopline-<model>`` and a registered model ``<model>``; the
alias ``champion`` names the version that scores, ``challenger`` the last candidate that did not
pass the gate. MLflow failures are classified by their error code: a missing resource or an
invalid request is permanent, anything else (a server or database that is down) transient; a
model artifact that cannot be loaded is permanent and says what to do.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import metadata

import pandas as pd

from loopline.adapters import settings, storage
from loopline.core import columns
from loopline.core.errors import (
    ModelArtifactError,
    PermanentError,
    StoreUnavailableError,
)

CHAMPION, CHALLENGER = "champion", "challenger"
REQUIREMENTS = ("xgboost", "scikit-learn", "pandas", "numpy", "scipy")
# Artifacts of a training run.
BASELINE, CANDIDATE, MODEL = "baseline", "candidate", "model"
HOLDOUT, VALIDATION = "data/holdout.parquet", "data/validation.parquet"
TRAINING_PROFILE, PROFILE = "reference/features.json", "reference/profile.json"
SLICES, PLOTS = "slices.json", "plots"
MODEL_CARD = "model_card.json"
TRAINING_DRIFT = "reference/training_drift.json"
# The candidates a training fitted: their windows, holdout metrics, and why one was chosen.
CANDIDATES = "candidates.json"
# Tags of a training run: why it ran, on which days, from which code.
RUN_TAGS = (
    "reason",
    "dag_run_id",
    "git_commit",
    "window_start",
    "window_end",
    "task",
    "candidate",
    "change_date",
)
PERMANENT_CODES = frozenset(
    {
        "RESOURCE_DOES_NOT_EXIST",
        "RESOURCE_ALREADY_EXISTS",
        "INVALID_PARAMETER_VALUE",
        "INVALID_STATE",
        "BAD_REQUEST",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "NOT_FOUND",
        "MALFORMED_REQUEST",
    }
)


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # No progress bars: each artifact download drew one into the task log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    import loopline.adapters.skops_io  # noqa: F401  (before MLflow imports it, noisily)

    return mlflow


def classify(exc: Exception, what: str) -> Exception:
    """An MLflow error as a loopline error: permanent or transient by its error code."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        code = str(getattr(exc, "error_code", "") or "")
        if code in PERMANENT_CODES:
            return PermanentError(f"{what}: {exc.message} ({code})")
        return StoreUnavailableError(
            f"{what}: {exc.message} ({code or 'no error code'})",
            hint="check that the MLflow tracking store (MLFLOW_TRACKING_URI) is up; "
            "Airflow retries the task",
        )
    return exc


def _classified(what: str):
    def wrap(function):
        @functools.wraps(function)
        def call(*args, **kwargs):
            from mlflow.exceptions import MlflowException

            try:
                return function(*args, **kwargs)
            except MlflowException as exc:
                raise classify(exc, f"{what} ({function.__name__})") from exc

        return call

    return wrap


def client():
    """An MlflowClient on the configured tracking store (telemetry off: no network here)."""
    mlflow = _mlflow()
    uri = settings.mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(uri, uri)


@_classified("MLflow tracking store")
def prepare() -> None:
    """Create the tracking store's tables now, once (tasks that start together on a fresh
    database would race to create them)."""
    client().search_experiments(max_results=1)


@_classified("MLflow experiment")
def experiment_id(model: str) -> str:
    mlflow_client = client()
    name = f"loopline-{model}"
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = storage.join(settings.mlflow_artifacts(), model)
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
            ["git", "-C", str(settings.REPO_ROOT), "rev-parse", "HEAD"],
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


@contextmanager
def training_run(model: str, name: str, tags: dict[str, str]) -> Iterator[str]:
    """A new run in the model's experiment; yields its id."""
    mlflow = _mlflow()
    client()
    with mlflow.start_run(experiment_id=experiment_id(model), run_name=name, tags=tags) as run:
        yield run.info.run_id


@contextmanager
def resumed_run(run_id: str) -> Iterator[str]:
    mlflow = _mlflow()
    client()
    with mlflow.start_run(run_id=run_id):
        yield run_id


def log_params(params: dict) -> None:
    _mlflow().log_params(params)


def log_metrics(metrics: dict[str, float]) -> None:
    _mlflow().log_metrics(metrics)


def log_dict(data: dict, path: str) -> None:
    _mlflow().log_dict(data, path)


def log_text(text: str, path: str) -> None:
    _mlflow().log_text(text, path)


def log_figure(figure, path: str) -> None:
    _mlflow().log_figure(figure, path)


def set_tag(key: str, value: str) -> None:
    _mlflow().set_tag(key, value)


def log_model(model, name: str, sample: pd.DataFrame, score, registered_name: str | None = None):
    """Log a fitted pipeline with its signature; register it when ``registered_name`` is set.
    Returns the registered version (or None)."""
    mlflow = _mlflow()
    from loopline.adapters.skops_io import io as skops_io

    # Our own artifact, so its non-sklearn types (the XGBoost booster) are trusted by name.
    trusted = skops_io.get_untrusted_types(data=skops_io.dumps(model))
    info = mlflow.sklearn.log_model(
        model,
        name=name,
        signature=mlflow.models.infer_signature(sample, score),
        registered_model_name=registered_name,
        pip_requirements=pip_requirements(),
        skops_trusted_types=trusted,
    )
    return int(info.registered_model_version) if registered_name else None


def load_model(uri: str, *, model: str | None = None):
    """A logged model (``models:/<name>/<version>`` or ``runs:/<run>/<name>``). An artifact that
    is missing or damaged is a permanent error naming the model and what to do."""
    from mlflow.exceptions import MlflowException

    mlflow = _mlflow()
    client()
    try:
        # Into a scratch copy: loaded in place, MLflow writes `registered_model_meta` into the
        # store's own folder, and a read-only model store could not serve scoring.
        with tempfile.TemporaryDirectory(dir=settings.scratch_dir()) as scratch:
            return mlflow.sklearn.load_model(uri, dst_path=scratch)
    except MlflowException as exc:
        error = classify(exc, f"loading {uri}")
        if isinstance(error, PermanentError):
            raise _artifact_error(uri, exc, model) from exc
        raise error from exc
    except (zipfile.BadZipFile, FileNotFoundError, EOFError, ValueError, OSError) as exc:
        raise _artifact_error(uri, exc, model) from exc


def _artifact_error(uri: str, exc: Exception, model: str | None) -> ModelArtifactError:
    return ModelArtifactError(
        f"the model artifact {uri} cannot be loaded: {type(exc).__name__}: {exc}",
        model=model,
        hint="roll back to a version that loads (`loopline rollback <model>`) or retrain; "
        "a retry cannot repair the artifact",
    )


@_classified("MLflow artifact")
def load_frame(run_id: str, path: str) -> pd.DataFrame:
    """A frame a training run logged (its holdout, its validation split), with today's names
    for loopline's own columns (a run from before they were marked is upgraded)."""
    mlflow = _mlflow()
    client()
    # Into a scratch folder removed after the read: without dst_path MLflow downloads into a
    # temporary folder of its own that it never removes (a holdout left on every worker's disk).
    with _artifact_of(run_id, path), tempfile.TemporaryDirectory(dir=settings.scratch_dir()) as tmp:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp)
        return columns.upgrade(pd.read_parquet(local))


def log_frame(frame: pd.DataFrame, path: str) -> None:
    """Log a DataFrame as a Parquet artifact of the active run."""
    folder, name = os.path.split(path)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, name)
        frame.to_parquet(local, index=False)
        _mlflow().log_artifact(local, artifact_path=folder or None)


@contextmanager
def _artifact_of(run_id: str, path: str) -> Iterator[None]:
    """A run's artifact that is gone or damaged (its files deleted by hand, a store that lost
    them) is a permanent error naming the run and the artifact, not MLflow's ``No such
    artifact: ''``."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        error = classify(exc, f"artifact {path} of run {run_id}")
        if not isinstance(error, PermanentError):
            raise error from exc
        raise _missing_artifact(run_id, path, exc) from exc
    except (OSError, ValueError) as exc:
        raise _missing_artifact(run_id, path, exc) from exc


def _missing_artifact(run_id: str, path: str, exc: Exception) -> ModelArtifactError:
    return ModelArtifactError(
        f"artifact {path} of MLflow run {run_id} cannot be read: {type(exc).__name__}: {exc}",
        hint="its files are missing from the model store (LOOPLINE_MLFLOW_ARTIFACTS): restore "
        "them, or roll back to a version whose files are there (`loopline rollback <model>`)",
    )


def load_dict(run_id: str, path: str) -> dict:
    client()
    with _artifact_of(run_id, path):
        return _mlflow().artifacts.load_dict(f"runs:/{run_id}/{path}")


@_classified("MLflow artifact")
def load_text(run_id: str, path: str) -> str:
    client()
    return _mlflow().artifacts.load_text(f"runs:/{run_id}/{path}")


@_classified("MLflow artifact list")
def list_artifacts(run_id: str, path: str | None = None) -> list[str]:
    return [a.path for a in client().list_artifacts(run_id, path)]


def alias_version(name: str, alias: str):
    """The version an alias points at, or None (no such alias or model)."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if str(getattr(exc, "error_code", "")) in PERMANENT_CODES:
            return None
        raise classify(exc, f"alias {alias} of {name}") from exc


def champion_version(name: str):
    """The version the ``champion`` alias points at, or None."""
    return alias_version(name, CHAMPION)


def model_version(name: str, version: int | str):
    """A registered version; one that does not exist is a permanent error naming the versions
    there are (not MLflow's raw ``RESOURCE_DOES_NOT_EXIST``)."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version(name, str(version))
    except MlflowException as exc:
        if str(getattr(exc, "error_code", "")) != "RESOURCE_DOES_NOT_EXIST":
            raise classify(exc, f"MLflow model version {version} of {name}") from exc
    known = [int(v.version) for v in versions(name)]
    shown = f"v{min(known)}..v{max(known)}" if known else "none yet"
    raise PermanentError(
        f"there is no version {version} (versions: {shown})",
        model=name,
        hint="`loopline history <model>` lists the versions and what happened to them",
    )


@_classified("MLflow model versions")
def versions(name: str) -> list:
    return sorted(client().search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))


@_classified("MLflow alias")
def set_alias(name: str, alias: str, version: int | str) -> None:
    client().set_registered_model_alias(name, alias, str(version))


@_classified("MLflow alias")
def delete_alias(name: str, alias: str) -> None:
    client().delete_registered_model_alias(name, alias)


@_classified("MLflow model version tags")
def set_version_tags(name: str, version: int, tags: dict[str, str]) -> None:
    mlflow_client = client()
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, str(version), key, str(value))


@_classified("MLflow model version")
def set_version_description(name: str, version: int, text: str) -> None:
    client().update_model_version(name, str(version), description=text)


@_classified("MLflow artifact")
def log_dict_to_run(run_id: str, data: dict, path: str) -> None:
    """Write (or replace) a JSON artifact of a finished run."""
    client().log_dict(run_id, data, path)


@_classified("MLflow run")
def run_tags(run_id: str) -> dict[str, str]:
    return dict(client().get_run(run_id).data.tags)


@_classified("MLflow run")
def run_data(run_id: str):
    """Params, metrics and tags of a run."""
    return client().get_run(run_id).data


@_classified("MLflow registered model")
def delete_model(name: str) -> None:
    client().delete_registered_model(name)
