"""Running loopline's DAGs without a scheduler, through Airflow's own task execution
(``dag.test``): what the CLI's ``run``, ``train`` and ``replay`` do.

Each run prints one line (DAG, day, state, seconds), what its tasks skipped and why (no champion
yet, too few labelled days), and, when it fails, the error of the task that failed; Airflow's
task logs go to a file of this command's own (two commands at once never read each other's
errors). ``replay`` runs a date range day by day as the scheduler would: the daily DAG, then the
labels DAG, then any training the trigger queued and those ``training.cron`` starts, so the
closed loop runs on one's own data in one command.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loopline.adapters import settings
from loopline.core.spec import ModelSpec

ERROR_LINE = re.compile(
    r"(?P<kind>AirflowFailException|[A-Za-z]+Error|[A-Za-z]+Exception): (?P<message>.+?)(?:\"|$)"
)
# Every run the CLI makes carries its process in its conf: a run whose process is gone (killed)
# is marked failed by the next CLI command, so it never blocks a retraining as "running".
CLI_KEY = "_loopline_cli"
# The PostgreSQL advisory lock two CLI commands take to write the DAGs to one metadata store.
DAG_SYNC_LOCK = 0x6C6F6F706C696E65  # "loopline"
TASK_LINE = re.compile(r"\[DAG TEST\] running task <TaskInstance: [^.]+\.(?P<task>\S+) ")
SKIP_LINE = re.compile(r"Skipping task\..*reason=(?P<q>['\"])(?P<reason>.*)(?P=q)")


@dataclass(frozen=True)
class RunOutcome:
    dag_id: str
    label: str
    state: str
    seconds: float
    error: str | None = None
    # What tasks skipped, and why (``task: reason``).
    skipped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.state in ("success", "skipped")

    def line(self) -> str:
        text = f"  {self.dag_id} {self.label}: {self.state} ({self.seconds:.1f}s)"
        text += "".join(f"\n    skipped {note}" for note in self.skipped)
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
        stamp = time.strftime("%Y%m%d-%H%M%S")
        default = settings.state_dir() / "logs" / "cli" / f"{stamp}-{os.getpid()}.log"
        self.log_path = log_path or default
        with output_to(self.log_path):
            from airflow.dag_processing.dagbag import DagBag

            self.bag = DagBag(str(settings.REPO_ROOT / "dags"))
            sync_dags()
        self.healed = heal_orphaned_runs()

    def dag(self, dag_id: str):
        dag = self.bag.get_dag(dag_id)
        if dag is None:
            raise LookupError(f"no DAG '{dag_id}' in {settings.REPO_ROOT / 'dags'}")
        return dag

    def _read(self, since: int) -> tuple[str | None, tuple[str, ...]]:
        """From byte ``since`` of the log: the error of the task that failed (Airflow's own
        failure message first, it carries loopline's located message), and each skip reason."""
        errors, skipped, task = [], [], "?"
        with open(self.log_path, errors="replace") as log:
            log.seek(since)
            for line in log:
                if found := TASK_LINE.search(line):
                    task = found.group("task")
                elif found := SKIP_LINE.search(line):
                    skipped.append(f"{task}: {found.group('reason')}")
                elif (found := ERROR_LINE.search(line)) and "Traceback" not in line:
                    errors.append((found.group("kind"), found.group("message").strip()))
        failed = [m for kind, m in errors if kind == "AirflowFailException"] or [
            m for _, m in errors
        ]
        return (failed[0][:2000] if failed else None), tuple(dict.fromkeys(skipped))

    def run(self, dag_id: str, conf: dict, label: str) -> RunOutcome:
        dag = self.dag(dag_id)
        started, since = time.monotonic(), self.log_path.stat().st_size
        marked = {**conf, CLI_KEY: {"pid": os.getpid(), "host": socket.gethostname()}}
        with output_to(self.log_path):
            run = dag.test(run_conf=marked)
        state = str(run.state)
        error, skipped = self._read(since)
        failed = state not in ("success", "skipped")
        return RunOutcome(
            dag_id, label, state, time.monotonic() - started, error if failed else None, skipped
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

    def replay(self, spec: ModelSpec, days: list[dt.date], *, scheduled: bool = True):
        """Day by day as the scheduler would: the daily DAG, the labels DAG, the trainings the
        trigger queued, and (``scheduled``) the trainings the spec's ``training.cron`` starts
        while the day's runs execute. Yields each :class:`RunOutcome` as it finishes."""
        for day in days:
            conf = {"partition_date": day.isoformat()}
            for kind in ("daily", "labels"):
                yield self.run(f"{spec.name}_{kind}", conf, day.isoformat())
            yield from self.run_queued_trainings(spec.name)
            if scheduled:
                for end in scheduled_trainings(spec, day):
                    conf = {"end_date": end.isoformat(), "reason": "scheduled (training.cron)"}
                    yield self.run(f"{spec.name}_train", conf, f"{end} (scheduled)")


def scheduled_trainings(spec: ModelSpec, day: dt.date) -> list[dt.date]:
    """The training runs ``training.cron`` starts while day ``day``'s runs execute (the day
    after it, when its data interval has closed): each trains on the data of its run day."""
    if not spec.training.cron:
        return []
    from croniter import croniter

    start = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    ticks = croniter(spec.training.cron, start - dt.timedelta(seconds=1))
    found = []
    while (tick := ticks.get_next(dt.datetime)) < start + dt.timedelta(days=1):
        found.append(tick.date())
    return sorted(set(found))


def sync_dags() -> None:
    """Write the DAG bundles to the metadata store as ``dag.test`` does, under a lock: two
    commands started together on a new store both inserted the same DAGs and assets, and one
    failed on a unique key before its first task. Once written, each ``dag.test``'s own sync
    finds them unchanged."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    with _metadata_lock(DAG_SYNC_LOCK):
        manager.sync_bundles_to_db()
        for bundle in manager.get_all_dag_bundles():
            if not bundle.is_initialized:
                bundle.initialize()
            bag = BundleDagBag(
                dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name
            )
            sync_bag_to_db(bag, bundle.name, bundle.version)


@contextmanager
def _metadata_lock(key: int) -> Iterator[None]:
    """A PostgreSQL advisory lock on the metadata store, held on a DB-API connection of its own
    (from Airflow's engine) while the block's sessions commit; SQLite has one writer at a time
    anyway."""
    from airflow import settings as airflow_settings

    if airflow_settings.engine.dialect.name != "postgresql":
        yield
        return
    conn = airflow_settings.engine.raw_connection()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (key,))
        conn.commit()
        try:
            yield
        finally:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))
            conn.commit()
    finally:
        conn.close()


def heal_orphaned_runs() -> list[str]:
    """Mark failed the runs a CLI command started on this host whose process is gone (killed
    mid-run, they stay ``running`` for ever, and the retrain trigger counts them as running);
    returns their run ids."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    host, healed = socket.gethostname(), []
    with create_session() as session:
        runs = session.query(DagRun).filter(
            DagRun.state.in_([DagRunState.RUNNING, DagRunState.QUEUED])
        )
        for run in runs:
            mark = (run.conf or {}).get(CLI_KEY) or {}
            if mark.get("host") == host and not _alive(int(mark.get("pid", 0))):
                run.state = DagRunState.FAILED
                healed.append(run.run_id)
    return healed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
