"""The console in a real browser: Debian's chromium driven by selenium against `make airflow`'s
topology (api-server, scheduler, dag-processor on 127.0.0.1; `console_airflow` in conftest.py,
shared with the `talklog backfill` test), its emulator and a message store with the spec's
examples.

The test runs the link sync and one hourly window (a backfill of one data interval), then in
the Airflow UI: the run's "Talk log" tab shows its window and counts; the "Talk logs" page,
set to the talk day, shows that window written by that run and the other 23 as gaps; Replay
clears a dead letter (the replay DAG runs for real); the backfill form creates the other 23
runs. Screenshots of the tab and the page go to docs/. Skipped, with the reason, when chromium,
chromedriver or selenium are missing (`make browser` installs Debian's packages).
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from talklog import deadletters
from talklog.store import make_session_factory
from talklog_dev.localstack import LocalAirflow
from tests.e2e.conftest import EXAMPLES_DAY

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
DAY = EXAMPLES_DAY
# The runs of the talk day's windows (logical date = data interval start, a day after the talk):
# the topology may also hold the `talklog backfill` test's runs of another day.
DAY_RUNS = {
    "logical_date_gte": "2026-01-09T15:00:00Z",
    "logical_date_lte": "2026-01-10T14:00:00Z",
    "run_type": "backfill",
}
WINDOW_LABEL = "2026-01-09 10:00 – 10:59 (Asia/Tokyo)"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
TERMINAL = {"success", "failed"}


def _browser_missing() -> str | None:
    if not CHROMIUM or not CHROMEDRIVER:
        return "chromium/chromedriver not installed (`make browser` installs Debian's packages)"
    try:
        import selenium  # ruff: ignore[unused-import]
    except ImportError:
        return "selenium is not installed (dev group)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _needs_a_browser() -> None:
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=en"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Any, timeout: float, what: str, topology: LocalAirflow) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topology.check_alive()
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise TimeoutError(f"{what} not done after {timeout} s\n{topology.tail('scheduler')}")


def finished(topology: LocalAirflow, dag_id: str, count: int = 1, **filters: Any) -> list:
    runs = topology.dag_runs(dag_id, **filters)
    done = len(runs) >= count and all(r["state"] in TERMINAL for r in runs)
    return runs if done else []


def prepare(topology: LocalAirflow) -> dict[str, Any]:
    """Link sync, then the hourly window of Jan 9 10:00 through a one-interval backfill."""
    for dag_id in ("talklog_link_sync", "talklog_hourly", "talklog_replay_dead_letters"):
        topology.wait_dag(dag_id)
    topology.unpause("talklog_link_sync")
    sync = wait_for(lambda: finished(topology, "talklog_link_sync"), 90, "link sync", topology)
    assert [r["state"] for r in sync] == ["success"]
    topology.unpause("talklog_hourly")
    topology.unpause("talklog_replay_dead_letters")
    at = "2026-01-10T10:00:00+09:00"
    body = {"dag_id": "talklog_hourly", "from_date": at, "to_date": at, "max_active_runs": 1}
    backfill = topology.api("POST", "/api/v2/backfills", body)
    runs = wait_for(
        lambda: finished(topology, "talklog_hourly", **DAY_RUNS), 90, "hourly", topology
    )
    assert [r["state"] for r in runs] == ["success"], runs
    wait_for(
        lambda: topology.api("GET", f"/api/v2/backfills/{backfill['id']}").get("completed_at"),
        30,
        "the first backfill's completion",
        topology,
    )
    return runs[0]


def record_letter(store_url: str, emulator: Any) -> None:
    """A LineWorks__c row Salesforce refused once; its cause is gone, so a replay passes."""
    row = emulator.records("LineWorks__c")[0]
    payload = {k: v for k, v in row.items() if k.endswith("__c") and v is not None}
    letter = deadletters.Rejection(
        "LineWorks__c", payload["LinkKey__c"], "FIELD_INTEGRITY_EXCEPTION", "was", None, payload
    )
    with make_session_factory(store_url).begin() as session:
        deadletters.record(session, [letter], dt.datetime.now(dt.UTC), dag_id="t", run_id="t")


def open_plugin(browser: Any, url: str, title: str) -> None:
    """Open a UI page and switch into the plugin's iframe once it has rendered."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    try:
        WebDriverWait(browser, 45).until(
            ec.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, f'iframe[title="{title}"]'))
        )
    except Exception:
        browser.save_screenshot("/tmp/h19-fail.png")
        Path("/tmp/h19-fail.html").write_text(browser.page_source)
        raise
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))


def test_console_in_the_airflow_ui(console_airflow, browser):
    from selenium.webdriver.common.by import By

    topology, store_url = console_airflow.topology, console_airflow.store_url
    run = prepare(topology)
    base = topology.config.api_url

    # The run's "Talk log" tab.
    run_id = run["dag_run_id"]
    open_plugin(browser, f"{base}/dags/talklog_hourly/runs/{run_id}/plugin/talklog-run", "Talk log")
    assert browser.find_element(By.ID, "window").text.startswith(WINDOW_LABEL)
    assert "UTC+09:00" in browser.find_element(By.ID, "window").text
    summary = browser.find_element(By.ID, "summary").text
    assert "Messages" in summary and "TalkLogs › written" in summary
    assert browser.find_element(By.ID, "state").text == "success"
    browser.switch_to.default_content()
    browser.save_screenshot(str(DOCS / "console-tab.png"))
    note = topology.api("GET", f"/api/v2/dags/talklog_hourly/dagRuns/{run_id}")["note"]
    assert note.startswith(WINDOW_LABEL)

    # The "Talk logs" page, set to the talk day.
    record_letter(store_url, console_airflow.emulator)
    open_plugin(browser, f"{base}/plugin/talklog", "Talk logs")
    day = DAY.isoformat()
    browser.execute_script(
        "const f = document.getElementById('range');"
        "f.talks_from.value = arguments[0]; f.talks_to.value = arguments[0];"
        "f.dag_id.value = 'talklog_hourly'; f.submit();",
        day,
    )
    table = _element(browser, "windows")
    rows = table.find_elements(By.CSS_SELECTOR, "tr[data-start]")
    assert len(rows) == 24
    written = [r for r in rows if "written" in r.get_attribute("class")]
    assert len(written) == 1 and WINDOW_LABEL in written[0].text and run_id in written[0].text
    assert len([r for r in rows if "gap" in r.get_attribute("class").split()]) == 23
    assert "FIELD_INTEGRITY_EXCEPTION" in _element(browser, "letters").text
    browser.switch_to.default_content()
    browser.save_screenshot(str(DOCS / "console-page.png"))

    # Replay clears the dead letter.
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, 'iframe[title="Talk logs"]'))
    browser.find_element(By.CSS_SELECTOR, "button.replay").click()
    assert "replay triggered" in _element(browser, "done").text
    replays = wait_for(
        lambda: finished(topology, "talklog_replay_dead_letters"), 90, "replay", topology
    )
    assert [r["state"] for r in replays] == ["success"], replays
    browser.execute_script("location.reload()")  # the iframe, not the UI around it
    assert _element(browser, "no-letters").text == "No open dead letters."

    # The backfill form creates the other 23 windows' runs.
    browser.find_element(By.ID, "backfill").click()
    assert "23 windows" in _text_of(browser, "done", "windows")  # not the replay's answer
    backfills = topology.api("GET", "/api/v2/backfills", dag_id="talklog_hourly")["backfills"]
    newest = max(backfills, key=lambda b: b["id"])
    assert newest["from_date"].startswith("2026-01-09T15:00:00")
    assert newest["to_date"].startswith("2026-01-10T14:00:00")
    runs = topology.dag_runs("talklog_hourly", **DAY_RUNS)
    assert len(runs) == 24
    topology.api("PUT", f"/api/v2/backfills/{newest['id']}/cancel")


def _element(browser: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, element_id)))


def _text_of(browser: Any, element_id: str, expected: str) -> str:
    """The element's text once it holds `expected` (the page before the click may still be
    there with an element of the same id)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    located = (By.ID, element_id)
    WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element(located, expected))
    return browser.find_element(*located).text
