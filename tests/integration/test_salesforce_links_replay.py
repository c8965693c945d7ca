"""Replaying link letters when links are made in Salesforce (issue 18; the default link
source), through the real clients against the HTTPS emulator: a rep links, a write of the
project is refused by an admin's validation rule (a dead letter), the rep changes the link in
Salesforce, the admin removes the rule, the replay runs. The rep's tick and parent stand, the
project's fields are what the link sync writes for the rep's decision, the letter closes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from talklog import deadletters
from talklog.replay import ReplaySummary, replay_dead_letters
from talklog.store.models import DeadLetter, LineContact, Link, LinkPeriod
from talklog.talklogs import TalkLogSettings
from tests.integration.test_salesforce_links import Org, exchange_tasks, org, stamp

__all__ = ["org"]  # the fixture of test_salesforce_links
RENAMED = "山田様（新）"  # the directory's new name: the nickname rule refuses it
NICKNAME_RULE = {
    "name": "No_Notes_In_Nickname",
    "object": "LineWorks__c",
    "field": "Nickname__c",
    "condition": "contains",
    "value": "（",
    "error_field": "Nickname__c",
    "message": "Notes go in the description, not in the nickname",
}
EXCHANGE_RULE = {
    "name": "No_Exchange_Tasks",
    "object": "Task",
    "field": "Subject",
    "condition": "contains",
    "value": "交換",
    "message": "No Tasks for contact exchanges",
}


@pytest.fixture(autouse=True)
def links_made_in_salesforce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TALKLOG_LINK_SOURCE", raising=False)  # the default: salesforce


def replay(org: Org, query_all: Callable[[str], Any] | None = None) -> ReplaySummary:
    return replay_dead_letters(
        sessions=org.sessions,
        store_url=org.url,
        query_all=query_all or org.query_all,
        loader=org.loader,
        settings=TalkLogSettings(),
        run_id="replay",
    )


def letters(org: Org) -> dict[tuple[str, str], tuple[str, str]]:
    """(object, key) -> (status, error message) of every letter."""
    columns = (
        DeadLetter.object_name,
        DeadLetter.record_key,
        DeadLetter.status,
        DeadLetter.error_message,
    )
    with org.sessions() as session:
        return {(o, k): (s, m) for o, k, s, m in session.execute(sa.select(*columns))}


def open_codes(org: Org) -> dict[str, int]:
    with org.sessions() as session:
        return deadletters.count_open(session)


def rename_in_directory(org: Org, staff: str, name: str) -> None:
    with org.sessions.begin() as session:
        session.get(LineContact, org.contact(staff)).display_name = name


def store_link(org: Org) -> tuple[bool, str, list[tuple[dt.datetime, dt.datetime | None]]]:
    """Suzuki's link in the store: in force, target, periods."""
    with org.sessions() as session:
        link = session.scalars(sa.select(Link).where(Link.link_key == org.contact("suzuki"))).one()
        periods = session.scalars(
            sa.select(LinkPeriod).where(LinkPeriod.link_id == link.id).order_by(LinkPeriod.id)
        )
        return link.linked, link.target_id, [(p.started_at, p.ended_at) for p in periods]


def refused_nickname(org: Org) -> None:
    """Suzuki links; the directory renames the contact to a name the org's rule refuses."""
    org.click("suzuki", linked=True, parent=org.target)
    assert org.sync().linked == 1
    org.emulator.set_validation_rules(NICKNAME_RULE)
    rename_in_directory(org, "suzuki", RENAMED)
    refused = org.sync()
    assert refused.rejected > 0, refused
    status, _ = letters(org)["LineWorks__c", org.contact("suzuki")]
    assert status == "open"
    assert open_codes(org) == {"FIELD_CUSTOM_VALIDATION_EXCEPTION": 1}


def test_a_record_letter_replayed_after_the_rep_unticked_keeps_the_untick(org: Org) -> None:
    refused_nickname(org)
    unticked_at = stamp(org.click("suzuki", linked=False))  # the rep: "do not link"
    org.emulator.set_validation_rules({**NICKNAME_RULE, "active": False})  # the admin's fix

    summary = replay(org)

    assert summary.rejected == 0 and summary.obsolete == {}, summary.as_dict()
    assert summary.by_object["LineWorks__c"]["written"] == 1, summary.as_dict()
    row = org.record("suzuki")
    assert row["Linked__c"] is False  # the rep's decision stands
    assert row["ExternalContact__c"][:15] == org.target[:15]  # the parent as the rep left it
    assert (row["Name"], row["Nickname__c"], row["AppLink__c"]) == (RENAMED, None, None)
    linked, _, periods = store_link(org)
    assert not linked and periods[-1][1] == unticked_at  # recorded as the sync records it
    assert letters(org)["LineWorks__c", org.contact("suzuki")][0] == "resolved"
    assert open_codes(org) == {}
    after = org.sync()  # the next run reads the same records: nothing left to do
    assert (after.linked, after.unlinked, after.linkworks) == (0, 0, {}), after
    assert len(exchange_tasks(org.emulator)) == 1


def test_a_record_letter_replayed_after_the_rep_moved_the_link_keeps_the_new_parent(
    org: Org,
) -> None:
    refused_nickname(org)
    other = org.emulator.create_record("ExternalContact__c", Name="山田 太郎（本人）")
    org.click("suzuki", linked=True, parent=other)  # the rep picks another record
    org.emulator.set_validation_rules()  # the admin removes the rule

    summary = replay(org)

    assert summary.rejected == 0 and summary.obsolete == {}, summary.as_dict()
    row = org.record("suzuki")
    assert row["Linked__c"] is True and row["ExternalContact__c"][:15] == other[:15]
    assert row["Nickname__c"] == RENAMED and row["AppLink__c"].startswith("https://")
    linked, target, periods = store_link(org)
    assert linked and target[:15] == other[:15] and len(periods) == 1  # moved, no new period
    assert len(exchange_tasks(org.emulator)) == 1  # a moved link is no new link
    assert open_codes(org) == {}
    assert org.sync().linkworks == {}


def test_a_record_a_person_edits_while_the_replay_runs_is_left_to_them(org: Org) -> None:
    refused_nickname(org)
    org.emulator.set_validation_rules()
    edits: list[dict[str, Any]] = []

    def rep_edits_after_the_read(soql: str) -> Any:
        rows = list(org.query_all(soql))
        if "ORDER BY SystemModstamp" in soql and not edits:
            edits.append(org.click("suzuki", linked=False))
        return rows

    during = replay(org, rep_edits_after_the_read)

    assert edits and during.edited_since_read == 1, during.as_dict()
    row = org.record("suzuki")
    assert row["Linked__c"] is False and row["Nickname__c"] != RENAMED  # not written over
    assert open_codes(org) == {"FIELD_CUSTOM_VALIDATION_EXCEPTION": 1}  # for the next replay
    again = replay(org)
    assert again.rejected == 0 and open_codes(org) == {}, again.as_dict()
    row = org.record("suzuki")
    assert (row["Linked__c"], row["Name"], row["Nickname__c"]) == (False, RENAMED, None)


def refused_exchange_task(org: Org) -> str:
    """Suzuki links while the org refuses exchange Tasks: the Task's letter key."""
    org.emulator.set_validation_rules(EXCHANGE_RULE)
    org.click("suzuki", linked=True, parent=org.target)
    assert org.sync().exchange_tasks["rejected"] == 1
    (key,) = [key for obj, key in letters(org) if obj == "Task"]
    assert exchange_tasks(org.emulator) == []
    return key


def test_an_exchange_task_letter_is_sent_once_with_its_key(org: Org) -> None:
    key = refused_exchange_task(org)
    org.emulator.set_validation_rules()

    summary = replay(org)

    assert summary.rejected == 0 and summary.by_object["Task"]["written"] == 1, summary
    (task,) = exchange_tasks(org.emulator)
    assert task["LineWorksKey__c"] == key and task["WhatId"][:15] == org.target[:15]
    assert open_codes(org) == {}
    assert replay(org).letters == 0
    assert org.sync().exchange_tasks == {}  # the sync sends no second one
    assert len(exchange_tasks(org.emulator)) == 1


def test_an_exchange_task_letter_of_a_link_the_rep_unticked_is_closed_unsent(org: Org) -> None:
    key = refused_exchange_task(org)
    org.click("suzuki", linked=False)
    org.emulator.set_validation_rules()

    summary = replay(org)

    assert summary.obsolete == {"LINK_UNLINKED": 1}, summary.as_dict()
    assert exchange_tasks(org.emulator) == []
    status, message = letters(org)["Task", key]
    assert status == "resolved" and message.startswith("obsolete, not resent (LINK_UNLINKED")
    row = org.record("suzuki")  # the read-back recorded the untick and cleared the fields
    assert (row["Linked__c"], row["Nickname__c"], row["AppLink__c"]) == (False, None, None)
    assert not store_link(org)[0]
