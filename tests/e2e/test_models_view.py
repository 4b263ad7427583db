"""The Models view in a real browser: the local stack `make run` starts (its api-server loads
the repo's plugins), a world of real model history in the session's warehouse and MLflow
store, and headless Chromium logging in through Airflow's own form, opening "Models" in the
navigation and the per-model page. Screenshots go to test-output/models-view/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from ..conftest import empty_tables, forget_models
from ..integration.airflow.test_ui import SCORED, WORLD_ENV, make_world
from .conftest import local_airflow, log_in, png_size

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "models-view"
MODELS_NAV = "a[href$='plugin/loopline']"


@pytest.fixture
def world(warehouse_url, tmp_path, monkeypatch):
    """churn's history (see ``make_world``) in the session's warehouse and MLflow store, which
    the stack's api-server reads through the same environment."""
    for key in WORLD_ENV:
        monkeypatch.setenv(key, str(tmp_path / key.removeprefix("LOOPLINE_").lower()))
    monkeypatch.delenv("LOOPLINE_SPECS_DIR", raising=False)
    empty_tables(warehouse_url)
    forget_models("churn")
    yield make_world(tmp_path)
    forget_models("churn")


@pytest.fixture
def airflow(world, tmp_path):
    """The local stack, started after the world is built: the api-server reads the same
    warehouse, MLflow store and specs through this process's environment."""
    with local_airflow(tmp_path) as stack:
        yield stack


def shot(driver: WebDriver, name: str, full_page: bool = False) -> Path:
    """A screenshot, taken before the assertions that follow so that it shows a failure too."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    path.unlink(missing_ok=True)
    if full_page:  # the whole document, not just the window
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1600, max(1000, min(int(height) + 140, 8000)))
    assert driver.save_screenshot(str(path))
    if full_page:
        driver.set_window_size(1600, 1000)
    return path


def visible(driver: WebDriver, css: str) -> str:
    return " ".join(driver.find_element(By.CSS_SELECTOR, css).text.split())


def model_row_loaded(driver: WebDriver) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, "tr.model[data-model='churn']"))


@pytest.mark.timeout(900)
def test_models_view_inside_the_airflow_ui(world, airflow, browser):
    from loopline.adapters import model_store

    base, password = airflow.url, airflow.password()
    assert password != "?", "the api-server wrote no generated password file"
    champion = model_store.store().champion("churn")
    auc = f"{champion.holdout['roc_auc']:.4f}"
    decision, last_check = world["decision"], world["checks"][-1]

    # 1. Airflow's login, then "Models" in the navigation: the view in the UI's frame.
    log_in(browser, base, password)
    wait = WebDriverWait(browser, 60)
    nav = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, MODELS_NAV))
    assert nav[0].text.strip() == "Models" or nav[0].get_attribute("title") == "Models"
    nav[0].click()
    wait.until(lambda d: d.current_url.endswith("/plugin/loopline"))
    frame = wait.until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))[0]
    assert frame.get_attribute("src") == f"{base}/loopline/"
    browser.switch_to.frame(frame)
    wait.until(model_row_loaded)
    browser.switch_to.default_content()
    overview_png = shot(browser, "overview-in-airflow.png")
    browser.switch_to.frame(frame)
    row = "tr.model[data-model='churn']"
    assert visible(browser, f"{row} td.champion") == "v1 challenger v2"
    assert f"roc_auc {auc}" in visible(browser, f"{row} td.holdout")
    assert visible(browser, f"{row} td.decision").endswith(decision.reason)
    assert visible(browser, f"{row} td.drift").startswith(f"drift {SCORED[-1]} report")
    report = browser.find_element(By.CSS_SELECTOR, f"{row} td.drift a.report")
    assert report.get_attribute("href") == (
        f"{base}/loopline/models/churn/drift/{last_check.report_id}"
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, f"{row} svg.performance circle")) == len(
        SCORED
    )

    # 2. The drift report and the model's page open inside the UI's frame (it allows no new
    #    windows), and the UI's address follows the frame: each page has its own link.
    report.click()
    wait.until(lambda d: "drift check of 2026-02-09" in d.find_element(By.TAG_NAME, "h1").text)
    browser.switch_to.default_content()
    report_url = f"{base}/plugin/loopline/loopline/models/churn/drift/{last_check.report_id}"
    wait.until(lambda d: d.current_url == report_url)
    report_png = shot(browser, "drift-report-in-airflow.png")
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    browser.find_element(By.LINK_TEXT, "churn").click()  # the report's way back
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.history"))
    history = visible(browser, "table.history")
    assert "rejected v2 v1" in history and "does not beat the champion" in history
    assert "promoted v1" in history and "no current champion" in history
    card = visible(browser, "details#v1")
    assert "Gate promoted to champion" in card and f"roc_auc (higher is better) {auc}" in card
    browser.switch_to.default_content()
    model_url = f"{base}/plugin/loopline/loopline/models/churn"
    wait.until(lambda d: d.current_url == model_url)
    model_png = shot(browser, "model-in-airflow.png")

    # 3. That link opens the model's page inside the UI; the pages on their own, whole, for
    #    the docs.
    browser.get(model_url)
    frame = wait.until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))[0]
    browser.switch_to.frame(frame)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "details#v1"))
    assert visible(browser, "h1") == "churn"
    browser.switch_to.default_content()
    browser.get(f"{base}/loopline/")
    wait.until(model_row_loaded)
    overview_full = shot(browser, "overview.png", full_page=True)
    browser.get(f"{base}/loopline/models/churn")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.history"))
    model_full = shot(browser, "model.png", full_page=True)

    # 4. Without a session the view sends the browser to Airflow's login, and back after it.
    browser.delete_all_cookies()
    browser.get(f"{base}/loopline/models/churn")
    wait.until(lambda d: "/auth/login" in d.current_url)
    assert re.search(r"next=%2Floopline%2Fmodels%2Fchurn", browser.current_url)
    wait.until(lambda d: d.find_elements(By.NAME, "username"))
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form button[type='submit']").click()
    wait.until(lambda d: d.current_url == f"{base}/loopline/models/churn")
    assert "rejected" in visible(browser, "table.history")

    for path in (overview_png, model_png, overview_full, model_full, report_png):
        width, height = png_size(path)
        assert width == 1600 and height >= 600, (path, width, height)
        assert path.stat().st_size > 20_000, f"{path} looks blank"
