"""The console plugin inside Airflow's own api-server app: real DAG runs (`dag.test()`), the
store and the emulator, Airflow's auth manager and REST API."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag

from talklog import deadletters
from talklog.store import make_session_factory
from talklog_dev.synth.examples import write_examples

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAY = dt.date(2026, 1, 9)
TOKYO = "Asia/Tokyo"
WINDOW_LABEL = "2026-01-09 10:00 – 10:59 (Asia/Tokyo)"


@pytest.fixture(scope="module")
def dags():
    return DagBag(dag_folder=str(DAGS_FOLDER)).dags


@pytest.fixture
def written(airflow_db, connections, sf_emulator, dags):
    """The link sync and the hourly run of Jan 10 11:00 (the talks of Jan 9 10:00-10:59)."""
    targets = {
        name: sf_emulator.create_record("ExternalContact__c", Name=label)
        for name, label in (("yamada", "山田 太郎"), ("sato", "佐藤 花子"))
    }
    examples = write_examples(connections, DAY, targets)
    at = pendulum.datetime(2026, 1, 10, 11, tz=TOKYO)
    assert dags["talklog_link_sync"].test(logical_date=at).state == "success"
    run = dags["talklog_hourly"].test(logical_date=at)
    assert run.state == "success"
    return run, examples


def _letter(store_url: str, code: str = "INVALID_FIELD") -> None:
    rejection = deadletters.Rejection(
        "TalkLog__c", "log|key|1", code, "bad field", None, {"TalkLogKey__c": "log|key|1"}
    )
    with make_session_factory(store_url).begin() as session:
        deadletters.record(session, [rejection], dt.datetime.now(dt.UTC), dag_id="d", run_id="r")


def test_run_tab_shows_the_talk_window_counts_and_the_note(airflow_api, written):
    run, examples = written
    messages = sum(t.message_count for e in examples.values() for t in e.transcripts)
    answer = airflow_api.client.get(
        f"/talklog/api/runs/talklog_hourly/{run.run_id}", headers=airflow_api.headers("viewer")
    )
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["window"]["label"] == WINDOW_LABEL
    assert view["window"]["utc_offset"] == "UTC+09:00"
    assert view["state"] == "success" and view["summary"]["messages"] > 0
    assert view["one_line"].startswith(f"{view['summary']['messages']} messages")
    assert ("API calls used", str(view["summary"]["api_calls"])) in map(tuple, view["rows"])
    assert view["budget"]["daily_api_requests_remaining"] > 0
    html = airflow_api.client.get(
        f"/talklog/runs/talklog_hourly/{run.run_id}", headers=airflow_api.headers("viewer")
    ).text
    assert WINDOW_LABEL in html and "UTC+09:00" in html and "Ingestion coverage" in html
    assert messages >= 1
    assert view["note"] and view["note"].startswith(WINDOW_LABEL)  # set by the plugin's listener


def test_window_table_names_the_run_and_highlights_gaps(airflow_api, written):
    run, _ = written
    answer = airflow_api.client.get(
        "/talklog/api/windows",
        params={"dag_id": "talklog_hourly", "talks_from": "2026-01-09"},
        headers=airflow_api.headers("viewer"),
    )
    assert answer.status_code == 200, answer.text
    table = answer.json()
    assert len(table["windows"]) == 24
    states = {row["label"]: row["state"] for row in table["windows"]}
    assert states.pop(WINDOW_LABEL) == "written"
    assert set(states.values()) == {"gap"} and table["gaps"] == 23
    row = next(r for r in table["windows"] if r["label"] == WINDOW_LABEL)
    assert [r["run_id"] for r in row["runs"]] == [run.run_id]
    assert row["counts"]["messages"] > 0
    page = airflow_api.client.get(
        "/talklog/", params={"talks_from": "2026-01-09"}, headers=airflow_api.headers("viewer")
    )
    assert page.status_code == 200 and run.run_id in page.text and "23 gaps" in page.text


def test_dead_letters_trace_and_replay_through_airflows_api(airflow_api, written, connections):
    _, examples = written
    _letter(connections)
    letters = airflow_api.client.get(
        "/talklog/api/dead-letters", headers=airflow_api.headers("viewer")
    ).json()
    assert letters["open"] == 1
    assert letters["groups"][0] | {"oldest": None} == {
        "object_name": "TalkLog__c",
        "error_code": "INVALID_FIELD",
        "count": 1,
        "retryable": 0,
        "oldest": None,
    }
    message_key = next(iter(examples.values())).message_keys[0]
    lines = airflow_api.client.get(
        "/talklog/api/trace", params={"key": message_key}, headers=airflow_api.headers("viewer")
    ).json()["lines"]
    assert lines[0].startswith(f"message {message_key!r}") and "delivered" in "\n".join(lines)

    answer = airflow_api.client.post(
        "/talklog/replay",
        data={"object_name": "TalkLog__c", "error_code": "INVALID_FIELD"},
        headers=airflow_api.headers("user", Accept="application/json"),
    )
    assert answer.status_code == 200, answer.text
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        replay = DagRun.find(dag_id="talklog_replay_dead_letters", session=session)
        assert [r.run_id for r in replay] == [answer.json()["dag_run_id"]]
        assert replay[0].conf == {"object_name": "TalkLog__c", "error_code": "INVALID_FIELD"}
        assert replay[0].triggering_user_name == "user-user"  # as the signed-in user


def test_backfill_by_talk_date_creates_the_windows_runs(airflow_api, written):
    form = {"talks_from": "2026-01-09", "talks_to": "2026-01-09"}
    plan = airflow_api.client.get(
        "/talklog/api/backfill",
        params={"dag_id": "talklog_hourly", **form},
        headers=airflow_api.headers("viewer"),
    ).json()
    assert plan["to_run"] == 23 and len(plan["windows"]) == 24
    assert plan["request"]["from_date"] == "2026-01-09T15:00:00+00:00"
    assert [w["status"] for w in plan["windows"]].count("already ran") == 1
    answer = airflow_api.client.post(
        "/talklog/backfill?dag_id=talklog_hourly",
        data=form,
        headers=airflow_api.headers("user", Accept="application/json"),
    )
    assert answer.status_code == 200, answer.text
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        backfill = session.get(Backfill, answer.json()["backfill_id"])
        assert backfill.dag_id == "talklog_hourly"
        runs = session.query(BackfillDagRun).filter_by(backfill_id=backfill.id).all()
        assert len([r for r in runs if r.dag_run_id]) == 23


def test_forms_posted_with_the_cookie_need_the_pages_token(airflow_api, written):
    cookie = {"_token": airflow_api.token("admin")}
    page = airflow_api.client.get("/talklog/", cookies=cookie)
    assert page.status_code == 200
    refused = airflow_api.client.post(
        "/talklog/replay", data={"object_name": "Task"}, cookies=cookie, follow_redirects=False
    )
    assert refused.status_code == 403
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is None or token.group(1)  # the letters table has the form when letters exist
