"""The link-sync DAG with TALKLOG_LINK_SOURCE=salesforce (issue 18): it mirrors the LINE
WORKS contacts and reads a rep's link back; the store-authored path does not run."""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag

from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import LineContact, LineUser, LineWorksUser, Link

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


def test_the_link_sync_dag_reads_a_reps_link_from_salesforce(
    airflow_db, sf_emulator, sqlite_url, monkeypatch
):
    upgrade(sqlite_url)
    for key, value in sf_emulator.airflow_conn_env().items():
        monkeypatch.setenv(key, value)
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": sqlite_url}}
    monkeypatch.setenv("AIRFLOW_CONN_TALKLOG_STORE", json.dumps(store))
    monkeypatch.setenv("TALKLOG_LINK_SOURCE", "salesforce")
    sessions = make_session_factory(sqlite_url)
    with sessions.begin() as session:
        session.add(LineWorksUser(id="lw-suzuki", display_name="鈴木 一郎"))
        session.add(LineUser(id="U-yamada", display_name="山田 太郎"))
        session.flush()
        session.add(
            LineContact(
                contact_id="contact-1",
                line_user_id="U-yamada",
                master_lw_user_id="lw-suzuki",
                display_name="山田 太郎様",
            )
        )
    target = sf_emulator.create_record("ExternalContact__c", Name="山田 太郎")
    rep = sf_emulator.create_record("User", Username="rep@talklog.example", LastName="Rep")
    dag = DagBag(dag_folder=str(DAGS_FOLDER)).dags["talklog_link_sync"]

    assert dag.test(logical_date=pendulum.datetime(2026, 1, 10, tz="UTC")).state == "success"
    (record,) = sf_emulator.records("LineWorks__c")
    assert record["LinkKey__c"] == "contact-1" and record["Linked__c"] is False
    sf_emulator.admin(
        "POST", "rep-click", {"linkKey": "contact-1", "parentId": target, "userId": rep}
    )
    assert dag.test(logical_date=pendulum.datetime(2026, 1, 10, 0, 10, tz="UTC")).state == "success"
    with sessions() as session:
        link = session.scalars(sa.select(Link)).one()
        assert (link.link_key, link.linked, link.target_id[:15]) == ("contact-1", True, target[:15])
    tasks = [t for t in sf_emulator.records("Task") if t["Subject"] == "LINE WORKS交換"]
    assert len(tasks) == 1
