"""The compose stack agrees with itself and with the code: docker-compose.yaml, Dockerfile,
.env.example, the postgres init script, include/sql/roles.sql and the variables loopline reads.

Docker cannot run here, so these tests read the files (PyYAML resolves the anchors and merge
keys as Compose does) and check what would otherwise only fail at `docker compose up`.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = REPO / ".env.example"
README = REPO / "README.md"
REQUIREMENTS = REPO / "requirements.txt"
ROLES_SQL = REPO / "include" / "sql" / "roles.sql"

EXPECTED_SERVICES = {
    "postgres",
    "redis",
    "minio",
    "minio-init",
    "mlflow",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
# The services that read or write buckets, so must wait for minio-init to have created them.
BUCKET_USERS = {"mlflow", "airflow-worker"}
CODE_ROOT_IN_IMAGE = "/opt/airflow"
# The placeholder of every secret in .env.example; airflow-init refuses to start while one is left.
PLACEHOLDER = "change-me"

# Variables the code reads that compose need not set, and why their defaults are right there.
OPTIONAL_ENV = {
    # loopline.adapters.settings: <repo>/include/specs, i.e. /opt/airflow/include/specs (mounted).
    "LOOPLINE_SPECS_DIR": "defaults to the mounted include/specs",
    # loopline.airflow.context: 300 s between retries in production; only tests lower it.
    "LOOPLINE_RETRY_DELAY_SECONDS": "defaults to the production 300 s",
    # loopline.adapters.model_store: falls back to `git rev-parse`, then "unknown".
    "LOOPLINE_GIT_COMMIT": "defaults to git, else 'unknown'",
    # loopline.adapters.settings: 2 retries is the production setting; the CLI sets 0.
    "LOOPLINE_TASK_RETRIES": "defaults to the production 2 retries",
    # loopline.core.faults: the reliability suite's crash points; never set in production.
    "LOOPLINE_FAULT_POINT": "tests only",
    "LOOPLINE_FAULT_PAUSE": "tests only",
    "LOOPLINE_FAULT_PAUSE_FILE": "tests only",
    # loopline.adapters.settings: the analysts' limits, 30 and 10 minutes by default.
    "LOOPLINE_ANALYST_MAX_STATEMENT_MINUTES": "defaults to 30 minutes",
    "LOOPLINE_ANALYST_MAX_IDLE_MINUTES": "defaults to 10 minutes",
    # loopline.dev.topology: the loopback cluster names its workers; compose's have host names.
    "LOOPLINE_WORKER_HOST": "the loopback cluster only",
}

# os.environ.get("X"...), os.getenv("X"...), os.environ["X"] (not an assignment to it).
ENV_READ = re.compile(
    r"""os\.(?:environ\.get|getenv)\(\s*["']([A-Za-z_]\w*)["']"""
    r"""|os\.environ\[\s*["']([A-Za-z_]\w*)["']\s*\](?!\s*=(?!=))"""
)
# Compose interpolation: $$ is an escaped $ (left to the container's shell), ${X...} and $X are not.
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_]\w*)|\$([A-Za-z_]\w*)")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
SECRET_LOOKING = re.compile(r"[A-Za-z0-9+/=_-]{20,}")


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def airflow_services() -> dict[str, dict]:
    return {name: svc for name, svc in services().items() if name.startswith("airflow-")}


def environment(service: dict) -> dict[str, str | None]:
    """A service's environment, from either of compose's two forms."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: (pair[1] if len(pair) > 1 else None) for pair in pairs}
    return {key: None if value is None else str(value) for key, value in env.items()}


def command_args(service: dict) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def command_text(service: dict) -> str:
    return "\n".join(command_args(service))


def option(args: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in a command line."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def is_one_shot(service: dict) -> bool:
    # `restart: no` unquoted is YAML's false; both mean the same to compose.
    return service.get("restart") in ("no", False)


def mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume, short or long syntax."""
    found = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            found.append((str(volume.get("source", "")), str(volume["target"])))
        else:
            parts = volume.split(":")
            found.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return found


def without_interpolation(text: str) -> str:
    return re.sub(r"\$\{[^}]*\}", "x", text)


def postgres_url_parts(url: str) -> tuple[str | None, str | None, str]:
    """(user, host, database) of a PostgreSQL URL whose password is a ${VAR}."""
    parts = urlsplit(without_interpolation(url))
    return parts.username, parts.hostname, parts.path.lstrip("/")


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: line {line!r} is not KEY=VALUE"
            values[key.strip()] = value.strip().strip("\"'")
    return values


def required_airflow_version() -> str:
    match = re.search(r"^apache-airflow==([\w.]+)\s*$", REQUIREMENTS.read_text(), re.M)
    assert match, "requirements.txt: no `apache-airflow==<version>` pin"
    return match.group(1)


def image_tag(reference: str) -> str | None:
    """The tag of an image reference (a registry's :port is not a tag); None if untagged."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def minio_init_buckets() -> set[str]:
    buckets = set()
    for line in command_text(services()["minio-init"]).splitlines():
        words = line.split()
        if words[:2] == ["mc", "mb"]:
            buckets |= {w.split("/", 1)[1] for w in words[2:] if not w.startswith("-")}
    return buckets


def roles_sql_created() -> tuple[set[str], dict[str, str]]:
    """Roles, and database -> owner, that include/sql/roles.sql creates."""
    sql = ROLES_SQL.read_text()
    roles_block = re.search(r"CREATE ROLE.*?FROM \(VALUES(.*?)\)\s*AS", sql, re.S)
    databases_block = re.search(r"CREATE DATABASE.*?FROM \(VALUES(.*?)\)\s*AS", sql, re.S)
    roles = set(re.findall(r"'(\w+)'", roles_block.group(1))) if roles_block else set()
    roles |= set(re.findall(r"^\s*CREATE ROLE\s+(\w+)", sql, re.M | re.I))
    owners = (
        dict(re.findall(r"\('(\w+)',\s*'(\w+)'\)", databases_block.group(1)))
        if databases_block
        else {}
    )
    return roles, owners


# --- services -------------------------------------------------------------------------------


def test_expected_services_exist():
    missing = EXPECTED_SERVICES - set(services())
    assert not missing, f"docker-compose.yaml: services missing: {sorted(missing)}"


def test_readme_team_setup_services_exist():
    """Every `service` in the first column of the README's "Team setup" tables is in compose."""
    lines = README.read_text().splitlines()
    start = next(
        (i for i, line in enumerate(lines) if re.match(r"#{1,6}\s.*team setup", line, re.I)),
        None,
    )
    assert start is not None, (
        "README.md has no section whose heading contains 'Team setup' (the docker compose "
        "setup, with a table naming each service in backticks in its first column)"
    )
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    named = []
    for line in lines[start + 1 :]:
        heading = re.match(r"(#{1,6})\s", line)
        if heading and len(heading.group(1)) <= level:
            break
        cells = line.strip().strip("|").split("|") if line.lstrip().startswith("|") else []
        if cells and not re.fullmatch(r"\s*:?-+:?\s*", cells[0]):
            named += re.findall(r"`([^`]+)`", cells[0])
    assert named, "README.md 'Team setup': no table with `service` names in its first column"
    unknown = sorted(set(named) - set(services()))
    assert not unknown, (
        f"README.md 'Team setup' names services not in docker-compose.yaml: {unknown}"
    )


# --- images ---------------------------------------------------------------------------------


def test_every_image_is_pinned():
    for name, svc in services().items():
        if "build" in svc:
            assert svc.get("image"), f"service {name}: has `build` but no `image` name for it"
        reference = svc.get("image")
        assert reference, f"service {name}: neither `image` nor `build`"
        tag = image_tag(reference)
        assert tag or "@sha256:" in reference, f"service {name}: image {reference} has no tag"
        assert tag != "latest", f"service {name}: image {reference} is not pinned (latest)"


def test_built_image_is_named_after_the_airflow_version():
    version = required_airflow_version()
    for name, svc in services().items():
        if "build" in svc:
            tag = image_tag(svc["image"])
            assert tag == version, (
                f"service {name}: built image {svc['image']} should be tagged with the Airflow "
                f"version of requirements.txt, {version}"
            )


def test_dockerfile_base_is_pinned_to_the_required_airflow():
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", text, re.M | re.I)
    assert bases, "Dockerfile: no FROM line"
    for base in bases:
        tag = image_tag(base)
        assert tag and tag != "latest", f"Dockerfile: FROM {base} is not pinned to a tag"
    airflow = [b for b in bases if b.split(":")[0] == "apache/airflow"]
    assert airflow, f"Dockerfile: not built FROM apache/airflow (FROM {bases})"
    version = required_airflow_version()
    base_version = image_tag(airflow[-1]).split("-")[0]
    assert base_version == version, (
        f"Dockerfile: FROM {airflow[-1]} is Airflow {base_version}, "
        f"requirements.txt pins apache-airflow=={version}"
    )
    for pinned in re.findall(r"apache-airflow==([\w.]+)", text):
        assert pinned == version, (
            f"Dockerfile: pip installs apache-airflow=={pinned}, requirements.txt pins {version}"
        )


def test_dockerignore_keeps_what_the_dockerfile_copies():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:  # Docker's rules, simplified: the last matching line wins
        result = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/").removeprefix("**/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                result = not negated
        return result

    copied = []
    for sources in re.findall(r"^COPY\s+(.+)$", DOCKERFILE.read_text(), re.M):
        words = [w for w in sources.split() if not w.startswith("--")]
        copied += words[:-1]
    assert copied, "Dockerfile: no COPY line"
    for source in copied:
        assert (REPO / source).exists(), f"Dockerfile: COPY {source}: no such file in the repo"
        assert not ignored(source), f".dockerignore excludes {source}, which the Dockerfile copies"
    for secret in (".env", ".venv", ".loopline", ".git"):
        assert ignored(secret), f".dockerignore: {secret} would be sent to the image build"


# --- health and start order -----------------------------------------------------------------


def test_long_running_services_have_healthchecks():
    for name, svc in services().items():
        if is_one_shot(svc):
            continue
        assert svc.get("restart") in ("always", "unless-stopped"), (
            f"service {name}: declare `restart: always` (long-running) or "
            f'`restart: "no"` (one-shot job), found {svc.get("restart")!r}'
        )
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), (
            f"service {name}: long-running but has no healthcheck.test"
        )


def test_one_shot_jobs_are_awaited_to_completion():
    awaited = {
        dependency
        for svc in services().values()
        if isinstance(svc.get("depends_on"), dict)
        for dependency, spec in svc["depends_on"].items()
        if (spec or {}).get("condition") == "service_completed_successfully"
    }
    for name, svc in services().items():
        if is_one_shot(svc) and not svc.get("profiles"):
            assert name in awaited, (
                f"service {name}: a one-shot job no service waits for with "
                "condition: service_completed_successfully"
            )


def test_dependencies_name_services_and_ready_conditions():
    for name, svc in services().items():
        depends_on = svc.get("depends_on")
        if depends_on is None:
            continue
        assert isinstance(depends_on, dict), (
            f"service {name}: depends_on needs the long form with a condition per service"
        )
        for dependency, spec in depends_on.items():
            assert dependency in services(), f"service {name}: depends_on unknown {dependency}"
            target = services()[dependency]
            condition = (spec or {}).get("condition")
            where = f"service {name}: depends_on.{dependency}.condition"
            if condition == "service_healthy":
                assert target.get("healthcheck", {}).get("test"), (
                    f"{where} is service_healthy but {dependency} has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert is_one_shot(target), (
                    f"{where} is service_completed_successfully but {dependency} is not a one-shot "
                    '(restart: "no") job'
                )
            else:
                raise AssertionError(
                    f"{where} is {condition!r}: use service_healthy (or "
                    "service_completed_successfully for a one-shot job)"
                )


def test_airflow_services_wait_for_the_migrated_database():
    for name, svc in airflow_services().items():
        depends_on = svc.get("depends_on") or {}
        for store in ("postgres", "redis"):
            assert depends_on.get(store, {}).get("condition") == "service_healthy", (
                f"service {name}: depends_on.{store} must be service_healthy"
            )
        if name not in ("airflow-init", "airflow-cli"):
            assert (
                depends_on.get("airflow-init", {}).get("condition")
                == "service_completed_successfully"
            ), f"service {name}: depends_on.airflow-init must be service_completed_successfully"


def test_bucket_users_wait_for_the_buckets():
    for name in BUCKET_USERS:
        condition = services()[name].get("depends_on", {}).get("minio-init", {}).get("condition")
        assert condition == "service_completed_successfully", (
            f"service {name}: uses buckets, so depends_on.minio-init must be "
            f"service_completed_successfully (found {condition!r})"
        )


# --- environment ----------------------------------------------------------------------------


def code_env_vars() -> dict[str, set[str]]:
    """Variable -> files of include/loopline, dags and plugins that read it."""
    files = [
        *(REPO / "include" / "loopline").rglob("*.py"),
        *(REPO / "dags").rglob("*.py"),
        *(REPO / "plugins").rglob("*.py"),
    ]
    found: dict[str, set[str]] = {}
    for path in files:
        for match in ENV_READ.finditer(path.read_text()):
            variable = match.group(1) or match.group(2)
            found.setdefault(variable, set()).add(str(path.relative_to(REPO)))
    return found


def test_env_read_scan_sees_a_read_and_ignores_writes():
    sample = (
        'os.environ.get("A", 1); os.getenv( "B" ); x = os.environ["C"]\n'
        'os.environ["D"] = url; os.environ.setdefault("E", "1"); os.environ["F"] == "1"'
    )
    read = {m.group(1) or m.group(2) for m in ENV_READ.finditer(sample)}
    assert read == {"A", "B", "C", "F"}, f"ENV_READ found {sorted(read)}"
    found = code_env_vars()
    assert "WAREHOUSE_URL" in found, f"the scan of the code found only {sorted(found)}"


def test_every_variable_the_code_reads_is_set_for_airflow():
    found = code_env_vars()
    assert found, "no os.environ reads found in include/loopline, dags, plugins"
    for name, svc in airflow_services().items():
        env = environment(svc)
        missing = {
            variable: sorted(files)
            for variable, files in found.items()
            if variable not in env and variable not in OPTIONAL_ENV
        }
        assert not missing, (
            f"service {name}: environment lacks variables the code reads (set them in "
            f"x-airflow-common's environment, or add to OPTIONAL_ENV with why): {missing}"
        )


def test_compose_variables_are_in_env_example():
    used: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            for match in INTERPOLATION.finditer(node):
                if match.group(1) or match.group(2):
                    used.add(match.group(1) or match.group(2))

    walk(compose())
    assert "AIRFLOW_UID" in used, f"the interpolation scan found only {sorted(used)}"
    documented = set(env_example())
    assert not used - documented, (
        ".env.example lacks variables docker-compose.yaml interpolates: "
        f"{sorted(used - documented)}"
    )
    assert not documented - used, (
        f".env.example sets variables docker-compose.yaml never uses: {sorted(documented - used)}"
    )


def test_env_example_holds_placeholders_only():
    values = env_example()
    secrets = {key for key in values if SECRET_NAME.search(key)}
    assert len(secrets) >= 5, f".env.example: expected its passwords and keys, found {secrets}"
    for key, value in values.items():
        if key in secrets:
            assert PLACEHOLDER in value, (
                f".env.example: {key} must be a placeholder containing {PLACEHOLDER!r}"
            )
        elif PLACEHOLDER not in value:
            assert not SECRET_LOOKING.search(value), (
                f".env.example: {key}={value} looks like a real secret"
            )
    assert values.get("AIRFLOW_UID") == "50000", ".env.example: AIRFLOW_UID should be 50000"
    init = command_text(services()["airflow-init"])
    assert PLACEHOLDER in init, f"airflow-init does not refuse {PLACEHOLDER!r} placeholders"


def test_code_and_specs_are_mounted_and_importable():
    for name, svc in airflow_services().items():
        targets = {target: source for source, target in mounts(svc)}
        for folder in ("dags", "plugins", "include"):
            target = f"{CODE_ROOT_IN_IMAGE}/{folder}"
            assert target in targets, f"service {name}: volumes do not mount ./{folder} at {target}"
            source = targets[target]
            assert Path(REPO, source).resolve() == REPO / folder, (
                f"service {name}: {target} is mounted from {source}, not ./{folder}"
            )
        pythonpath = (environment(svc).get("PYTHONPATH") or "").split(":")
        assert f"{CODE_ROOT_IN_IMAGE}/include" in pythonpath, (
            f"service {name}: PYTHONPATH {pythonpath} lacks {CODE_ROOT_IN_IMAGE}/include"
        )
    assert re.search(
        rf"^ENV\s+PYTHONPATH=\S*{CODE_ROOT_IN_IMAGE}/include", DOCKERFILE.read_text(), re.M
    ), f"Dockerfile: no ENV PYTHONPATH with {CODE_ROOT_IN_IMAGE}/include"
    # loopline.adapters.settings' REPO_ROOT is the parent of include/: in the image, /opt/airflow.
    from loopline.adapters import settings

    assert settings.REPO_ROOT == REPO, f"settings.REPO_ROOT is {settings.REPO_ROOT}, not {REPO}"


def test_airflow_init_migrates_both_databases_and_writes_the_login():
    init = services()["airflow-init"]
    script = command_text(init)
    assert "airflow db migrate" in script, "airflow-init: does not run `airflow db migrate`"
    upgrade = re.search(r"loopline(?:\.cli)? (db upgrade)", script)
    assert upgrade, "airflow-init: does not run `loopline db upgrade` (the warehouse schema)"
    from loopline.cli import parser

    assert parser().parse_args(upgrade.group(1).split()).action == "upgrade"
    assert environment(init).get("AIRFLOW_ADMIN_PASSWORD"), (
        "airflow-init: no AIRFLOW_ADMIN_PASSWORD"
    )
    users = environment(init)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    for user in (entry.split(":")[0] for entry in users.split(",")):
        assert f'"{user}":' in script, f"airflow-init: writes no password for user {user}"
    # The passwords file lives on a named volume that the API server (the login) also mounts.
    folder = str(
        Path(environment(init)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent
    )
    for name in ("airflow-init", "airflow-apiserver"):
        volume = {t: s for s, t in mounts(services()[name])}.get(folder)
        assert volume in (compose().get("volumes") or {}), (
            f"service {name}: {folder} (the passwords file) is not on a named volume"
        )


# --- postgres -------------------------------------------------------------------------------


def test_postgres_init_script_runs_roles_sql_with_every_password():
    postgres = services()["postgres"]
    volumes = mounts(postgres)
    scripts = [(s, t) for s, t in volumes if t.startswith("/docker-entrypoint-initdb.d/")]
    assert scripts, "service postgres: nothing mounted into /docker-entrypoint-initdb.d/"
    roles_targets = [t for s, t in volumes if (REPO / s).resolve() == ROLES_SQL]
    assert roles_targets, "service postgres: include/sql/roles.sql is not mounted"
    psql_variables = set(re.findall(r":'(\w+)'", ROLES_SQL.read_text()))
    assert psql_variables, "include/sql/roles.sql: no :'variable' found"
    env = environment(postgres)
    for source, _ in scripts:
        path = REPO / source
        assert path.is_file(), f"service postgres: init script {source} does not exist"
        text = path.read_text()
        assert text.startswith("#!"), f"{source}: must start with a shebang (#!/usr/bin/env bash)"
        assert os.access(path, os.X_OK), f"{source}: not executable (chmod +x, commit the mode)"
        assert any(t in text for t in roles_targets), (
            f"{source}: does not run roles.sql at its mount point {roles_targets}"
        )
        assert "ON_ERROR_STOP=1" in text, f"{source}: psql without -v ON_ERROR_STOP=1"
        passed = set(re.findall(r"-v\s+(\w+)=", text)) - {"ON_ERROR_STOP"}
        assert psql_variables <= passed, (
            f"{source}: does not pass psql variables {sorted(psql_variables - passed)}"
        )
        read = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))
        assert not read - set(env), (
            f"service postgres: environment lacks {sorted(read - set(env))}, read by {source}"
        )


def test_roles_sql_creates_the_roles_and_databases_of_the_urls():
    roles, owners = roles_sql_created()
    assert roles and owners, f"include/sql/roles.sql: parsed roles {roles}, databases {owners}"
    env = compose()["x-airflow-common"]["environment"]
    urls = {
        "WAREHOUSE_URL": env["WAREHOUSE_URL"],
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "AIRFLOW__CELERY__RESULT_BACKEND": env["AIRFLOW__CELERY__RESULT_BACKEND"],
        "mlflow --backend-store-uri": option(
            command_args(services()["mlflow"]), "--backend-store-uri"
        ),
    }
    for key, url in urls.items():
        assert url, f"{key}: not set"
        user, host, database = postgres_url_parts(url)
        assert host == "postgres", f"{key}: host {host} is not the postgres service"
        assert user in roles, f"{key}: user {user} is not created by include/sql/roles.sql"
        assert owners.get(database) == user, (
            f"{key}: database {database} should be created by roles.sql with owner {user}, "
            f"roles.sql creates {owners}"
        )


# --- object storage and MLflow --------------------------------------------------------------


def test_mlflow_server_stores_in_postgres_and_minio():
    args = command_args(services()["mlflow"])
    backend = option(args, "--backend-store-uri")
    assert backend and backend.startswith("postgresql"), (
        f"service mlflow: --backend-store-uri {backend} is not PostgreSQL"
    )
    assert postgres_url_parts(backend)[2] == "mlflow", (
        f"service mlflow: --backend-store-uri {backend} is not the mlflow database"
    )
    destination = urlsplit(option(args, "--artifacts-destination") or "")
    assert destination.scheme == "s3", f"service mlflow: --artifacts-destination {destination}"
    assert destination.netloc in minio_init_buckets(), (
        f"service mlflow: artifacts bucket {destination.netloc} is not created by minio-init "
        f"(creates {minio_init_buckets()})"
    )
    assert "--serve-artifacts" in args, "service mlflow: no --serve-artifacts"

    tracking = urlsplit(environment(services()["airflow-worker"])["MLFLOW_TRACKING_URI"])
    assert tracking.hostname == "mlflow" and tracking.hostname in services()
    assert str(tracking.port) == option(args, "--port"), (
        f"MLFLOW_TRACKING_URI port {tracking.port} is not mlflow's --port {option(args, '--port')}"
    )
    # MLflow 3 rejects other Host headers: exact match, or fnmatch for a pattern with '*'.
    allowed = (option(args, "--allowed-hosts") or "").split(",")
    for host in (f"mlflow:{tracking.port}", "localhost:5000"):
        assert any(
            fnmatch.fnmatch(host, pattern) if "*" in pattern else host == pattern
            for pattern in allowed
        ), f"service mlflow: --allowed-hosts {allowed} rejects Host {host}"


def test_loopline_locations_are_buckets_minio_init_creates():
    buckets = minio_init_buckets()
    assert {"loopline", "mlflow"} <= buckets, f"minio-init creates buckets {buckets}"
    script = command_text(services()["minio-init"])
    endpoint = re.search(r"mc alias set \S+ (\S+)", script)
    assert endpoint, "minio-init: no `mc alias set <alias> <url>`"
    minio = urlsplit(endpoint.group(1))
    assert minio.hostname in services(), f"minio-init: {endpoint.group(1)} is not a service"
    for name in ("airflow-worker", "mlflow"):
        env = environment(services()[name])
        for key in ("AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL"):
            assert env.get(key) == endpoint.group(1), (
                f"service {name}: {key}={env.get(key)}, minio-init uses {endpoint.group(1)}"
            )
    env = environment(services()["airflow-worker"])
    for key in (
        "LOOPLINE_LANDING",
        "LOOPLINE_LABELS",
        "LOOPLINE_REPORTS",
        "LOOPLINE_MLFLOW_ARTIFACTS",
    ):
        location = urlsplit(env.get(key) or "")
        assert location.scheme == "s3", f"service airflow-worker: {key}={env.get(key)} is not s3://"
        assert location.netloc in buckets, (
            f"service airflow-worker: {key} bucket {location.netloc} is not created by minio-init"
        )


def test_the_airflow_connections_say_what_the_environment_says():
    """Tasks prefer the AIRFLOW_CONN_LOOPLINE_* connections; they must point where the CLI's
    variables do (placeholders filled in as compose would)."""
    import json

    from airflow.sdk.definitions.connection import Connection
    from loopline.airflow.connections import mlflow_uri, s3_environment, warehouse_url

    env = environment(compose()["x-airflow-common"])
    secrets = {"WAREHOUSE_WRITER_PASSWORD": "w", "MINIO_ROOT_USER": "u", "MINIO_ROOT_PASSWORD": "p"}

    def filled(value: str) -> str:
        return re.sub(r"\$\{(\w+)[^}]*\}", lambda m: secrets[m.group(1)], value)

    def connection(name: str) -> Connection:
        return Connection.from_json(filled(env[f"AIRFLOW_CONN_{name}"]), conn_id=name.lower())

    assert warehouse_url(connection("LOOPLINE_WAREHOUSE")) == filled(env["WAREHOUSE_URL"])
    assert mlflow_uri(connection("LOOPLINE_MLFLOW")) == env["MLFLOW_TRACKING_URI"]
    s3 = s3_environment(connection("LOOPLINE_S3"))
    assert s3["AWS_ENDPOINT_URL_S3"] == env["AWS_ENDPOINT_URL_S3"]
    assert (s3["AWS_ACCESS_KEY_ID"], s3["AWS_SECRET_ACCESS_KEY"]) == ("u", "p")
    assert json.loads(filled(env["AIRFLOW_CONN_LOOPLINE_WAREHOUSE"]))["schema"] == "warehouse"


def test_the_loopback_cluster_and_compose_share_one_topology():
    """loopline.dev.topology is the one place the team setup's environment is defined: rendered
    with compose's host names and ${...} placeholders it is what the compose file gives every
    Airflow service (executor, broker, results, lake, artifacts, MLflow, connections), and the
    MLflow server's command and the buckets are the same."""
    from loopline.dev import topology

    def placeholder(name: str) -> str:
        return "${" + name + ":?see .env.example}"

    endpoints = topology.Endpoints(
        postgres="postgres:5432",
        redis="redis:6379",
        s3="http://minio:9000",
        mlflow="http://mlflow:5000",
        api="http://airflow-apiserver:8080",
    )
    secrets = topology.Secrets(
        airflow_db=placeholder("AIRFLOW_DB_PASSWORD"),
        writer=placeholder("WAREHOUSE_WRITER_PASSWORD"),
        s3_user=placeholder("MINIO_ROOT_USER"),
        s3_password=placeholder("MINIO_ROOT_PASSWORD"),
        mlflow_db=placeholder("MLFLOW_DB_PASSWORD"),
    )
    expected = topology.airflow_environment(endpoints, secrets)
    for name in ("airflow-scheduler", "airflow-worker", "airflow-apiserver"):
        env = services()[name]["environment"]
        assert {k: str(env.get(k)) for k in expected} == expected, name
    command = [str(part) for part in services()["mlflow"]["command"]]
    rendered = topology.mlflow_server_command(endpoints, secrets, "0.0.0.0", 5000)
    assert command[: len(rendered)] == rendered
    mlflow_env = services()["mlflow"]["environment"]
    assert {k: str(mlflow_env.get(k)) for k in topology.s3_environment(endpoints, secrets)} == (
        topology.s3_environment(endpoints, secrets)
    )
    made = re.findall(
        r"mc mb --ignore-existing store/(\w+)", services()["minio-init"]["command"][0]
    )
    assert tuple(made) == topology.BUCKETS
