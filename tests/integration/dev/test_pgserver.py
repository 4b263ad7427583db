"""The embedded PostgreSQL binaries under root: copied where the server's own user can run them."""

from __future__ import annotations

import os
import stat

from loopline.dev import pgserver


def test_the_copy_of_the_binaries_is_reachable_under_the_clis_umask(tmp_path, monkeypatch):
    """`make run` as root on a new machine: the CLI's umask 077 made the copy's package folder
    root-only, and the server's user could not start initdb (`Permission denied`)."""
    monkeypatch.setattr(pgserver, "SHARED_INSTALL", tmp_path / "cache")
    monkeypatch.setattr(pgserver.os, "geteuid", lambda: 0)  # the copy is made under root only
    previous = os.umask(0o077)
    try:
        bin_dir = pgserver._bin_dir()
    finally:
        os.umask(previous)
    assert bin_dir.is_relative_to(tmp_path / "cache")
    for path in [*reversed(bin_dir.parents), bin_dir, bin_dir / "initdb", bin_dir / "postgres"]:
        if path.is_relative_to(tmp_path / "cache"):
            mode = path.stat().st_mode
            assert mode & stat.S_IXOTH and mode & stat.S_IROTH, f"{path}: {stat.filemode(mode)}"
