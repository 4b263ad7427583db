"""The Airflow UI in a real browser: the local stack `make run` starts, driven by headless
Chromium. Operators live in this UI, so a DAG that parses in tests but is missing there (or an
import error only the dag-processor sees) is a broken deployment.
"""

from __future__ import annotations

import json
import urllib.request
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlencode

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import local_airflow, log_in, png_size

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-output" / "airflow-ui" / "dag-list.png"
# The DAG list's badge, rendered only when there are errors: label "Dag Import Error(s)", text N.
IMPORT_ERROR_BADGE = "button[aria-label*='Dag Import Error']"
DAG_ID = "[data-testid='dag-card'] [data-testid='dag-id']"


def loopline_dag_ids() -> set[str]:
    """What the repo's dags folder defines, parsed independently of the stack under test."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO / "dags"))
    assert bag.import_errors == {}
    return set(bag.dag_ids)


@pytest.fixture
def airflow(warehouse_url, tmp_path):
    """The local stack (``warehouse_url`` starts the session's PostgreSQL server first)."""
    with local_airflow(tmp_path) as stack:
        yield stack


def list_settled(driver: WebDriver) -> bool:
    """DAG cards shown, the import-error count fetched and rendered (no skeleton left): only then
    does a missing badge mean "no errors" rather than "not loaded yet"."""
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".some(e => e.name.includes('/api/v2/importErrors'))"
    )
    return (
        fetched
        and bool(driver.find_elements(By.CSS_SELECTOR, DAG_ID))
        and not driver.find_elements(By.CSS_SELECTOR, ".chakra-skeleton")
    )


def shown_dag_ids(driver: WebDriver) -> set[str]:
    return {element.text for element in driver.find_elements(By.CSS_SELECTOR, DAG_ID)}


def found_by_search(driver: WebDriver, base: str, dag_id: str) -> bool:
    """For a DAG beyond the list's first page (50 cards): the search box's own URL filter."""
    driver.get(f"{base}/dags?{urlencode({'name_pattern': dag_id})}")
    try:
        WebDriverWait(driver, 15).until(lambda d: dag_id in shown_dag_ids(d))
    except TimeoutException:
        return False
    return True


def api_import_errors(base: str, password: str) -> dict:
    """The same question through the REST API, with a token from the api-server."""
    login = urllib.request.Request(
        f"{base}/auth/token",
        data=json.dumps({"username": "admin", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=30) as response:
        token = json.load(response)["access_token"]
    errors = urllib.request.Request(
        f"{base}/api/v2/importErrors", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(errors, timeout=30) as response:
        return json.load(response)


@pytest.mark.timeout(600)
def test_dag_list_shows_every_loopline_dag_without_import_errors(airflow, browser):
    expected = loopline_dag_ids()
    with suppress(TimeoutError):  # the DAG list assertion below names any DAG that never arrived
        airflow.wait_dags(sorted(expected), timeout=120)
    base, password = airflow.url, airflow.password()
    assert password != "?", "the api-server wrote no generated password file"

    log_in(browser, base, password)
    WebDriverWait(browser, 60).until(list_settled)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))  # before the assertions: it shows a failure
    badges = [
        f"{badge.text} {badge.get_attribute('aria-label')}"
        for badge in browser.find_elements(By.CSS_SELECTOR, IMPORT_ERROR_BADGE)
    ]
    missing = sorted(
        d for d in expected - shown_dag_ids(browser) if not found_by_search(browser, base, d)
    )

    assert missing == [], f"not in the Airflow UI's DAG list: {missing}"
    assert badges == [], f"the DAG list shows {badges}"
    assert api_import_errors(base, password)["total_entries"] == 0
    width, height = png_size(SCREENSHOT)
    assert width == 1600 and height >= 600, (width, height)
    assert SCREENSHOT.stat().st_size > 20_000, "the screenshot looks blank"
