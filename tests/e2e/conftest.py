"""What the browser tests share: Debian's Chromium through its own chromedriver (selenium-manager
would try to download one), the local stack `make run` starts, and Airflow's login form."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from loopline.dev.pgserver import LocalPostgres
from loopline.dev.stack import LocalAirflow
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from ..conftest import SESSION_DIR, free_port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Headless, and quiet on a closed network: no sync, updates or background fetches.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)


@contextmanager
def local_airflow(tmp_path: Path) -> Iterator[LocalAirflow]:
    """The `make run` stack on a free port: its metadata in the ``airflow`` database of the
    session's PostgreSQL server, its home in a temp folder, this process's environment.
    Stopped whatever happens."""
    metadata = LocalPostgres(SESSION_DIR / "postgres").url("airflow")
    stack = LocalAirflow(tmp_path / "airflow", metadata, port=free_port())
    stack.migrate()
    try:
        stack.start()
        stack.wait_healthy()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium, quit whatever happens."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(driver: WebDriver, base: str, password: str) -> None:
    """Through SimpleAuthManager's own form; it stores the JWT cookie and sends us to ``next``."""
    driver.get(f"{base}/dags")
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.find_elements(By.NAME, "username"))
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button[type='submit']").click()
    wait.until(lambda d: d.current_url == f"{base}/dags")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header (asserting it is a PNG at all)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])
