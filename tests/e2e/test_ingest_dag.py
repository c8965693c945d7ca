"""LINE WORKS as the source, whole DAG runs (`dag.test()`): the LINE WORKS emulator through the
real hook and an Airflow connection -> the store -> the Salesforce emulator.

The store holds the generated world's people, rooms and links but no message: every message
comes from the Monitoring API download of the run's own window.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pendulum
import pytest
import sqlalchemy as sa

from talklog import coverage, quarantine
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import (
    CoverageSource,
    Delivery,
    LineWorksUser,
    Message,
    RoomMember,
    RoomType,
)
from talklog.store.models import Room as RoomRow
from talklog.windows import ScheduleChoice
from talklog_airflow import dag_factory
from talklog_dev.lineworks_emulator import export
from talklog_dev.lineworks_emulator.process import LineWorksEmulatorHandle, run_lineworks_emulator
from talklog_dev.synth.generator import GeneratorConfig, generate
from talklog_dev.synth.lineworks import lineworks_world

TOKYO = "Asia/Tokyo"
DAY = dt.date(2025, 1, 9)
WORLD = {"messages": 80, "n_staff": 3, "n_customers": 5, "n_rooms": 4}
ARGS = ("--day", DAY.isoformat(), "--days", "1", "--messages", "80", "--staff", "3")
ARGS += ("--customers", "5", "--rooms", "4")


@pytest.fixture(scope="module")
def lineworks(tmp_path_factory) -> Iterator[LineWorksEmulatorHandle]:
    with run_lineworks_emulator(tmp_path_factory.mktemp("lw"), *ARGS) as handle:
        yield handle


@pytest.fixture
def world(airflow_db, sf_emulator, lineworks, sqlite_url, monkeypatch):
    """The store (people, rooms, links; no messages) and every connection, source lineworks."""
    lineworks.reset()
    upgrade(sqlite_url)

    def target(kind, n):
        return sf_emulator.create_record("ExternalContact__c", Name=f"外部連絡先 {n}")

    config = GeneratorConfig(seed=1, day=DAY, days=1, tz=TOKYO, target_ids=target, **WORLD)
    generate(sqlite_url, config)
    sessions = make_session_factory(sqlite_url)
    with sessions.begin() as session:
        session.execute(sa.delete(Message))
    for key, value in {**sf_emulator.airflow_conn_env(), **lineworks.airflow_conn_env()}.items():
        monkeypatch.setenv(key, value)
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": sqlite_url}}
    monkeypatch.setenv("AIRFLOW_CONN_TALKLOG_STORE", json.dumps(store))
    monkeypatch.setenv("TALKLOG_LINK_SOURCE", "store")  # the generator's links are the store's
    monkeypatch.setattr(dag_factory, "TALK_SOURCE", "lineworks")
    return sessions, config


def talk_rows(config: GeneratorConfig, period: str, renamed=None) -> list:
    """The world's talks (bot posts excluded) a download of `period` returns."""
    start, end = (dt.datetime.fromisoformat(p) for p in period.split(" .. "))
    rows = lineworks_world(config).talk_rows(renamed)
    return list(export.in_period(rows, start, end, "exclude"))


def returned(run, task_id: str) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        run_id=run.run_id, key="return_value", dag_ids=run.dag_id, task_ids=task_id
    )
    with create_session() as session:
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row else {}


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def one_to_one_customer(sessions) -> str:
    with sessions() as session:
        return session.scalar(
            sa.select(RoomMember.line_user_id)
            .join(RoomRow, RoomRow.id == RoomMember.room_id)
            .where(RoomRow.room_type == RoomType.ONE_TO_ONE.value)
            .where(RoomMember.line_user_id.is_not(None))
            .limit(1)
        )


def sync_directory_and_links() -> None:
    link_sync = dag_factory.build_link_sync_dag().test(
        logical_date=pendulum.datetime(2025, 1, 10, 0, tz=TOKYO)
    )
    assert link_sync.state == "success", states(link_sync)


def test_hourly_then_daily_store_and_deliver_every_message_once_across_a_rename(
    world, lineworks, sf_emulator
):
    sessions, config = world
    sync_directory_and_links()
    with sessions() as session:
        assert all(session.scalars(sa.select(LineWorksUser.email)))  # staff from /users

    hourly = dag_factory.build_talklog_dag(ScheduleChoice.HOURLY)
    first = hourly.test(logical_date=pendulum.datetime(2025, 1, 10, 12, tz=TOKYO))
    assert first.state == "success", states(first)
    lineworks.rename(one_to_one_customer(sessions), "改名しました🌸")
    daily = dag_factory.build_talklog_dag(ScheduleChoice.DAILY)
    second = daily.test(logical_date=pendulum.datetime(2025, 1, 11, 1, tz=TOKYO))
    assert second.state == "success", states(second)

    ingested = returned(second, "ingest_talks")
    expected = talk_rows(config, ingested["period"])
    assert ingested["talks_downloaded"] == len(expected)
    assert returned(first, "ingest_talks")["messages_new"] > 0
    assert ingested["messages_known"] >= returned(first, "ingest_talks")["messages_new"]
    with sessions() as session:
        stored = session.scalar(sa.select(sa.func.count()).select_from(Message))
        deliveries = session.scalar(sa.select(sa.func.count()).select_from(Delivery))
        assert quarantine.open_rows(session) == []
    assert stored == len(expected)  # every message once, renamed sender or not
    written = sum(int(float(r["MessageCount__c"])) for r in sf_emulator.records("TalkLog__c"))
    assert written == deliveries > 0  # each (message, customer) pair in one TalkLog only


@pytest.mark.parametrize(
    "fault", [{"download_error": True}, {"truncate": "record"}, {"header": "Date,From,Body"}]
)
def test_a_failed_download_writes_nothing_and_the_run_waits_then_fails_until_ingested(
    world, lineworks, sf_emulator, monkeypatch, fault
):
    monkeypatch.setattr(dag_factory, "COVERAGE_WAIT", dt.timedelta(0))
    sync_directory_and_links()
    hourly = dag_factory.build_talklog_dag(ScheduleChoice.HOURLY)
    at = pendulum.datetime(2025, 1, 10, 12, tz=TOKYO)
    lineworks.set_faults(**fault)
    failed = hourly.test(logical_date=at)
    assert failed.state == "failed"
    assert states(failed)["ingest_talks"] == "failed"
    assert states(failed)["wait_for_talks"] == "failed"  # waited, then "not ingested yet"
    assert states(failed)["write_talk_logs"] == "upstream_failed"
    assert [r for r in sf_emulator.records("TalkLog__c") if r["RoomId__c"]] == []
    with world[0]() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Message)) == 0

    lineworks.set_faults(download_error=False, truncate="", header=None)
    again = hourly.test(logical_date=at)  # the same window, ingested this time
    assert again.state == "success", states(again)
    assert returned(again, "ingest_talks")["messages_new"] > 0
    assert sf_emulator.records("TalkLog__c")


def test_an_uncovered_window_waits_fails_with_the_message_then_writes_once_covered(
    world, monkeypatch, capsys, caplog
):
    monkeypatch.setattr(dag_factory, "TALK_SOURCE", "import")  # exports, no download
    monkeypatch.setattr(dag_factory, "COVERAGE_WAIT", dt.timedelta(0))
    hourly = dag_factory.build_talklog_dag(ScheduleChoice.HOURLY)
    at = pendulum.datetime(2025, 1, 10, 12, tz=TOKYO)
    run = hourly.test(logical_date=at)
    assert (states(run)["wait_for_talks"], states(run)["write_talk_logs"]) == (
        "failed",
        "upstream_failed",
    )
    said = capsys.readouterr().out + capsys.readouterr().err + caplog.text
    assert "talks of 2025-01-09 11:00 – 11:59 (Asia/Tokyo) are not ingested yet" in said

    with world[0].begin() as session:  # what `talklog import --covers` records
        start = dt.datetime(2025, 1, 9, 2, tzinfo=dt.UTC)
        coverage.record(session, start, start + dt.timedelta(hours=1), CoverageSource.IMPORT)
    again = hourly.test(logical_date=at)
    assert states(again)["write_talk_logs"] == "success", states(again)
