"""The machine packages `make test` needs besides Python's: Debian's Chromium and its driver (the
browser tests) and Redis (the Celery broker of the loopback cluster test).

Run with the system's python3 before the virtualenv is built (standard library only), so a
machine without them hears it in the first seconds, not after half an hour of tests::

    python3 include/loopline/dev/system.py test

Missing packages are installed with apt-get where that is possible without a password (as root,
or with passwordless sudo); otherwise it stops at once with the one command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# What each purpose needs: the files that must exist, and the Debian packages that bring them.
NEEDS = {
    "test": {
        "/usr/bin/chromium": "chromium",
        "/usr/bin/chromedriver": "chromium-driver",
        "/usr/bin/redis-server": "redis-server",
    },
}


def missing(purpose: str) -> list[str]:
    """The Debian packages whose files are not on this machine."""
    return sorted(
        {package for path, package in NEEDS[purpose].items() if not os.access(path, os.X_OK)}
    )


def _as_root() -> list[str] | None:
    """How to run a command as root without a password: directly, with ``sudo -n``, or None."""
    if os.geteuid() == 0:
        return []
    if (
        shutil.which("sudo")
        and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    ):
        return ["sudo", "-n"]
    return None


def ensure(purpose: str) -> int:
    packages = missing(purpose)
    if not packages:
        return 0
    command = f"sudo apt-get install -y {' '.join(packages)}"
    prefix = _as_root()
    if prefix is None or not shutil.which("apt-get"):
        why = "no apt-get here" if not shutil.which("apt-get") else "root is needed"
        print(
            f"make {purpose} needs the system packages {', '.join(packages)} ({why}).\n"
            f"Run once: {command}\nthen `make {purpose}` again.",
            file=sys.stderr,
        )
        return 1
    print(f"make {purpose}: installing {', '.join(packages)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run([*prefix, *step], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-10:]
            print("\n".join(tail), file=sys.stderr)
            print(f"`{' '.join(step)}` failed: run `{command}` by hand", file=sys.stderr)
            return 1
    left = missing(purpose)
    if left:
        print(f"still missing after apt-get: {', '.join(left)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(ensure(sys.argv[1] if len(sys.argv) > 1 else "test"))
