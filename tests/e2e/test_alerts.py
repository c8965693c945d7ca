"""Alerts reach a real local webhook: a failed run, and a low daily API budget after a run.

A small HTTP server on 127.0.0.1 (started and stopped by the test) stands in for the team's
webhook; the `talklog_alerts` connection points at it. The DAGs run whole through `dag.test()`
against the emulator and a SQLite store.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag

from talklog.store.migrate import upgrade
from talklog_dev.synth.examples import write_examples

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAY = dt.date(2026, 1, 9)
RUN_AT = pendulum.datetime(2026, 1, 10, 11, tz="Asia/Tokyo")  # writes Jan 9 10:00-10:59


class Webhook:
    """Collects the JSON documents POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook.raw.append(body)
                webhook.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/talklog"

    def alerts(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.received if doc["alert"] == kind]


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_TALKLOG_ALERTS", json.dumps({"conn_type": "http", "host": hook.url})
    )
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def linked(sf_emulator, sqlite_url, monkeypatch) -> dict[str, Any]:
    """The section-5 examples in a SQLite store, linked to emulator records and synced."""
    upgrade(sqlite_url)
    for key, value in sf_emulator.airflow_conn_env().items():
        monkeypatch.setenv(key, value)
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": sqlite_url}}
    monkeypatch.setenv("AIRFLOW_CONN_TALKLOG_STORE", json.dumps(store))
    monkeypatch.setenv("TALKLOG_LINK_SOURCE", "store")  # the examples' links are the store's
    targets = {
        name: sf_emulator.create_record("ExternalContact__c", Name=label)
        for name, label in (("yamada", "山田 太郎"), ("sato", "佐藤 花子"))
    }
    examples = write_examples(sqlite_url, DAY, targets)
    return {"examples": examples, "url": sqlite_url}


@pytest.fixture
def dags() -> dict[str, Any]:
    return DagBag(dag_folder=str(DAGS_FOLDER)).dags


def message_texts(url: str) -> list[str]:
    import sqlalchemy as sa

    from talklog.store.models import Message

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        texts = [t for t in conn.scalars(sa.select(Message.text)) if t]
    engine.dispose()
    return texts


def assert_no_content(webhook: Webhook, url: str) -> None:
    raw = b"".join(webhook.raw).decode("utf-8")
    assert raw and not any(text in raw for text in message_texts(url))
    assert "secret" not in raw.lower() and "password" not in raw.lower()


def test_low_api_budget_after_a_run_posts_an_alert(
    airflow_db, linked, sf_emulator, dags, webhook, monkeypatch
):
    sf_emulator.set_faults(daily_api_budget=200)
    monkeypatch.setenv("TALKLOG_API_BUDGET_ALERT_PERCENT", "95")  # alert below 190 remaining
    assert dags["talklog_link_sync"].test(logical_date=RUN_AT).state == "success"
    run = dags["talklog_hourly"].test(logical_date=RUN_AT)
    assert run.state == "success"

    (alert,) = webhook.alerts("api_budget_low")
    used = sf_emulator.stats()["daily_api_requests"]
    assert alert["dag_id"] == "talklog_hourly" and alert["run_id"] == run.run_id
    assert alert["task_id"] == "check_api_budget"
    assert alert["talk_window"] == ["2026-01-09T01:00:00+00:00", "2026-01-09T02:00:00+00:00"]
    assert alert["daily_api_requests_max"] == 200
    assert 0 < alert["daily_api_requests_remaining"] < 190
    assert alert["threshold_percent"] == 95
    assert not webhook.alerts("task_failed"), webhook.received
    assert used, "the emulator counts the calls the alert is about"
    assert_no_content(webhook, linked["url"])


def test_a_plenty_budget_sends_nothing(airflow_db, linked, sf_emulator, dags, webhook):
    assert dags["talklog_link_sync"].test(logical_date=RUN_AT).state == "success"
    assert dags["talklog_hourly"].test(logical_date=RUN_AT).state == "success"
    assert webhook.received == []


def test_a_failed_run_posts_which_task_failed_and_the_error_class(
    airflow_db, linked, sf_emulator, dags, webhook
):
    assert dags["talklog_link_sync"].test(logical_date=RUN_AT).state == "success"
    sf_emulator.set_faults(lock_failure_rate=1.0)  # every row rejected -> dead letters
    run = dags["talklog_hourly"].test(logical_date=RUN_AT)
    assert run.state == "failed"

    (alert,) = webhook.alerts("task_failed")
    assert alert["dag_id"] == "talklog_hourly" and alert["run_id"] == run.run_id
    assert alert["task_id"] == "check_dead_letters"
    assert alert["error_class"] == "AirflowFailException"
    assert alert["talk_window"] == ["2026-01-09T01:00:00+00:00", "2026-01-09T02:00:00+00:00"]
    assert_no_content(webhook, linked["url"])


def test_without_a_connection_the_notifier_only_logs(
    airflow_db, linked, sf_emulator, dags, caplog, monkeypatch
):
    sf_emulator.set_faults(daily_api_budget=200)
    monkeypatch.setenv("TALKLOG_API_BUDGET_ALERT_PERCENT", "95")
    assert dags["talklog_link_sync"].test(logical_date=RUN_AT).state == "success"
    assert dags["talklog_hourly"].test(logical_date=RUN_AT).state == "success"
    assert "Alert api_budget_low not sent: no 'talklog_alerts' connection" in caplog.text
