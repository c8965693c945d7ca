"""Link, unlink and re-link reach Salesforce in one link-sync run; exchange Tasks once."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from talklog.links import WATERMARK, sync_links
from talklog.loading import BulkLoader
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import Link, LinkPeriod, Watermark
from talklog_dev.synth.examples import one_to_one_linked
from tests.integration.talklog_world import direct_clients

DAY = dt.date(2026, 1, 9)


def setup(sf_emulator, sqlite_url):
    upgrade(sqlite_url)
    ec = sf_emulator.create_record("ExternalContact__c", Name="山田 太郎")
    one_to_one_linked(sqlite_url, DAY, {"yamada": ec})
    clients = direct_clients(sf_emulator)
    sessions = make_session_factory(sqlite_url)
    loader = BulkLoader(clients.bulk, sessions, sleep=lambda _: None)

    def sync():
        return sync_links(sessions=sessions, query_all=clients.query_all, loader=loader)

    return sessions, sync


def linkworks(sf_emulator) -> tuple:
    (row,) = sf_emulator.records("LineWorks__c")
    return row["Linked__c"], row.get("Nickname__c"), row.get("AppLink__c")


def exchange_tasks(sf_emulator) -> list[dict]:
    return [t for t in sf_emulator.records("Task") if t["Subject"] == "LINE WORKS交換"]


def change_link(sessions, *, linked: bool, when: dt.datetime) -> None:
    """What the LINE WORKS side writes when a user presses "do not link" or links again."""
    with sessions.begin() as session:
        link = session.scalars(sa.select(Link)).one()
        link.linked, link.updated_at = linked, when
        if linked:
            link.linked_at, link.unlinked_at = when, None
            session.add(LinkPeriod(link_id=link.id, started_at=when))
        else:
            link.unlinked_at = when
            period = session.scalars(
                sa.select(LinkPeriod).where(LinkPeriod.ended_at.is_(None))
            ).one()
            period.ended_at = when


def test_link_unlink_and_relink_each_show_up_after_one_run(sf_emulator, sqlite_url):
    sessions, sync = setup(sf_emulator, sqlite_url)
    first = sync()
    assert first.linked == 1 and first.linkworks["written"] == 1
    linked, nickname, app_link = linkworks(sf_emulator)
    assert linked is True and nickname and app_link.startswith("https://")
    assert len(exchange_tasks(sf_emulator)) == 1

    later = dt.datetime(2026, 1, 10, 3, tzinfo=dt.UTC)
    change_link(sessions, linked=False, when=later)
    assert sync().unlinked == 1
    assert linkworks(sf_emulator) == (False, None, None)
    assert len(exchange_tasks(sf_emulator)) == 1

    change_link(sessions, linked=True, when=later + dt.timedelta(hours=1))
    assert sync().linked == 1
    assert linkworks(sf_emulator) == (True, nickname, app_link)
    assert len(exchange_tasks(sf_emulator)) == 2  # a new link: one more exchange
    assert len(sf_emulator.records("LineWorks__c")) == 1


def test_a_retried_run_creates_the_exchange_task_once(sf_emulator, sqlite_url):
    sessions, sync = setup(sf_emulator, sqlite_url)
    sync()
    with sessions.begin() as session:  # the retry of a run whose watermark was not saved
        session.execute(sa.delete(Watermark).where(Watermark.name == WATERMARK))
    again = sync()
    assert again.linkworks["written"] == 1 and again.exchange_tasks["written"] == 1  # upserted
    assert len(exchange_tasks(sf_emulator)) == 1
    assert len(sf_emulator.records("LineWorks__c")) == 1
    assert sync().links == 0  # nothing changed since: nothing sent


def test_a_talk_log_task_letter_rides_along_with_the_exchange_tasks_in_its_own_job(
    sf_emulator, sqlite_url
):
    """Letters of one object can have other columns than the load they join (here a talk-log
    Task and the exchange Tasks): each column set goes in a job of its own."""
    from talklog import deadletters
    from talklog.deadletters import Rejection

    sessions, sync = setup(sf_emulator, sqlite_url)
    (ec,) = sf_emulator.records("ExternalContact__c")
    payload = {
        "LineWorksKey__c": "log|room-1|w|x|1",
        "Subject": "LINE WORKSログ",
        "Description": "2026-01-09 10:00 [LINE] 山田: こんにちは",
        "Status": "Completed",
        "ActivityDate": DAY.isoformat(),
        "OwnerId": "",
        "WhoId": "",
        "WhatId": ec["Id"],
        "LineWorksRoomId__c": "room-1",
        "TalkLogKey__c": "room-1|w|x|1",
        "LineWorksKind__c": "TalkLog",
    }
    rejection = Rejection(
        "Task", payload["LineWorksKey__c"], "UNABLE_TO_LOCK_ROW", "", None, payload
    )
    with sessions.begin() as session:
        deadletters.record(session, [rejection], dt.datetime.now(dt.UTC), dag_id=None, run_id=None)
    summary = sync()
    assert summary.exchange_tasks["dead_letters_retried"] == 1
    assert summary.exchange_tasks["rejected"] == 0
    assert len(exchange_tasks(sf_emulator)) == 1
    logs = [
        t for t in sf_emulator.records("Task") if t.get("LineWorksKey__c") == "log|room-1|w|x|1"
    ]
    assert len(logs) == 1
    with sessions() as session:
        assert deadletters.open_letters(session, retryable_only=False) == []
