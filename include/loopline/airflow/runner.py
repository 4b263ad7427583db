"""Running loopline's DAGs without a scheduler, through Airflow's own task execution
(``dag.test``): what the CLI's ``run``, ``train`` and ``replay`` do.

Each run prints one line (DAG, day, state, seconds) and, when it fails, the error of the task
that failed; Airflow's task logs go to a file. ``replay`` runs a date range day by day as the
scheduler would: the daily DAG, then the labels DAG, then any training the trigger queued, so the
closed loop runs on one's own data in one command.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loopline.adapters import settings

ERROR_LINE = re.compile(
    r"(?:AirflowFailException|[A-Za-z]+Error|[A-Za-z]+Exception): (?P<message>.+?)(?:\"|$)"
)


@dataclass(frozen=True)
class RunOutcome:
    dag_id: str
    label: str
    state: str
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("success", "skipped")

    def line(self) -> str:
        text = f"  {self.dag_id} {self.label}: {self.state} ({self.seconds:.1f}s)"
        return text + (f"\n    {self.error}" if self.error else "")


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors, so Airflow's too) to a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class Runner:
    """Loads the repo's DAGs once and runs them with ``dag.test``, logging to ``log_path``."""

    def __init__(self, log_path: Path | None = None):
        self.log_path = log_path or settings.state_dir() / "logs" / "airflow-tasks.log"
        with output_to(self.log_path):
            from airflow.dag_processing.dagbag import DagBag

            self.bag = DagBag(str(settings.REPO_ROOT / "dags"))

    def dag(self, dag_id: str):
        dag = self.bag.get_dag(dag_id)
        if dag is None:
            raise LookupError(f"no DAG '{dag_id}' in {settings.REPO_ROOT / 'dags'}")
        return dag

    def _error(self, since: int) -> str | None:
        """The first error message written to the log after byte ``since``."""
        with open(self.log_path, errors="replace") as log:
            log.seek(since)
            for line in log:
                match = ERROR_LINE.search(line)
                if match and "Traceback" not in line:
                    return match.group("message").strip()[:2000]
        return None

    def run(self, dag_id: str, conf: dict, label: str) -> RunOutcome:
        dag = self.dag(dag_id)
        started, since = time.monotonic(), self.log_path.stat().st_size
        with output_to(self.log_path):
            run = dag.test(run_conf=conf)
        state = str(run.state)
        failed = state not in ("success", "skipped")
        return RunOutcome(
            dag_id, label, state, time.monotonic() - started, self._error(since) if failed else None
        )

    def queued_trainings(self, model: str) -> list[tuple[str, dict]]:
        """Training runs the retraining trigger queued (no scheduler starts them here)."""
        from airflow.models import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            runs = (
                session.query(DagRun)
                .filter(DagRun.dag_id == f"{model}_train", DagRun.state == "queued")
                .order_by(DagRun.run_after)
                .all()
            )
            return [(r.run_id, dict(r.conf or {})) for r in runs]

    def finish_queued(self, run_id: str, state: str) -> None:
        """Mark a queued run done once its work ran as its own ``dag.test`` run."""
        from airflow.models import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            session.query(DagRun).filter(DagRun.run_id == run_id).update({DagRun.state: state})

    def run_queued_trainings(self, model: str) -> list[RunOutcome]:
        outcomes = []
        for run_id, conf in self.queued_trainings(model):
            outcome = self.run(f"{model}_train", conf, conf.get("end_date", run_id))
            self.finish_queued(run_id, "success" if outcome.ok else "failed")
            outcomes.append(outcome)
        return outcomes


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
