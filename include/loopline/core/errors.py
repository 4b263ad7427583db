"""One exception hierarchy for the whole package: whether a retry can help is part of an error's
type, and every message says where (model, date, file, column) and what to do.

- :class:`PermanentError`: a retry cannot fix it (a broken spec, a file that does not parse, a
  day with too many bad rows, a model that needs a column the data lacks). The Airflow layer
  fails the task at once instead of spending its retries.
- :class:`TransientError`: it may pass on its own (upstream files not there yet, a database that
  is restarting, a file replaced while it was read). Left to Airflow's retries.

An exception from outside the package (a driver's, the network's) is treated as transient by the
Airflow layer, as Airflow itself would.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any


class LooplineError(Exception):
    """Base of every loopline error: a located message, and whether a retry may help."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        day: dt.date | None = None,
        file: str | None = None,
        column: str | None = None,
        hint: str | None = None,
    ):
        self.model, self.day, self.file, self.column, self.hint = model, day, file, column, hint
        self.detail = message
        super().__init__(self._located(message))

    def _located(self, message: str) -> str:
        where = []
        if self.model:
            where.append(f"model '{self.model}'")
        if self.day:
            where.append(f"date {self.day}")
        if self.file:
            where.append(f"file {self.file}")
        if self.column:
            where.append(f"column '{self.column}'")
        text = f"{', '.join(where)}: {message}" if where else message
        return f"{text}. What to do: {self.hint}" if self.hint else text


class PermanentError(LooplineError):
    """A retry cannot fix it: fail at once and say what to fix."""

    retryable = False


class TransientError(LooplineError):
    """It may pass on its own: retried by Airflow."""

    retryable = True


class SpecError(PermanentError, ValueError):
    """A spec file that cannot be loaded; the message names the file and the field."""

    def __init__(self, path: str | Path, field: str, message: str):
        self.path, self.field = path, field
        super().__init__(f"{path}: field '{field}': {message}")


class UnknownModelError(PermanentError, LookupError):
    """No spec file for the model name given (a typo, or another specs folder)."""


class LandingMissingError(TransientError):
    """No landing files for the day yet: upstream may be late."""


class UnreadableFileError(PermanentError):
    """A landing or label file that cannot be parsed as its type."""


class FileChangedError(PermanentError):
    """A file changed while the day was being processed: the day's plan no longer fits it, so
    retrying a shard cannot help; a re-run of the day plans it again."""


class BatchValidationError(PermanentError):
    """The day as a whole is unusable (a missing column, no rows, too many bad rows)."""

    def __init__(self, message: str, *, failed: list[dict] | None = None, **where: Any):
        self.failed = failed or []
        super().__init__(message, **where)


class LabelFileError(PermanentError):
    """A label file without the columns labels need."""


class TrainingDataError(PermanentError):
    """Not enough labelled data to train; the message names the setting and what the data has."""


class TooFewDaysError(TrainingDataError):
    """Fewer labelled days than the training needs: time, not a fix, may cure it (a scheduled
    training of a new model skips rather than fails)."""


class PredictionInputError(PermanentError):
    """The champion needs a column the day's rows do not have."""


class ModelArtifactError(PermanentError):
    """A model version whose artifact cannot be loaded (missing, truncated, not a model)."""


class RollbackError(PermanentError):
    """Nothing to roll back to, or the requested version does not exist."""


class NoChampionError(LooplineError):
    """No version carries the ``champion`` alias yet: nothing to score or compare with."""

    retryable = False


class DiskFullError(PermanentError):
    """No space left where loopline writes: a retry fills the same disk; free space first."""


class StoreUnavailableError(TransientError):
    """The warehouse, the model store or object storage cannot be reached right now."""
