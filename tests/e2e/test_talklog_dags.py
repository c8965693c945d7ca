"""The talk-log DAGs run whole through Airflow (`dag.test()`) against the store and emulator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag

from talklog_dev.synth.examples import write_examples

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAY = dt.date(2026, 1, 9)
TOKYO = "Asia/Tokyo"


@pytest.fixture
def dags():
    return DagBag(dag_folder=str(DAGS_FOLDER)).dags


def test_link_sync_then_hourly_run_writes_section_5_examples(
    airflow_db, connections, sf_emulator, dags
):
    targets = {
        name: sf_emulator.create_record("ExternalContact__c", Name=label)
        for name, label in (("yamada", "山田 太郎"), ("sato", "佐藤 花子"))
    }
    examples = write_examples(connections, DAY, targets)
    sync = dags["talklog_link_sync"].test(logical_date=pendulum.datetime(2026, 1, 10, tz=TOKYO))
    assert sync.state == "success"
    assert len(sf_emulator.records("LineWorks__c")) == sum(
        len(e.link_keys) for e in examples.values()
    )

    # The examples talk at 10:00 local on Jan 9: the hourly run with the data interval
    # [Jan 10 10:00, 11:00) writes them.
    run = dags["talklog_hourly"].test(logical_date=pendulum.datetime(2026, 1, 10, 11, tz=TOKYO))
    assert run.state == "success"
    talklogs = sf_emulator.records("TalkLog__c")
    for name, example in examples.items():
        written = {
            row["ExternalContact__c"]: int(float(row["MessageCount__c"]))
            for row in talklogs
            if row["RoomId__c"] == example.room_id
        }
        assert written == {t.target_id: t.message_count for t in example.transcripts}, name
    assert {row["WindowStart__c"][:16] for row in talklogs} == {"2026-01-09T01:00"}


def test_relink_dag_moves_records_after_a_lead_link_and_conversion(
    airflow_db, connections, sf_emulator, dags
):
    ec = sf_emulator.create_record("ExternalContact__c", Name="山田 太郎")
    write_examples(connections, DAY, {"yamada": ec, "sato": ec})
    at = pendulum.datetime(2026, 1, 10, 11, tz=TOKYO)
    assert dags["talklog_link_sync"].test(logical_date=at).state == "success"
    assert dags["talklog_hourly"].test(logical_date=at).state == "success"
    lead = sf_emulator.create_record("Lead", LastName="山田", Company="山田商店")
    sf_emulator.salesforce().ExternalContact__c.update(ec, {"Lead__c": lead})
    converted = sf_emulator.convert_lead(lead, personAccount=True)

    run = dags["talklog_relink"].test(logical_date=at.add(hours=1))
    assert run.state == "success"
    placements = {
        (row["Lead__c"], row["Account__c"], row["Contact__c"])
        for sobject in ("LineWorks__c", "TalkLog__c")
        for row in sf_emulator.records(sobject)
    }
    assert placements == {(None, converted["accountId"], converted["contactId"])}
    tasks = [t for t in sf_emulator.records("Task") if t.get("LineWorksKind__c")]
    assert {(t["WhoId"], t["WhatId"]) for t in tasks} == {
        (converted["contactId"], converted["accountId"])
    }


def test_an_exhausted_api_budget_fails_the_run_at_once_and_loses_nothing(
    airflow_db, connections, sf_emulator, dags
):
    ec = sf_emulator.create_record("ExternalContact__c", Name="山田 太郎")
    write_examples(connections, DAY, {"yamada": ec, "sato": ec})
    at = pendulum.datetime(2026, 1, 10, 11, tz=TOKYO)
    assert dags["talklog_link_sync"].test(logical_date=at).state == "success"
    sf_emulator.set_faults(daily_api_budget=0)
    run = dags["talklog_hourly"].test(logical_date=at)
    assert run.state == "failed"
    write = run.get_task_instance("write_talk_logs")
    assert write.state == "failed" and write.try_number == 1  # no retries against the limit
    assert sf_emulator.records("TalkLog__c") == []
