"""The local Airflow stack that `make run` drives: api-server (UI), scheduler, dag-processor and
triggerer as child processes, LocalExecutor, metadata in the embedded PostgreSQL's ``airflow``
database (SQLite would serialise the scheduler). Airflow is driven through its own CLI; run
states are read from its metadata database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from loopline import config

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
FINISHED = ("success", "failed")


@dataclass
class LocalAirflow:
    home: Path
    metadata_url: str
    port: int = 8080
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            **config.airflow_environment(self.home),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{self.port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        }

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run an ``airflow`` CLI command against this stack; a failure carries its stderr."""
        result = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and result.returncode != 0:
            output = (result.stderr.strip() or result.stdout.strip())[-3000:]
            raise RuntimeError(f"airflow {' '.join(args)} exited {result.returncode}:\n{output}")
        return result

    def migrate(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate")

    def start(self) -> None:
        for component in COMPONENTS:
            log = open(self.logs / f"{component}.log", "a")  # noqa: SIM115 - lives with the child
            args = [component] + (["--port", str(self.port)] if component == "api-server" else [])
            self.processes[component] = subprocess.Popen(
                [str(Path(sys.executable).with_name("airflow")), *args],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"Airflow {name} exited with {process.returncode}: see {self.logs / name}.log"
                )

    def wait_healthy(self, timeout: float = 180) -> None:
        url = f"http://localhost:{self.port}/api/v2/monitor/health"
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
            time.sleep(2)
        raise TimeoutError(f"Airflow did not become healthy within {timeout:.0f}s: see {self.logs}")

    def _query(self, sql: str, **params) -> list:
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
            time.sleep(2)
        missing = sorted(set(dag_ids) - found)
        raise TimeoutError(f"DAGs {missing} were not parsed within {timeout:.0f}s: see {self.logs}")

    def run_states(self, dag_id: str) -> dict[str, int]:
        rows = self._query(
            "SELECT state, count(*) FROM dag_run WHERE dag_id = :d GROUP BY state", d=dag_id
        )
        return {str(state): int(n) for state, n in rows}

    def wait_runs(self, dag_id: str, expected: int, timeout: float, progress=None) -> dict:
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
            time.sleep(5)
        raise TimeoutError(f"{dag_id}: runs not finished within {timeout:.0f}s")

    def password(self) -> str:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return json.loads(path.read_text()).get("admin", "?") if path.exists() else "?"

    @contextmanager
    def running(self) -> Iterator[LocalAirflow]:
        """Started on entry, stopped on exit; Ctrl-C is a normal way out."""
        self.start()
        try:
            yield self
        except KeyboardInterrupt:
            print("\nstopping ...")
        finally:
            self.stop()

    def stay_up(self) -> None:
        print("\nThe Airflow UI stays up: press Ctrl-C to stop it.", flush=True)
        signal.pause()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
