"""The model store on MLflow tracking and its Model Registry: the verbs of
:class:`loopline.core.registry.ModelStore`, kept as runs, artifacts, tags and aliases. The only
module that imports mlflow; every URI, artifact path and tag name loopline uses is spelled here,
and nothing of MLflow's (an entity, a URI) leaves it: steps get loopline's records.

Each model spec has an experiment ``loopline-<model>`` and a registered model ``<model>``; the
alias ``champion`` names the version that scores, ``challenger`` the version in shadow (or the
last candidate that did not pass the gate). MLflow failures are classified by their error code:
a missing resource or an invalid request is permanent, anything else (a server or database that
is down) transient; a model artifact that cannot be loaded is permanent and says what to do.

Steps reach the store through :func:`store` (the MLflow store unless a test put another in
place with :func:`using`).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from loopline.adapters import settings, storage
from loopline.core import columns
from loopline.core.drift import Profile
from loopline.core.errors import (
    ModelArtifactError,
    PermanentError,
    StoreUnavailableError,
)
from loopline.core.registry import (
    BASELINE,
    CANDIDATE,
    CHALLENGER,
    CHAMPION,
    ModelStore,
    ModelVersion,
    Registration,
    TrainingLog,
    TrainingRun,
)

REQUIREMENTS = ("xgboost", "scikit-learn", "pandas", "numpy", "scipy")
# Artifacts of a training run.
MODEL = "model"
HOLDOUT, VALIDATION = "data/holdout.parquet", "data/validation.parquet"
TRAINING_PROFILE, PROFILE = "reference/features.json", "reference/profile.json"
SLICES, PLOTS = "slices.json", "plots"
MODEL_CARD = "model_card.json"
TRAINING_DRIFT = "reference/training_drift.json"
# The candidates a training fitted: their windows, holdout metrics, and why one was chosen.
CANDIDATES = "candidates.json"
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
    def wrap(function: Callable) -> Callable:
        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
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
def _run(
    model: str | None = None,
    *,
    title: str = "",
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
) -> Iterator[str]:
    """A new run in the model's experiment, or a finished one resumed; yields its id."""
    mlflow = _mlflow()
    client()
    if run_id is not None:
        with mlflow.start_run(run_id=run_id):
            yield run_id
        return
    with mlflow.start_run(experiment_id=experiment_id(model), run_name=title, tags=tags) as run:
        yield run.info.run_id


def _log_model(
    model: Any,
    name: str,
    sample: pd.DataFrame,
    score: np.ndarray,
    registered_name: str | None = None,
) -> int | None:
    """Log a fitted pipeline with its signature into the active run; register it when
    ``registered_name`` is set. Returns the registered version (or None)."""
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


def _log_frame(frame: pd.DataFrame, path: str) -> None:
    """Log a DataFrame as a Parquet artifact of the active run."""
    folder, name = os.path.split(path)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, name)
        frame.to_parquet(local, index=False)
        _mlflow().log_artifact(local, artifact_path=folder or None)


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


@_classified("MLflow artifact list")
def list_artifacts(run_id: str, path: str | None = None) -> list[str]:
    return [a.path for a in client().list_artifacts(run_id, path)]


@_classified("MLflow run")
def run_data(run_id: str):
    """Params, metrics and tags of a run (MLflow's own record: for tests and tools that look
    at what the store holds; steps read :meth:`MlflowModelStore.training`)."""
    return client().get_run(run_id).data


def _floats(tags: dict[str, str], prefix: str) -> dict[str, float]:
    found = {}
    for key, value in tags.items():
        if key.startswith(prefix):
            try:
                found[key.removeprefix(prefix)] = float(value)
            except ValueError:
                continue
    return found


def _version(entity: Any, aliases: tuple[str, ...] | None = None) -> ModelVersion:
    """An MLflow model version as loopline's record."""
    tags = dict(entity.tags or {})
    calibrated = tags.get("calibrated")
    return ModelVersion(
        model=entity.name,
        version=int(entity.version),
        run_id=entity.run_id,
        created=dt.datetime.fromtimestamp(entity.creation_timestamp / 1000, tz=dt.UTC),
        aliases=tuple(entity.aliases or ()) if aliases is None else aliases,
        holdout=_floats(tags, "holdout_"),
        calibrated=None if calibrated is None else calibrated == "True",
    )


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


class MlflowModelStore(ModelStore):
    """:class:`~loopline.core.registry.ModelStore` on MLflow (``MLFLOW_TRACKING_URI``)."""

    # --- versions and aliases ----------------------------------------------------------------

    def alias(self, model: str, alias: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            found = client().get_model_version_by_alias(model, alias)
        except MlflowException as exc:
            if str(getattr(exc, "error_code", "")) in PERMANENT_CODES:
                return None  # no such alias, or no such model yet
            raise classify(exc, f"alias {alias} of {model}") from exc
        return _version(found, tuple(found.aliases or ()) or (alias,))

    def champion(self, model: str) -> ModelVersion | None:
        return self.alias(model, CHAMPION)

    def challenger(self, model: str) -> ModelVersion | None:
        return self.alias(model, CHALLENGER)

    def version(self, model: str, version: int) -> ModelVersion:
        """A registered version; one that does not exist is a permanent error naming the
        versions there are (not MLflow's raw ``RESOURCE_DOES_NOT_EXIST``)."""
        from mlflow.exceptions import MlflowException

        try:
            return _version(client().get_model_version(model, str(int(version))))
        except MlflowException as exc:
            if str(getattr(exc, "error_code", "")) != "RESOURCE_DOES_NOT_EXIST":
                raise classify(exc, f"MLflow model version {version} of {model}") from exc
        known = [v.version for v in self.versions(model)]
        shown = f"v{min(known)}..v{max(known)}" if known else "none yet"
        raise PermanentError(
            f"there is no version {version} (versions: {shown})",
            model=model,
            hint="`loopline history <model>` lists the versions and what happened to them",
        )

    @_classified("MLflow model versions")
    def versions(self, model: str) -> list[ModelVersion]:
        # A search of versions leaves their aliases empty on a database store: asked apart.
        aliases: dict[int, list[str]] = {}
        for name in (CHAMPION, CHALLENGER):
            found = self.alias(model, name)
            if found is not None:
                aliases.setdefault(found.version, []).append(name)
        entities = client().search_model_versions(f"name='{model}'")
        found = [_version(e, tuple(aliases.get(int(e.version), ()))) for e in entities]
        return sorted(found, key=lambda v: v.version)

    @_classified("MLflow alias")
    def set_alias(self, model: str, alias: str, version: int) -> None:
        client().set_registered_model_alias(model, alias, str(int(version)))

    @_classified("MLflow alias")
    def remove_alias(self, model: str, alias: str) -> None:
        if self.alias(model, alias) is not None:
            client().delete_registered_model_alias(model, alias)

    # --- fitted models -----------------------------------------------------------------------

    def load_version(self, model: str, version: int) -> Any:
        return load_model(f"models:/{model}/{int(version)}", model=model)

    def load_trained(self, model: str, run_id: str, which: str) -> Any:
        if which not in (BASELINE, CANDIDATE):
            raise ValueError(f"a training run holds {BASELINE!r} and {CANDIDATE!r}, not {which!r}")
        return load_model(f"runs:/{run_id}/{which}", model=model)

    # --- training runs -----------------------------------------------------------------------

    def log_training(self, model: str, training: TrainingLog) -> str:
        tags = {
            "reason": training.reason,
            "dag_run_id": training.dag_run_id,
            "git_commit": git_commit(),
            "window_start": training.window[0].isoformat(),
            "window_end": training.window[1].isoformat(),
            "task": training.task,
            "candidate": training.candidate_name,
        }
        if training.change_date is not None:
            tags["change_date"] = training.change_date.isoformat()
        mlflow = _mlflow()
        with _run(model, title=training.title, tags=tags) as run_id:
            mlflow.log_params({k: v for k, v in training.params.items() if k != "eval_metric"})
            mlflow.log_metrics({k: float(v) for k, v in training.counts.items()})
            for name, fitted in ((BASELINE, training.baseline), (CANDIDATE, training.candidate)):
                _log_model(fitted, name, training.sample, training.sample_scores[name])
            _log_frame(training.validation, VALIDATION)
            _log_frame(training.holdout, HOLDOUT)
            mlflow.log_dict(dict(training.choice), CANDIDATES)
            mlflow.log_dict(training.profile.to_dict(), TRAINING_PROFILE)
            mlflow.log_dict({"features": list(training.drifting)}, TRAINING_DRIFT)
        return run_id

    @_classified("MLflow run")
    def training(self, run_id: str) -> TrainingRun:
        data = client().get_run(run_id).data
        tags = dict(data.tags)
        start, end = _date(tags.get("window_start")), _date(tags.get("window_end"))
        return TrainingRun(
            run_id=run_id,
            reason=tags.get("reason"),
            dag_run_id=tags.get("dag_run_id"),
            git_commit=tags.get("git_commit"),
            window=(start, end) if start and end else None,
            task=tags.get("task"),
            candidate=tags.get("candidate"),
            change_date=_date(tags.get("change_date")),
            mode=data.params.get("mode", "stateless"),
            counts={k: int(v) for k, v in data.metrics.items() if k.startswith("rows_")},
        )

    def validation_split(self, run_id: str) -> pd.DataFrame:
        return load_frame(run_id, VALIDATION)

    def holdout(self, run_id: str) -> pd.DataFrame:
        return load_frame(run_id, HOLDOUT)

    def training_choice(self, run_id: str) -> list[str]:
        if CANDIDATES not in list_artifacts(run_id):
            return []
        return list(load_dict(run_id, CANDIDATES).get("reasons", []))

    def training_profile(self, run_id: str) -> Profile:
        return Profile.from_dict(load_dict(run_id, TRAINING_PROFILE))

    def training_drift(self, run_id: str) -> list[str]:
        return list(load_dict(run_id, TRAINING_DRIFT)["features"])

    # --- versions' records -------------------------------------------------------------------

    def register(self, model: str, registration: Registration) -> int:
        mlflow = _mlflow()
        with _run(run_id=registration.run_id):
            # The reference every drift check of this version compares with.
            mlflow.log_dict(registration.profile.to_dict(), PROFILE)
            mlflow.log_metrics(dict(registration.metrics))
            mlflow.log_dict(dict(registration.slices), SLICES)
            mlflow.set_tag("calibrated", str(registration.calibrated))
            for name, figure in registration.figures.items():
                mlflow.log_figure(figure, f"{PLOTS}/{name}")
            version = _log_model(
                registration.model,
                MODEL,
                registration.sample,
                registration.sample_scores,
                model,
            )
        tags = {
            **registration.metrics,
            "calibrated": registration.calibrated,
            "mlflow_run_id": registration.run_id,
        }
        self._set_version_tags(model, version, tags)
        return version

    @_classified("MLflow model version tags")
    def _set_version_tags(self, model: str, version: int, tags: dict[str, object]) -> None:
        mlflow_client = client()
        for key, value in tags.items():
            mlflow_client.set_model_version_tag(model, str(version), key, str(value))

    def reference_profile(self, run_id: str) -> Profile:
        return Profile.from_dict(load_dict(run_id, PROFILE))

    def card(self, run_id: str) -> dict | None:
        try:
            return load_dict(run_id, MODEL_CARD)
        except PermanentError:  # trained before model cards, or not evaluated yet
            return None

    @_classified("MLflow model version")
    def save_card(self, model: str, version: int, card: dict, description: str) -> None:
        """The card as a JSON artifact of the version's run, and its Markdown as the
        version's description."""
        mlflow_client = client()
        mlflow_client.log_dict(card["mlflow_run_id"], card, MODEL_CARD)
        mlflow_client.update_model_version(model, str(int(version)), description=description)

    # --- the store itself --------------------------------------------------------------------

    def prepare(self) -> None:
        prepare()

    @_classified("MLflow registered model")
    def delete_model(self, model: str) -> None:
        client().delete_registered_model(model)


_current: list[ModelStore] = []


def store() -> ModelStore:
    """The model store steps use: the MLflow store, unless :func:`using` put another in place."""
    if not _current:
        _current.append(MlflowModelStore())
    return _current[-1]


@contextmanager
def using(other: ModelStore) -> Iterator[ModelStore]:
    """Steps use ``other`` inside this block (an in-memory store in unit tests of steps)."""
    _current.append(other)
    try:
        yield other
    finally:
        _current.remove(other)
