"""`make test` on a machine without the browser: installed where no password is needed, else a
stop in the first seconds with the one command to run (it used to fail after 30 minutes)."""

from __future__ import annotations

import time

from loopline.dev import system


def test_a_user_without_root_hears_the_one_command_at_once(monkeypatch, capsys):
    monkeypatch.setitem(system.NEEDS, "test", {"/nonexistent/chromium": "chromium"})
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(
        system.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None
    )
    started = time.monotonic()
    assert system.ensure("test") == 1
    assert time.monotonic() - started < 2
    err = capsys.readouterr().err
    assert "Run once: sudo apt-get install -y chromium" in err
    assert "root is needed" in err


def test_nothing_to_do_when_the_packages_are_there(monkeypatch):
    monkeypatch.setitem(system.NEEDS, "test", {"/bin/sh": "dash"})
    assert system.missing("test") == []
    assert system.ensure("test") == 0


def test_as_root_it_installs_with_apt_get(monkeypatch):
    calls = []
    monkeypatch.setitem(system.NEEDS, "test", {"/nonexistent/redis-server": "redis-server"})
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(system.shutil, "which", lambda name: f"/usr/bin/{name}")

    class Done:
        returncode, stdout, stderr = 0, "", ""

    monkeypatch.setattr(system.subprocess, "run", lambda args, **kw: calls.append(args) or Done())
    assert system.ensure("test") == 1  # the fake apt-get installed nothing: still missing, said
    assert calls == [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "redis-server"],
    ]
