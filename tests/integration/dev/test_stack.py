"""Stopping the local Airflow stack leaves nothing behind (issue 12.9).

`loopline up` runs in a subprocess, as a person or `make run` would start it; once Airflow is
healthy the test records every process below it (the guards, api-server and its workers,
scheduler, dag-processor, triggerer and their children), signals `loopline up`, and asserts
that each of those processes is gone and the UI's port is free again within a timeout. A
SIGKILL gives `loopline up` no chance to clean up: the guards' parent-death signal must.

The guard itself is also tested on its own, with a process tree that tries to escape it (a
child in a session of its own, a child that ignores SIGTERM), and the parent-death signal is
checked to survive the user/group change `Popen` makes for the embedded PostgreSQL under root.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from loopline.dev.pgserver import LocalPostgres
from loopline.dev.stack import COMPONENTS, die_with_parent

from ...conftest import SESSION_DIR, free_port

LOOPLINE = str(Path(sys.executable).with_name("loopline"))
HEALTHY_LINE = "Airflow UI http://127.0.0.1:"
GONE_WITHIN = 60  # seconds: the guards' grace (10 s) and sweep, with room for a busy machine


def gone(process: psutil.Process, zombie_ok: bool) -> bool:
    """Exited (and reaped; a pid taken over by a new process counts as gone). ``zombie_ok``: an
    orphan re-parented to an init that does not reap (as in some containers) stays a zombie:
    it runs nothing and holds no port."""
    try:
        if not process.is_running():
            return True
        return zombie_ok and process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} [{process.status()}] {' '.join(process.cmdline())[:120]}"
    except psutil.Error:
        return f"{process.pid} (gone while looking)"


def wait_gone(processes: list[psutil.Process], zombie_ok: bool) -> list[str]:
    """What is still there after GONE_WITHIN seconds (nothing, we hope)."""
    deadline = time.monotonic() + GONE_WITHIN
    while time.monotonic() < deadline:
        if all(gone(p, zombie_ok) for p in processes):
            return []
        time.sleep(0.5)
    return [describe(p) for p in processes if not gone(p, zombie_ok)]


def port_free(port: int) -> bool:
    """Nobody listens on the port: we can bind it as the api-server does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def wait_port_free(port: int, timeout: float = GONE_WITHIN) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_free(port):
            return True
        time.sleep(0.5)
    return False


def start_up(home: Path, port: int, log: Path) -> subprocess.Popen:
    """`loopline up --port PORT` with LOOPLINE_HOME=home; two api-server workers, so that the
    api-server has worker processes of its own to leave behind. Started with SIGINT ignored, as
    a script's background job is (`cmd &`): `kill -INT` must stop it all the same."""
    env = {**os.environ, "LOOPLINE_HOME": str(home), "AIRFLOW__API__WORKERS": "2"}
    with open(log, "w") as out:
        return subprocess.Popen(
            [LOOPLINE, "up", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C is not its Ctrl-C
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )


def wait_healthy(process: subprocess.Popen, log: Path, timeout: float = 420) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if HEALTHY_LINE in log.read_text():
            return
        if process.poll() is not None:
            pytest.fail(f"loopline up exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(1)
    process.kill()
    pytest.fail(f"loopline up was not healthy within {timeout}s:\n{log.read_text()[-3000:]}")


def tree(process: subprocess.Popen) -> list[psutil.Process]:
    """Every process below ``process``, checked to be the stack we expect."""
    below = psutil.Process(process.pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in below]
    guards = [c for c in commands if "-m loopline.dev.stack" in c]
    assert len(guards) == len(COMPONENTS), commands
    guard = next(
        p
        for p in below
        if "-m loopline.dev.stack" in " ".join(p.cmdline())
        and "api-server" in " ".join(p.cmdline())
    )
    (api_server,) = guard.children()
    assert len(api_server.children()) >= 2, ("no api-server workers", commands)
    return below


def stop_and_check(process: subprocess.Popen, signum: int, port: int) -> tuple[int, list[str]]:
    below = tree(process)
    os.kill(process.pid, signum)
    try:
        code = process.wait(timeout=GONE_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    left = wait_gone(below, zombie_ok=signum == signal.SIGKILL)
    assert wait_port_free(port), f"port {port} still taken"
    return code, left


def new_home() -> Path:
    """A state folder under the session folder: under root the embedded PostgreSQL's user must
    reach it (pytest's own temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="stack-", dir=SESSION_DIR))
    folder.chmod(0o711)  # mkdtemp's 0700 would keep that user out
    home = folder / "home"
    home.mkdir()
    return home


@pytest.fixture
def shared_home(pg_server):
    """A state folder whose embedded PostgreSQL is the session's server, already running:
    `loopline up` must use it and leave it running."""
    home = new_home()
    (home / "postgres").symlink_to(SESSION_DIR / "postgres")
    return home


@pytest.mark.timeout(900)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_stops_every_airflow_process_and_frees_the_port(
    shared_home, pg_server, tmp_path, signum
):
    port, log = free_port(), tmp_path / "up.log"
    process = start_up(shared_home, port, log)
    try:
        wait_healthy(process, log)
        code, left = stop_and_check(process, signum, port)
    finally:
        if process.poll() is None:
            process.kill()
    assert left == [], f"still running after {signal.Signals(signum).name}: {left}"
    assert code in (0, 130), log.read_text()[-3000:]
    assert "stopping" in log.read_text()
    assert pg_server.is_running(), "loopline up stopped a PostgreSQL server it did not start"


@pytest.mark.timeout(900)
def test_a_sigkill_of_the_parent_still_stops_every_airflow_process(shared_home, tmp_path):
    port, log = free_port(), tmp_path / "up.log"
    process = start_up(shared_home, port, log)
    try:
        wait_healthy(process, log)
        code, left = stop_and_check(process, signal.SIGKILL, port)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == -signal.SIGKILL
    assert left == [], f"still running after SIGKILL of loopline up: {left}"


@pytest.mark.timeout(900)
def test_up_stops_the_postgresql_server_it_started(tmp_path):
    """No server was running under this state folder: `loopline up` starts one (SCRAM
    passwords and all) and must stop it with the rest."""
    home = new_home()
    server = LocalPostgres(home / "postgres")
    port, log = free_port(), tmp_path / "up.log"
    process = start_up(home, port, log)
    try:
        wait_healthy(process, log)
        assert server.is_running()
        assert (home / "postgres" / "passwords.json").stat().st_mode & 0o077 == 0
        code, left = stop_and_check(process, signal.SIGTERM, port)
        assert left == [], f"still running after SIGTERM: {left}"
        assert code == 0, log.read_text()[-3000:]
        assert not server.is_running(), "the PostgreSQL server `loopline up` started is still up"
    finally:
        if process.poll() is None:
            process.kill()
        server.stop()


# --- the guard on its own ---------------------------------------------------------------------

ESCAPING_TREE = (
    "sleep 600 & "  # an ordinary child
    "(setsid sleep 601 &) ; "  # a grandchild in a session of its own, orphaned at once
    "trap '' TERM; sleep 602 & wait"  # a shell that ignores SIGTERM
)
PARENT = f"""
import os, subprocess, sys, time
from loopline.dev.stack import die_with_parent
guard = subprocess.Popen(
    [sys.executable, "-m", "loopline.dev.stack", "--parent", str(os.getpid()), "--grace", "2",
     "--", "bash", "-c", {ESCAPING_TREE!r}],
    start_new_session=True, preexec_fn=die_with_parent,
)
print(guard.pid, flush=True)
time.sleep(600)
"""


def sleeps_below(pid: int) -> list[psutil.Process]:
    return [
        p for p in psutil.Process(pid).children(recursive=True) if p.name() in ("sleep", "bash")
    ]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_the_guard_leaves_no_process_of_its_tree_when_its_parent_dies(signum):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        guard = psutil.Process(int(parent.stdout.readline()))
        deadline = time.monotonic() + 30
        while len(sleeps_below(guard.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        tree = [guard, *sleeps_below(guard.pid)]
        names = sorted(" ".join(p.cmdline()) for p in tree[1:])
        assert any("601" in n for n in names) and any("602" in n for n in names), names
        parent.send_signal(signum)
        parent.wait(timeout=10)
        left = wait_gone(tree, zombie_ok=True)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert left == [], f"left behind after {signal.Signals(signum).name} of the parent: {left}"


CHECK_PDEATHSIG = (
    "import ctypes, os; v = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0);"
    " print(os.getuid(), v.value)"
)


def test_the_parent_death_signal_survives_popens_user_and_group_change():
    """CPython runs ``preexec_fn`` after setgid/setuid (a credential change clears the
    parent-death signal), as the embedded PostgreSQL's user switch under root does it."""
    plain = subprocess.run(
        [sys.executable, "-c", CHECK_PDEATHSIG],
        preexec_fn=die_with_parent,
        capture_output=True,
        text=True,
        check=True,
    )
    assert plain.stdout.split()[1] == str(int(signal.SIGTERM))
    if os.geteuid() != 0:
        pytest.skip("changing user needs root")
    from loopline.dev.pgserver import SYSTEM_USER, _ensure_system_user

    _ensure_system_user()
    user = pwd.getpwnam(SYSTEM_USER)
    system_python = "/usr/bin/python3"  # the venv's may sit under a home the user cannot reach
    if not os.access(system_python, os.X_OK):
        pytest.skip(f"needs {system_python}")
    switched = subprocess.run(
        [system_python, "-c", CHECK_PDEATHSIG],
        preexec_fn=die_with_parent,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=True,
    )
    assert switched.stdout.split() == [str(user.pw_uid), str(int(signal.SIGTERM))]
