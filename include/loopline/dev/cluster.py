"""The team setup on one machine, without Docker: docker-compose's topology as local processes
on loopback (``loopline up --executor celery --workers N``, and the cluster test).

* PostgreSQL: the embedded server (Airflow's metadata and Celery's results, MLflow, warehouse);
* a Redis broker (Debian's ``redis-server``, which ``make test`` installs);
* an S3-API server (moto's server mode, as the tests' own) with the compose file's buckets: the
  lake, landing zone, labels, reports and MLflow's artifacts live there;
* the MLflow tracking **server** over HTTP, its artifacts on that S3;
* Airflow's scheduler, dag-processor, api-server and triggerer (CeleryExecutor), and N
  ``airflow celery worker`` processes, each with its own Airflow home, loopline state folder
  and temporary folder, and its own task-instance host name (127.0.0.N): no folder is shared
  between workers, or with the scheduler.

Every service takes its environment from :mod:`loopline.dev.topology`, which a test checks
against docker-compose.yaml. Nothing outlives the cluster: each process runs under the stack's
guard (``loopline.dev.stack``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from loopline.adapters import settings, storage
from loopline.dev import topology
from loopline.dev.pgserver import LocalPostgres
from loopline.dev.stack import STOP_GRACE_SECONDS, LocalAirflow, die_with_parent

REDIS = "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    """A server started under the stack's guard, up once ``ready`` answers."""

    name: str
    args: list[str]
    log: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        guard = [sys.executable, "-m", "loopline.dev.stack", "--parent", str(os.getpid())]
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(
                [*guard, "--grace", str(STOP_GRACE_SECONDS), "--", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited: see {self.log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS + 30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait(ready: Callable[[], bool], service: Service, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.alive()
        if ready():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{service.name} did not come up within {timeout:.0f}s: see {service.log}")


def _http_up(url: str):
    def ready() -> bool:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    return ready


def _redis_up(port: int):
    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return ready


@dataclass
class LocalCluster:
    """The compose topology on loopback under ``root`` (see the module docstring)."""

    root: Path
    workers: int = 2
    port: int = 8080
    # Settings of this cluster on top of the topology's (a test shortens timeouts, pauses a
    # worker at a fault point: ``worker_env`` per worker, 1-based).
    overrides: dict[str, str] = field(default_factory=dict)
    worker_env: dict[int, dict[str, str]] = field(default_factory=dict)
    server: LocalPostgres | None = None
    services: list[Service] = field(default_factory=list)
    airflow: LocalAirflow | None = None
    endpoints: topology.Endpoints | None = None
    secrets: topology.Secrets | None = None

    def worker_root(self, i: int) -> Path:
        return self.root / f"worker{i}"

    def worker_host(self, i: int) -> str:
        return f"127.0.0.{i + 1}"

    def environment(self) -> dict[str, str]:
        """The topology's environment for every Airflow service of this cluster."""
        return {
            **topology.airflow_environment(self.endpoints, self.secrets),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "loopline.dev.topology.worker_hostname",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "PYTHONPATH": str(settings.REPO_ROOT / "include"),
        }

    def loopline_environment(self) -> dict[str, str]:
        """What points a loopline process (a test, the CLI) at this cluster's stores."""
        keep = {k: v for k, v in self.environment().items() if not k.startswith("AIRFLOW")}
        return {**keep, **{k: v for k, v in self.overrides.items() if k.startswith("LOOPLINE")}}

    def write_env_file(self) -> Path:
        """``env.sh`` (0600): ``source`` it to point this shell's loopline at the cluster."""
        import shlex

        path = self.root / "env.sh"
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.loopline_environment().items()]
        path.write_text("\n".join(sorted(lines)) + "\n")
        path.chmod(0o600)
        return path

    def _worker_environment(self, i: int) -> dict[str, str]:
        base = self.worker_root(i)
        folders = {name: base / name for name in ("airflow", "home", "tmp")}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        return {
            "AIRFLOW_HOME": str(folders["airflow"]),
            "LOOPLINE_HOME": str(folders["home"]),
            "TMPDIR": str(folders["tmp"]),
            "LOOPLINE_WORKER_HOST": self.worker_host(i),
            **self.worker_env.get(i, {}),
        }

    def _buckets(self) -> None:
        storage.create_buckets(
            topology.BUCKETS,
            endpoint=self.endpoints.s3,
            key=self.secrets.s3_user,
            secret=self.secrets.s3_password,
            region=topology.REGION,
        )

    def _service(
        self, name: str, args: list[str], env: dict[str, str], ready: Callable[[], bool]
    ) -> None:
        service = Service(name, args, self.root / f"{name}.log", env)
        service.start()
        self.services.append(service)
        _wait(ready, service, timeout=180)

    def start(self) -> None:
        """Every service, in the order compose's health checks impose."""
        if not os.access(REDIS, os.X_OK):
            raise RuntimeError(f"{REDIS} is missing: sudo apt-get install -y redis-server")
        self.root.mkdir(parents=True, exist_ok=True)
        self.server = self.server or LocalPostgres(settings.embedded_dir())
        self.server.start()
        passwords = self.server.passwords()
        ports = {name: free_port() for name in ("redis", "s3", "mlflow")}
        self.endpoints = topology.Endpoints(
            postgres=f"127.0.0.1:{self.server.port}",
            redis=f"127.0.0.1:{ports['redis']}",
            s3=f"http://127.0.0.1:{ports['s3']}",
            mlflow=f"http://127.0.0.1:{ports['mlflow']}",
            api=f"http://127.0.0.1:{self.port}",
        )
        self.secrets = topology.Secrets(
            airflow_db=passwords["airflow"],
            writer=passwords["loopline_writer"],
            s3_user="loopline-cluster",
            s3_password=settings.generated_secret(self.root, "s3_secret"),
            mlflow_db=passwords["mlflow"],
        )
        base = {**os.environ}
        redis = [REDIS, "--port", str(ports["redis"]), "--bind", "127.0.0.1", "--save", ""]
        self._service("redis", [*redis, "--appendonly", "no"], base, _redis_up(ports["redis"]))
        s3 = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(ports["s3"])]
        self._service("s3", s3, base, _http_up(self.endpoints.s3))
        self._buckets()
        mlflow = topology.mlflow_server_command(
            self.endpoints, self.secrets, "127.0.0.1", ports["mlflow"]
        )
        mlflow[0] = str(Path(sys.executable).with_name("mlflow"))
        mlflow_env = {**base, **topology.s3_environment(self.endpoints, self.secrets)}
        self._service("mlflow", mlflow, mlflow_env, _http_up(f"{self.endpoints.mlflow}/health"))
        environment = self.environment()
        self.airflow = LocalAirflow(
            self.root / "scheduler" / "airflow",
            environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
            port=self.port,
            executor="CeleryExecutor",
            shared={**environment, "LOOPLINE_HOME": str(self.root / "scheduler" / "home")},
            workers=[self._worker_environment(i) for i in range(1, self.workers + 1)],
            overrides=self.overrides,
        )
        self.airflow.migrate()
        self.airflow.start()
        self.write_env_file()

    def stop(self) -> None:
        if self.airflow is not None:
            self.airflow.stop()
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    @contextmanager
    def running(self) -> Iterator[LocalCluster]:
        with ExitStack() as stack:
            stack.callback(self.stop)
            self.start()
            yield self

    def kill_worker(self, i: int) -> None:
        """SIGKILL a worker and every process below its guard (a machine lost mid-task); the
        stack's health checks no longer count it."""
        import psutil

        process = self.airflow.processes.pop(f"worker{i}")
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        for p in tree:
            with suppress(psutil.NoSuchProcess):
                p.kill()
        process.wait()

    def local_files(self) -> list[Path]:
        """Data files (Parquet, CSV) under any worker's or the scheduler's folders."""
        folders = [self.root / "scheduler"]
        folders += [self.worker_root(i) for i in range(1, self.workers + 1)]
        return [p for f in folders for p in f.rglob("*") if p.suffix in (".parquet", ".csv")]
