"""Links made in Salesforce (issue 18), through the real clients against the emulator: the
project mirrors LINE WORKS contacts as `LineWorks__c`, a rep links (parent + tick) or unticks
them (the emulator's rep-click endpoint, as another user), the link sync reads it back."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog.link_mirror import app_link
from talklog.loading import BulkLoader
from talklog.pipeline import write_talk_logs
from talklog.salesforce_links import (
    EXCHANGE_SUBJECT,
    LinkSource,
    SalesforceLinkSummary,
    link_source,
    sync_salesforce_links,
)
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import LineContact, Link, LinkPeriod, Message
from talklog.talklogs import TalkLogSettings
from talklog.windows import TalkWindow
from talklog_dev.synth.examples import CUSTOMERS, EXAMPLES, group_two_staff_same_target
from tests.integration.talklog_world import direct_clients

DAY = dt.date(2026, 1, 9)


@dataclass
class Org:
    """The store, the emulator and the wiring of one test."""

    emulator: Any
    url: str
    sessions: sessionmaker[Session]
    query_all: Callable[[str], Any]
    loader: BulkLoader
    room_id: str
    staff: dict[str, str]
    yamada: str  # LINE user id
    target: str  # the external contact reps link to
    rep: str  # the rep's Salesforce user
    messages: int = 0

    def sync(self, query_all: Callable[[str], Any] | None = None) -> SalesforceLinkSummary:
        return sync_salesforce_links(
            sessions=self.sessions, query_all=query_all or self.query_all, loader=self.loader
        )

    def contact(self, staff: str) -> str:
        return f"contact-{staff}-yamada"

    def click(self, staff: str, *, linked: bool, parent: str | None = None) -> dict[str, Any]:
        body = {"linkKey": self.contact(staff), "linked": linked, "userId": self.rep}
        if parent:
            body["parentId"] = parent
        return self.emulator.admin("POST", "rep-click", body)

    def record(self, staff: str) -> dict[str, Any]:
        (row,) = [
            r
            for r in self.emulator.records("LineWorks__c")
            if r["LinkKey__c"] == self.contact(staff)
        ]
        return row

    def say(self, text: str, at: dt.datetime) -> None:
        """Yamada writes in the group at `at`."""
        self.messages += 1
        with self.sessions.begin() as session:
            session.add(
                Message(
                    message_key=f"sf-links-{self.messages}",
                    room_id=self.room_id,
                    sent_at=at,
                    sender_kind="line",
                    sender_line_user_id=self.yamada,
                    message_type="text",
                    text=text,
                )
            )

    def write(self, window: TalkWindow, run_id: str) -> None:
        write_talk_logs(
            sessions=self.sessions,
            store_url=self.url,
            query_all=self.query_all,
            loader=self.loader,
            window=window,
            settings=TalkLogSettings(),
            run_id=run_id,
        )

    def transcripts(self) -> list[str]:
        return [r["Transcript__c"] for r in self.emulator.records("TalkLog__c")]


def exchange_tasks(emulator: Any) -> list[dict[str, Any]]:
    return [t for t in emulator.records("Task") if t["Subject"] == EXCHANGE_SUBJECT]


def stamp(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(record["LastModifiedDate"]).astimezone(dt.UTC)


@pytest.fixture
def org(sf_emulator, sqlite_url) -> Org:
    """Suzuki and Takahashi with Yamada in a group room, Yamada in both address books, no
    link and no message yet; the contacts mirrored by a first sync."""
    upgrade(sqlite_url)
    target = sf_emulator.create_record("ExternalContact__c", Name="山田 太郎")
    example = group_two_staff_same_target(sqlite_url, DAY, {"yamada": target})
    sessions = make_session_factory(sqlite_url)
    yamada = example.customers["yamada"]
    with sessions.begin() as session:
        session.execute(sa.delete(LinkPeriod))
        session.execute(sa.delete(Link))
        session.execute(sa.delete(Message))
        for staff, lw_user_id in example.staff.items():
            session.add(
                LineContact(
                    contact_id=f"contact-{staff}-yamada",
                    line_user_id=yamada,
                    master_lw_user_id=lw_user_id,
                    display_name=f"{CUSTOMERS['yamada']}様",
                )
            )
    rep = sf_emulator.create_record("User", Username="rep@talklog.example", LastName="Rep")
    clients = direct_clients(sf_emulator)
    loader = BulkLoader(clients.bulk, sessions, sleep=lambda _: None)
    found = Org(
        sf_emulator,
        sqlite_url,
        sessions,
        clients.query_all,
        loader,
        example.room_id,
        dict(example.staff),
        yamada,
        target,
        rep,
    )
    first = found.sync()
    assert first.mirror["created_or_changed"] == 2, first
    return found


def test_mirrored_contacts_are_unlinked_records_with_nickname_and_app_link(org: Org) -> None:
    row = org.record("suzuki")
    assert row["Linked__c"] is False and not row["ExternalContact__c"] and not row["Lead__c"]
    assert row["Nickname__c"] == "山田 太郎様"
    assert row["AppLink__c"] == app_link(org.staff["suzuki"], org.contact("suzuki"))
    assert row["LineUserId__c"] == org.yamada
    again = org.sync()
    assert again.mirror["created_or_changed"] == 0 and again.linkworks == {}  # nothing differs
    assert again.linked == again.unlinked == 0


def test_a_reps_link_becomes_a_store_link_with_its_period_and_one_exchange_task(org: Org) -> None:
    clicked = org.click("suzuki", linked=True, parent=org.target)
    linked_at = stamp(clicked)
    summary = org.sync()
    assert (summary.linked, summary.exchange_tasks["written"]) == (1, 1), summary
    with org.sessions() as session:
        link = session.scalars(sa.select(Link)).one()
        assert (link.link_key, link.target_type, link.linked) == (
            org.contact("suzuki"),
            "external_contact",
            True,
        )
        (period,) = link.periods
        assert period.started_at == linked_at and period.ended_at is None
    row = org.record("suzuki")
    assert row["Linked__c"] is True and row["ExternalContact__c"][:15] == org.target[:15]
    assert row["Nickname__c"] and row["AppLink__c"].startswith("https://")
    assert row["LastModifiedById"][:15] == org.rep[:15]  # nothing to write: the rep's edit
    (task,) = exchange_tasks(org.emulator)
    assert task["WhatId"][:15] == org.target[:15]
    assert org.sync().exchange_tasks == {}  # a second run: no second exchange Task

    org.say("before the link", linked_at - dt.timedelta(minutes=5))
    org.say("after the link", linked_at + dt.timedelta(minutes=5))
    org.write(TalkWindow(linked_at - dt.timedelta(hours=1), linked_at + dt.timedelta(hours=1)), "w")
    (transcript,) = org.transcripts()
    assert "after the link" in transcript and "before the link" not in transcript


def test_do_not_link_clears_the_fields_and_stops_talk_logs_link_again_resumes(org: Org) -> None:
    linked_at = stamp(org.click("suzuki", linked=True, parent=org.target))
    org.sync()
    unlinked_at = stamp(org.click("suzuki", linked=False))
    summary = org.sync()
    assert summary.unlinked == 1 and summary.linkworks["written"] == 1, summary
    row = org.record("suzuki")
    assert (row["Linked__c"], row["Nickname__c"], row["AppLink__c"]) == (False, None, None)
    assert org.sync().mirror["created_or_changed"] == 0  # the mirror keeps them cleared

    time.sleep(1.0)  # exchange Tasks are keyed by the link's second (links.exchange_key)
    relinked_at = stamp(org.click("suzuki", linked=True))
    summary = org.sync()
    assert summary.linked == 1 and summary.exchange_tasks["written"] == 1, summary
    row = org.record("suzuki")
    assert row["Linked__c"] is True and row["Nickname__c"] == "山田 太郎様"
    assert row["AppLink__c"].startswith("https://")
    assert len(exchange_tasks(org.emulator)) == 2
    with org.sessions() as session:
        periods = session.scalars(sa.select(LinkPeriod).order_by(LinkPeriod.started_at)).all()
        spans = [(p.started_at, p.ended_at) for p in periods]
    assert spans == [(linked_at, unlinked_at), (relinked_at, None)]

    org.say("while linked", linked_at + (unlinked_at - linked_at) / 2)
    org.say("while unlinked", unlinked_at + (relinked_at - unlinked_at) / 2)
    org.say("linked again", relinked_at + dt.timedelta(minutes=1))
    start = linked_at - dt.timedelta(hours=1)
    org.write(TalkWindow(start, relinked_at + dt.timedelta(hours=1)), "w")
    (transcript,) = org.transcripts()
    assert "while linked" in transcript and "linked again" in transcript
    assert "while unlinked" not in transcript


def test_two_staff_linking_one_customer_to_one_record_give_one_transcript(org: Org) -> None:
    linked_at = stamp(org.click("suzuki", linked=True, parent=org.target))
    org.click("takahashi", linked=True, parent=org.target)
    summary = org.sync()
    assert summary.linked == 2 and summary.exchange_tasks["written"] == 2
    assert (summary.parent_uuids["filled"], summary.parent_uuids["already_set"]) == (1, 1)
    (target,) = org.emulator.records("ExternalContact__c")
    assert target["LineWorksUuid__c"] == org.contact("suzuki")  # the first contact, kept
    org.say("hello both", linked_at + dt.timedelta(minutes=5))
    org.write(TalkWindow(linked_at, linked_at + dt.timedelta(hours=1)), "w")
    assert len(org.transcripts()) == 1


PARENT_KINDS = {
    # the record a rep links to: (object, lookup on LineWorks__c, fixture values)
    "external contact": ("ExternalContact__c", "ExternalContact__c", {"Name": "山田 太郎"}),
    "lead": ("Lead", "Lead__c", {"LastName": "山田", "Company": "山田商店"}),
    "contact": ("Contact", "Contact__c", {"LastName": "山田"}),
    "person account": ("Account", "Account__c", {"LastName": "山田 太郎"}),
}


def parent_record(org: Org, object_name: str, record_id: str) -> dict[str, Any]:
    (row,) = [r for r in org.emulator.records(object_name) if r["Id"][:15] == record_id[:15]]
    return row


@pytest.mark.parametrize("kind", list(PARENT_KINDS))
def test_a_link_to_each_parent_kind_gets_its_fields_one_exchange_task_and_the_contact_id(
    org: Org, kind: str
) -> None:
    object_name, lookup, values = PARENT_KINDS[kind]
    parent = org.emulator.create_record(object_name, **values)
    linked_at = stamp(org.click("suzuki", linked=True, parent=parent))
    summary = org.sync()
    assert (summary.linked, summary.exchange_tasks["written"]) == (1, 1), summary
    assert summary.parent_uuids["filled"] == 1, summary
    row = org.record("suzuki")
    assert row[lookup][:15] == parent[:15] and row["Linked__c"] is True
    assert row["Nickname__c"] == "山田 太郎様" and row["AppLink__c"].startswith("https://")
    (task,) = exchange_tasks(org.emulator)
    assert parent[:15] in {(task["WhoId"] or "")[:15], (task["WhatId"] or "")[:15]}
    assert parent_record(org, object_name, parent)["LineWorksUuid__c"] == org.contact("suzuki")
    again = org.sync()  # the overlap reads the record again: nothing more is written
    assert again.parent_uuids.get("filled", 0) == 0 and again.exchange_tasks == {}

    org.say("before the link", linked_at - dt.timedelta(minutes=5))
    org.say("after the link", linked_at + dt.timedelta(minutes=5))
    org.write(TalkWindow(linked_at - dt.timedelta(hours=1), linked_at + dt.timedelta(hours=1)), "w")
    (transcript,) = org.transcripts()
    assert "after the link" in transcript and "before the link" not in transcript


def test_the_contact_id_fills_only_an_empty_field_and_never_a_converted_lead(org: Org) -> None:
    kept = org.emulator.create_record(
        "ExternalContact__c", Name="山田", LineWorksUuid__c="a-person"
    )
    lead = org.emulator.create_record("Lead", LastName="山田", Company="山田商店")
    org.emulator.convert_lead(lead)
    org.click("suzuki", linked=True, parent=kept)
    org.click("takahashi", linked=True, parent=lead)
    first = org.sync()
    assert first.parent_uuids == {
        "filled": 0,
        "already_set": 1,
        "held_elsewhere": 0,
        "converted_leads": 1,
        "missing": 0,
    }
    assert parent_record(org, "ExternalContact__c", kept)["LineWorksUuid__c"] == "a-person"
    assert not parent_record(org, "Lead", lead)["LineWorksUuid__c"]

    # a person puts suzuki's contact id on the first record, then the rep moves the link
    org.emulator.salesforce().ExternalContact__c.update(
        kept, {"LineWorksUuid__c": org.contact("suzuki")}
    )
    org.click("suzuki", linked=True, parent=org.target)
    moved = org.sync()
    assert moved.retargeted == 1 and moved.parent_uuids["held_elsewhere"] == 1, moved
    assert not parent_record(org, "ExternalContact__c", org.target)["LineWorksUuid__c"]


def test_a_reps_edit_between_two_runs_is_never_overwritten(org: Org) -> None:
    org.click("suzuki", linked=True, parent=org.target)
    org.click("takahashi", linked=True, parent=org.target)
    org.sync()
    org.click("takahashi", linked=False)  # between two runs
    with org.sessions.begin() as session:  # the directory renames the contact meanwhile
        contact = session.get(LineContact, org.contact("suzuki"))
        contact.display_name = "山田様（新）"
    summary = org.sync()
    assert summary.unlinked == 1
    suzuki, takahashi = org.record("suzuki"), org.record("takahashi")
    assert suzuki["Linked__c"] is True and suzuki["ExternalContact__c"][:15] == org.target[:15]
    assert suzuki["Nickname__c"] == "山田様（新）"  # the project's field follows the directory
    assert takahashi["Linked__c"] is False and takahashi["ExternalContact__c"]  # as the rep left it


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_section_5_rows_with_the_links_made_in_salesforce(
    sf_emulator, sqlite_url, name: str
) -> None:
    """Each row of the spec's section 5 table, the links made by a rep's click: every staff
    member's contacts mirrored, the row's links clicked, its talk after the click."""
    upgrade(sqlite_url)
    targets = {
        c: sf_emulator.create_record("ExternalContact__c", Name=n) for c, n in CUSTOMERS.items()
    }
    example = EXAMPLES[name](sqlite_url, DAY, targets)
    sessions = make_session_factory(sqlite_url)
    with sessions.begin() as session:  # the links are made in Salesforce, not in the store
        session.execute(sa.delete(LinkPeriod))
        session.execute(sa.delete(Link))
        for lw_user_id in example.staff.values():
            for short, line_user_id in example.customers.items():
                session.add(
                    LineContact(
                        contact_id=f"{lw_user_id}:{line_user_id}",  # the example's link key
                        line_user_id=line_user_id,
                        master_lw_user_id=lw_user_id,
                        display_name=f"{CUSTOMERS[short]}様",
                    )
                )
    rep = sf_emulator.create_record("User", Username="rep@talklog.example", LastName="Rep")
    clients = direct_clients(sf_emulator)
    loader = BulkLoader(clients.bulk, sessions, sleep=lambda _: None)

    def sync() -> SalesforceLinkSummary:
        return sync_salesforce_links(sessions=sessions, query_all=clients.query_all, loader=loader)

    mirrored = len(example.staff) * len(example.customers)
    assert sync().mirror["created_or_changed"] == mirrored
    clicks = [
        sf_emulator.admin(
            "POST",
            "rep-click",
            {"linkKey": key, "linked": True, "parentId": target.target_id, "userId": rep},
        )
        for key, target in example.link_keys.items()
    ]
    assert sync().linked == len(example.link_keys)
    start = max((stamp(c) for c in clicks), default=dt.datetime.now(dt.UTC))
    with sessions.begin() as session:  # the room's talk, a minute after the last click
        messages = session.scalars(sa.select(Message).order_by(Message.sent_at)).all()
        first = messages[0].sent_at
        for message in messages:
            message.sent_at = start + dt.timedelta(minutes=1) + (message.sent_at - first)
    write_talk_logs(
        sessions=sessions,
        store_url=sqlite_url,
        query_all=clients.query_all,
        loader=loader,
        window=TalkWindow(start, start + dt.timedelta(hours=1)),
        settings=TalkLogSettings(),
        run_id="section-5",
    )
    talklogs = sf_emulator.records("TalkLog__c")
    written = {
        row["ExternalContact__c"][:15]: int(float(row["MessageCount__c"])) for row in talklogs
    }
    assert written == {t.target_id[:15]: t.message_count for t in example.transcripts}, name
    assert len(talklogs) == len(example.transcripts)  # one per record, however many links
    for row in talklogs:
        expected = next(
            t for t in example.transcripts if t.target_id[:15] == row["ExternalContact__c"][:15]
        )
        assert all(speaker in row["Transcript__c"] for speaker in expected.speakers), name


RACES = {
    # before the run (each synced but the last), the click between query and write, linked at end
    "link while the run reads": ([], True, 0),
    "link again while the project clears": ([True, False], True, 1),
    "untick while the project restores": ([True, False, True], False, 1),
}


@pytest.mark.parametrize("race", list(RACES))
def test_a_link_edited_between_the_query_and_the_write_is_picked_up_by_the_next_run(
    org: Org, race: str
) -> None:
    clicks, final, skipped = RACES[race]
    for n, linked in enumerate(clicks):
        org.click("suzuki", linked=linked, parent=org.target)
        if n < len(clicks) - 1:
            org.sync()
    edits: list[dict[str, Any]] = []

    def rep_edits_after_the_read(soql: str) -> Any:
        rows = list(org.query_all(soql))
        if "ORDER BY SystemModstamp" in soql and not edits:
            edits.append(org.click("suzuki", linked=final, parent=org.target))
        return rows

    during = org.sync(rep_edits_after_the_read)
    assert edits and during.edited_during_sync == skipped, during
    after = org.sync()
    assert after.linked + after.unlinked == 1, after
    edited_at = stamp(edits[0])
    with org.sessions() as session:
        link = session.scalars(sa.select(Link)).one()
        last = link.periods[-1]
        assert link.linked is final
        assert (last.started_at if final else last.ended_at) == edited_at
    row = org.record("suzuki")
    assert row["Linked__c"] is final
    assert (row["Nickname__c"] is not None, row["AppLink__c"] is not None) == (final, final)
    assert org.sync().linkworks == {}  # converged


def test_the_link_source_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TALKLOG_LINK_SOURCE", raising=False)
    assert link_source() is LinkSource.SALESFORCE  # the default: reps link in Salesforce
    monkeypatch.setenv("TALKLOG_LINK_SOURCE", " Store ")
    assert link_source() is LinkSource.STORE
    with pytest.raises(ValueError, match="salesforce, store"):
        link_source("lineworks")
