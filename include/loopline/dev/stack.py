"""The local Airflow stack that `make run` drives: api-server (UI), scheduler, dag-processor and
triggerer as child processes, LocalExecutor, metadata in the embedded PostgreSQL's ``airflow``
database (SQLite would serialise the scheduler). Airflow is driven through its REST API (its
own CLI for the rest); run states are read from its metadata database.

Nothing the stack starts may outlive it. Each component runs under a small guard process
(``python -m loopline.dev.stack``, see :func:`guard`) that

* gets SIGTERM when the process that started the stack dies, however it dies (SIGKILL
  included): ``PR_SET_PDEATHSIG``, set in ``preexec_fn``, which CPython runs after any
  user/group change of ``Popen`` (a credential change would clear it) and before ``exec``;
* is a child subreaper (``PR_SET_CHILD_SUBREAPER``): whatever its component forks and orphans
  (LocalExecutor workers, task processes in their own process groups, the api-server's
  workers) is re-parented to it rather than to init, so it can find, stop and reap them all;
* on SIGTERM, SIGINT or SIGHUP signals its component's process group, gives it
  ``STOP_GRACE_SECONDS`` to exit, then terminates and kills every remaining descendant; it
  does the same sweep when its component exits on its own, and exits with its status.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from loopline.adapters import settings

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Each component's own arguments: the api-server on loopback only; no log servers (every task
# writes under the one local log folder the api-server reads; a log server listens on every
# interface and cannot be told otherwise).
COMPONENT_ARGS = {
    "api-server": ["--host", "127.0.0.1"],
    "scheduler": ["--skip-serve-logs"],
    "triggerer": ["--skip-serve-logs"],
}
FINISHED = ("success", "failed")
# What a component gets to exit on SIGTERM (the scheduler waits for running tasks) before its
# guard terminates, then kills, what is left.
STOP_GRACE_SECONDS = 10.0
# Modules every task process needs (the task SDK, the DAG factories, the steps and what they
# import lazily: Great Expectations, MLflow's SQL stores and model flavour, plots), for a stack
# whose code does not change while it runs (the demo; not `loopline up`, where a developer
# edits the steps and expects the next task to run the new code). The scheduler's
# LocalExecutor then starts its workers from a forkserver that imports these once; workers
# fork each task process, which so inherits them instead of paying 5-15 s of imports per task.
TASK_PRELOAD = (
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.jobs.job",
    "loopline.airflow.dags",
    "loopline.steps.ingest",
    "loopline.steps.validate",
    "loopline.steps.score",
    "loopline.steps.check_drift",
    "loopline.steps.decide_retraining",
    "loopline.steps.labels",
    "loopline.steps.train",
    "loopline.steps.evaluate",
    "loopline.steps.promote",
    "great_expectations",
    "mlflow",
    "mlflow.pyfunc",
    "mlflow.sklearn",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "alembic.command",
    "loopline.adapters.skops_io",
    "matplotlib.pyplot",
    "git",
)
# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


# Resolved once here: a ``preexec_fn`` runs between fork and exec, where looking a symbol up
# (the dynamic loader's lock, held by another thread at fork time) could deadlock.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def _prctl(option: int, value: int) -> None:
    if _PRCTL(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}, {value}): {os.strerror(errno)}")


def die_with_parent() -> None:
    """``preexec_fn``: SIGTERM this child when the thread that started it exits (Linux).

    Call ``Popen`` from a thread that lives as long as the child should (the main thread)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM, SIGHUP and SIGINT raise KeyboardInterrupt here, so the ``finally`` blocks that
    stop what was started run; the previous handlers come back on exit. SIGINT is set too:
    a process started in the background by a script inherits SIGINT ignored, and Python then
    leaves it ignored, so `kill -INT` would otherwise do nothing."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _shielded() -> Iterator[None]:
    """Stop signals only print a note while a stop is under way (a second Ctrl-C must not
    leave it half done; the guards stop their components even if we die)."""

    def note(signum: int, frame: FrameType | None) -> None:
        print("\nstill stopping ...", file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, note) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@dataclass
class LocalAirflow:
    home: Path
    metadata_url: str
    port: int = 8080
    # Settings of this stack on top of the defaults below (the demo tunes a few).
    overrides: dict[str, str] = field(default_factory=dict)
    # Modules task processes inherit instead of importing them (e.g. TASK_PRELOAD); empty:
    # Airflow's default, every task imports what it needs (so it runs the current code).
    preload: tuple[str, ...] = ()
    # The Celery setup (loopline.dev.cluster): the executor, the topology's environment for
    # every component, and one environment per Celery worker (its own home and temp folders).
    executor: str = "LocalExecutor"
    shared: dict[str, str] = field(default_factory=dict)
    workers: list[dict[str, str]] = field(default_factory=list)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _token: str | None = field(default=None, repr=False)

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        preload = (
            {
                "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
                "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": ",".join(self.preload),
                "MPLBACKEND": "Agg",  # reports are drawn headless; pyplot may be preloaded
            }
            if self.preload
            else {}
        )
        return {
            **os.environ,
            **settings.airflow_environment(self.home),
            **self.shared,
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            **preload,
            **self.overrides,
        }

    def _airflow_program(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run an ``airflow`` CLI command against this stack; a failure carries its stderr."""
        result = subprocess.run(
            [self._airflow_program(), *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=die_with_parent,
        )
        if check and result.returncode != 0:
            output = (result.stderr.strip() or result.stdout.strip())[-3000:]
            raise RuntimeError(f"airflow {' '.join(args)} exited {result.returncode}:\n{output}")
        return result

    def migrate(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate")

    def start(self) -> None:
        """Each component (and each Celery worker) under its guard, in a session of its own (a
        Ctrl-C at the terminal reaches only us; we stop them in order)."""
        for component in COMPONENTS:
            args = [component, *COMPONENT_ARGS.get(component, [])]
            if component == "api-server":
                args += ["--port", str(self.port)]
            self._spawn(component, args, self.environment(), self.logs / f"{component}.log")
        for i, env in enumerate(self.workers, start=1):
            # No log server: it would listen on every interface (see COMPONENT_ARGS); each
            # worker's task logs stay in its own home (AIRFLOW_HOME/logs).
            args = ["celery", "worker", "--celery-hostname", f"worker{i}", "--skip-serve-logs"]
            log = Path(env["AIRFLOW_HOME"]) / "worker.log"
            self._spawn(f"worker{i}", args, {**self.environment(), **env}, log)

    def _spawn(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "a")  # noqa: SIM115 - lives with the child
        guard_args = ["--parent", str(os.getpid()), "--grace", str(STOP_GRACE_SECONDS)]
        try:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", __name__, *guard_args, "--"]
                + [self._airflow_program(), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        finally:
            log.close()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"Airflow {name} exited with {process.returncode}: see {self.logs / name}.log"
                )

    def wait_healthy(self, timeout: float = 180) -> None:
        url = f"{self.url}/api/v2/monitor/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    health = json.load(response)
                if health["scheduler"]["status"] == "healthy":
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow did not become healthy within {timeout:.0f}s: see {self.logs}")

    # --- the REST API (cheaper than a CLI process per call: no Airflow import) ----------------

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """Call Airflow's REST API (``/api/v2/...``) as the admin user; errors carry the reply."""
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._login()
            request = urllib.request.Request(
                f"{self.url}/api/v2/{path.lstrip('/')}",
                data=None if body is None else json.dumps(body).encode(),
                method=method,
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Content-Type": "application/json",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return json.load(response) if response.status != 204 else {}
            except urllib.error.HTTPError as error:
                if error.code == 401 and attempt == 1:
                    self._token = None  # expired: log in again
                    continue
                detail = error.read().decode(errors="replace")[:2000]
                raise RuntimeError(f"Airflow API {method} {path}: {error.code} {detail}") from None
        raise AssertionError("unreachable")

    def _login(self) -> str:
        request = urllib.request.Request(
            f"{self.url}/auth/token",
            data=json.dumps({"username": "admin", "password": self.password()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["access_token"]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict) -> str:
        """A manual run of ``dag_id`` with ``conf``; returns its run id."""
        return self.api("POST", f"dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})[
            "dag_run_id"
        ]

    def backfill(
        self,
        dag_id: str,
        start: str,
        end: str,
        *,
        max_active_runs: int,
        reprocess: str = "none",
    ) -> int:
        """A backfill of ``dag_id`` over the logical dates ``start`` .. ``end`` (ISO); its id."""
        body = {
            "dag_id": dag_id,
            "from_date": start,
            "to_date": end,
            "max_active_runs": max_active_runs,
            "reprocess_behavior": reprocess,
        }
        return int(self.api("POST", "backfills", body)["id"])

    def cancel_unfinished_backfills(self, dag_id: str) -> list[int]:
        """Cancel the backfills of ``dag_id`` that an earlier stack left unfinished, returning
        their ids. A stack stopped before its scheduler marked a backfill complete (Ctrl-C
        after `make run`'s summary) made the next `make run` fail: 409 "There is already a
        running backfill for dag churn_daily"."""
        found = self.api("GET", f"backfills?dag_id={dag_id}&limit=100")["backfills"]
        unfinished = [b["id"] for b in found if b.get("completed_at") is None]
        for backfill_id in unfinished:
            self.api("PUT", f"backfills/{backfill_id}/cancel")
        return unfinished

    def wait_backfill(self, backfill_id: int, timeout: float = 120) -> None:
        """Until the scheduler has marked the backfill complete (its runs finished): a DAG takes
        one backfill at a time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.api("GET", f"backfills/{backfill_id}").get("completed_at"):
                return
            time.sleep(1)
        raise TimeoutError(f"backfill {backfill_id} not complete within {timeout:.0f}s")

    # --- the metadata database -----------------------------------------------------------------

    def _query(self, sql: str, **params: object) -> list:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.metadata_url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).all()
        finally:
            engine.dispose()

    def wait_dags(self, dag_ids: list[str], timeout: float = 240) -> None:
        """Until the dag-processor has serialised every DAG we are about to run."""
        deadline, found = time.monotonic() + timeout, set()
        while time.monotonic() < deadline:
            self.check_alive()
            found = {r[0] for r in self._query("SELECT dag_id FROM serialized_dag")}
            if set(dag_ids) <= found:
                return
            time.sleep(1)
        missing = sorted(set(dag_ids) - found)
        raise TimeoutError(f"DAGs {missing} were not parsed within {timeout:.0f}s: see {self.logs}")

    def run_states(self, dag_id: str) -> dict[str, int]:
        rows = self._query(
            "SELECT state, count(*) FROM dag_run WHERE dag_id = :d GROUP BY state", d=dag_id
        )
        return {str(state): int(n) for state, n in rows}

    def wait_runs(
        self,
        dag_id: str,
        expected: int,
        timeout: float,
        progress: Callable[[str, int, int, dict], None] | None = None,
    ) -> dict:
        """Until at least ``expected`` runs of ``dag_id`` have finished (success or failed) and
        none is queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            states = self.run_states(dag_id)
            done = sum(states.get(s, 0) for s in FINISHED)
            if progress:
                progress(dag_id, done, expected, states)
            if done >= expected and done == sum(states.values()):
                return states
            time.sleep(2)
        raise TimeoutError(f"{dag_id}: runs not finished within {timeout:.0f}s")

    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def password(self) -> str:
        path = self.password_file()
        return json.loads(path.read_text()).get("admin", "?") if path.exists() else "?"

    # --- lifecycle -------------------------------------------------------------------------------

    @contextmanager
    def running(self) -> Iterator[LocalAirflow]:
        """Started on entry, stopped on exit, however we leave: an error, Ctrl-C, SIGTERM or
        SIGHUP (the last three end the block quietly)."""
        try:
            with stop_on_signals():
                self.start()
                yield self
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
        finally:
            self.stop()

    def stay_up(self) -> None:
        print("\nThe Airflow UI stays up: press Ctrl-C to stop it.", flush=True)
        while True:
            self.check_alive()
            time.sleep(2)

    def stop(self) -> None:
        """Ask every guard to stop its component (they do so in parallel), then wait for them."""
        with _shielded():
            for process in self.processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in self.processes.values():
                try:
                    process.wait(timeout=STOP_GRACE_SECONDS + 30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            self.processes.clear()


# --- the guard: one per component, started as ``python -m loopline.dev.stack`` ----------------


class _Guard:
    def __init__(self, command: list[str], grace: float) -> None:
        self.command, self.grace = command, grace
        self.stop_signal: int | None = None
        self.status: int | None = None
        self.child: subprocess.Popen | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signal = signum

    def reap(self) -> None:
        """Collect every exited child (adopted orphans too); note the component's status."""
        while True:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.child is not None and pid == self.child.pid:
                self.status = os.waitstatus_to_exitcode(raw)
                self.child.returncode = self.status  # reaped here, not by Popen

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.status is None and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.1)

    def sweep(self) -> None:
        """Terminate, then kill, every process below us, until none is left."""
        import psutil

        me = psutil.Process()
        for signum, patience in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)) * 3:
            alive = [p for p in me.children(recursive=True) if _running(p)]
            if not alive:
                break
            for process in alive:
                with suppress(psutil.Error):
                    process.send_signal(signum)
            deadline = time.monotonic() + patience
            while time.monotonic() < deadline:
                self.reap()
                if not any(_running(p) for p in me.children(recursive=True)):
                    break
                time.sleep(0.1)
        self.reap()

    def run(self) -> int:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        self.child = subprocess.Popen(self.command, preexec_fn=die_with_parent)
        while self.status is None and self.stop_signal is None:
            self.wait(0.5)
        if self.status is None:
            # Our own process group: the component and the workers it forked (task processes
            # sit in groups of their own: the sweep finds them).
            os.killpg(os.getpgrp(), signal.SIGTERM)
            self.wait(self.grace)
        self.sweep()
        status = self.status if self.status is not None else -signal.SIGKILL
        return status if status >= 0 else 128 - status


def _running(process: subprocess.Popen) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def guard(argv: list[str]) -> int:
    """``--parent PID --grace SECONDS -- COMMAND...``: run COMMAND until it exits or we are
    asked to stop (or our parent dies), then leave no process of its tree behind."""
    separator = argv.index("--")
    options, command = argv[:separator], argv[separator + 1 :]
    parent = int(options[options.index("--parent") + 1])
    grace = float(options[options.index("--grace") + 1])
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != parent:
        return 1  # the parent died before PR_SET_PDEATHSIG took effect: nothing to run for
    return _Guard(command, grace).run()


if __name__ == "__main__":
    sys.exit(guard(sys.argv[1:]))
