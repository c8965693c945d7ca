"""The talk-log pipeline against a real store and the running Salesforce emulator."""

from __future__ import annotations

import datetime as dt

import pytest

from talklog import deadletters, ledger
from talklog.links import sync_links
from talklog.loading import BulkLoader
from talklog.pipeline import write_talk_logs
from talklog.replay import replay_dead_letters
from talklog.salesforce.bulk import BulkClient
from talklog.salesforce.calls import ApiCallCounter
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import TalkLogClaim
from talklog.talklogs import TalkLogSettings
from talklog.trace import trace_record
from talklog.windows import TalkWindow
from talklog_dev.synth.examples import write_examples

DAY = dt.date(2026, 1, 9)


@pytest.fixture
def world(sf_emulator, sqlite_url):
    """A migrated store holding the six section-5 examples, linked to records in the emulator."""
    upgrade(sqlite_url)
    targets = {
        name: sf_emulator.create_record("ExternalContact__c", Name=label)
        for name, label in (("yamada", "山田 太郎"), ("sato", "佐藤 花子"))
    }
    examples = write_examples(sqlite_url, DAY, targets)
    session = sf_emulator.session()
    counter = ApiCallCounter(session)
    sf = sf_emulator.salesforce()
    bulk = BulkClient(session, sf_emulator.instance_url, sf_emulator.token(), poll_interval=0.05)
    sessions = make_session_factory(sqlite_url)
    loader = BulkLoader(bulk, sessions, sleep=lambda _: None)
    return {
        "examples": examples,
        "targets": targets,
        "url": sqlite_url,
        "sessions": sessions,
        "query_all": sf.query_all_iter,
        "loader": loader,
        "counter": counter,
    }


def run_window(world, window: TalkWindow, **options):
    return write_talk_logs(
        sessions=world["sessions"],
        store_url=world["url"],
        query_all=world["query_all"],
        loader=world["loader"],
        window=window,
        settings=TalkLogSettings(),
        run_id="test",
        api_calls=lambda: world["counter"].total,
        **options,
    )


def day_window(examples) -> TalkWindow:
    example = next(iter(examples.values()))
    return TalkWindow(example.window_start, example.window_end)


# 0: the messages are read by the second process (`talklog.reader`), as in big windows.
@pytest.mark.parametrize("reader_process_min_messages", [None, 0], ids=["in-process", "reader"])
def test_section_5_examples_end_to_end_and_idempotent(
    world, sf_emulator, reader_process_min_messages
):
    links = sync_links(
        sessions=world["sessions"], query_all=world["query_all"], loader=world["loader"]
    )
    assert links.linkworks["rejected"] == 0 and links.linkworks["written"] == links.links
    assert len(sf_emulator.records("LineWorks__c")) == links.links
    window = day_window(world["examples"])
    first = run_window(world, window, reader_process_min_messages=reader_process_min_messages)
    assert first.rejected == 0, first.as_dict()

    talklogs = sf_emulator.records("TalkLog__c")
    for name, example in world["examples"].items():
        written = {
            row["ExternalContact__c"]: int(float(row["MessageCount__c"]))
            for row in talklogs
            if row["RoomId__c"] == example.room_id
        }
        expected = {t.target_id: t.message_count for t in example.transcripts}
        assert written == expected, name

    tasks = [t for t in sf_emulator.records("Task") if t["Subject"].startswith("LINE WORKSログ")]
    assert len(tasks) == len(talklogs)
    assert all(task["WhatId"] in world["targets"].values() for task in tasks)

    all_tasks = len(sf_emulator.records("Task"))
    second = run_window(world, window, reader_process_min_messages=reader_process_min_messages)
    assert second.rejected == 0 and second.talklogs["written"] == len(talklogs)
    assert second.tasks["written"] == len(tasks)
    assert len(sf_emulator.records("TalkLog__c")) == len(talklogs)  # updated, none created
    assert len(sf_emulator.records("Task")) == all_tasks
    print(first.as_dict())


def test_rejected_rows_become_dead_letters_that_a_replay_delivers(world, sf_emulator):
    sync_links(sessions=world["sessions"], query_all=world["query_all"], loader=world["loader"])
    sf_emulator.set_faults(lock_failure_rate=1.0)
    summary = run_window(world, day_window(world["examples"]))
    assert summary.rejected == 12 and summary.talklogs["rejected_by_code"] == {
        "UNABLE_TO_LOCK_ROW": 6
    }
    assert sf_emulator.records("TalkLog__c") == []
    with world["sessions"]() as session:
        assert deadletters.count_open(session) == {"UNABLE_TO_LOCK_ROW": 12}
        assert ledger.entries(session, TalkLogClaim.delivered_at.is_not(None)) == []
        letter = deadletters.open_letters(session, retryable_only=True, object_name="TalkLog__c")[0]
        assert "UNABLE_TO_LOCK_ROW" in "\n".join(trace_record(session, letter.record_key))

    sf_emulator.set_faults(lock_failure_rate=0.0)
    replayed = replay_dead_letters(
        sessions=world["sessions"],
        store_url=world["url"],
        query_all=world["query_all"],
        loader=world["loader"],
        settings=TalkLogSettings(),
    )
    assert replayed.rejected == 0
    assert len(sf_emulator.records("TalkLog__c")) == 6
    with world["sessions"]() as session:
        assert deadletters.count_open(session) == {}
        assert ledger.entries(session, TalkLogClaim.delivered_at.is_(None)) == []
