"""Links made in Salesforce, end to end against both emulators (issue 18's acceptance): whole
DAG runs (`dag.test()`) through the real hooks and Airflow connections, with the default link
source (`TALKLOG_LINK_SOURCE` unset: salesforce) and the talks from LINE WORKS
(`TALKLOG_TALK_SOURCE=lineworks`).

One story for the module, so that the DAGs run as few times as the cases need: the
directory-sync DAG reads staff and LINE contacts from the LINE WORKS emulator; the link-sync DAG
mirrors them into the Salesforce emulator as `LineWorks__c` (each owned by its staff member's
Salesforce user, `TALKLOG_OWNER_MATCH=email`); reps click (the emulator's
rep-click endpoint: parent and tick, or untick) between link-sync runs; the LINE WORKS emulator
then gets talks at times relative to those clicks (its `talks` admin endpoint) and the hourly
talk-log DAG runs the windows holding them. Each test reads its case from the story:

- (a) a rep's link: after one link sync the record has nickname, App Link, the parent's
  `LineWorksUuid__c` and one `LINE WORKS交換` Task; the talk after the click is delivered, the
  one before it is not;
- (b) "do not link" clears nickname and App Link and stops the talks; linking again restores
  them and resumes;
- (c) two staff members link the same customer to one record: one transcript;
- (d) between two runs a rep moves a link to another record while the directory renames the
  contact: the project writes the new nickname and never the rep's fields, then or later;
- section 5 in a group room (two staff members, an unlinked customer): every record linked
  through a contact of the room's staff and customers gets the whole transcript once.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pendulum
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog import deadletters, quarantine
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import (
    LineContact,
    LineWorksUser,
    Link,
    LinkPeriod,
    MemberKind,
    RoomType,
)
from talklog.windows import ScheduleChoice
from talklog_airflow import dag_factory
from talklog_dev.emulator.process import EmulatorHandle
from talklog_dev.lineworks_emulator.process import LineWorksEmulatorHandle, run_lineworks_emulator
from talklog_dev.synth.generator import GeneratorConfig, _make_plan

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from airflow.sdk import DAG

DAY = dt.date(2025, 1, 9)  # the generated world's day: its own talks are long before the clicks
WORLD = {"messages": 20, "n_staff": 3, "n_customers": 6, "n_rooms": 6}
CONFIG = GeneratorConfig(seed=1, day=DAY, days=1, **WORLD)
ARGS = ("--day", DAY.isoformat(), "--days", "1", "--messages", "20", "--staff", "3")
ARGS += ("--customers", "6", "--rooms", "6")
EXCHANGE = "LINE WORKS交換"
LATER = dt.timedelta(minutes=2)  # a talk "after" a click, "before" it
SPACING = dt.timedelta(seconds=2)
"""Between two clicks on one record: a whole second between them for a talk (the export has
seconds), and exchange Tasks (keyed by the link's second) that differ."""


@dataclass(frozen=True)
class Contact:
    """A staff member's LINE WORKS contact of a customer, and the room they talk in."""

    contact_id: str
    staff: str  # LW user id of the address book
    customer: str  # LINE user id
    room: str


@dataclass(frozen=True)
class Group:
    """The group room of c1 and c2: its members now."""

    room: str
    staff: tuple[str, ...]
    customers: tuple[str, ...]


@dataclass
class Story:
    """What the module's DAG runs and clicks did, for the tests to read."""

    sf: EmulatorHandle
    lw: LineWorksEmulatorHandle
    sessions: sessionmaker[Session]
    rep: str = ""  # the rep's Salesforce user
    staff_users: dict[str, str] = field(default_factory=dict)  # LW user id -> Salesforce user
    cast: dict[str, Contact] = field(default_factory=dict)  # a, b, c1, c2, d
    group: Group | None = None
    parents: dict[str, str] = field(default_factory=dict)  # a, b, c, d, d moved
    clicks: dict[str, dt.datetime] = field(default_factory=dict)  # LastModifiedDate
    talk_times: list[dt.datetime] = field(default_factory=list)  # of the talks added
    syncs: list[dict[str, Any]] = field(default_factory=list)  # sync_links return values
    records: list[dict[str, dict[str, Any]]] = field(default_factory=list)  # after each sync
    directory: dict[str, Any] = field(default_factory=dict)
    ingested: list[dict[str, Any]] = field(default_factory=list)  # ingest_talks returns
    talk_runs: list[dict[str, Any]] = field(default_factory=list)  # write_talk_logs returns

    def click(self, name: str, *, linked: bool, parent: str | None = None) -> dt.datetime:
        contact = self.cast[name].contact_id
        body: dict[str, Any] = {"linkKey": contact, "linked": linked, "userId": self.rep}
        if parent:
            body["parentId"] = parent
        saved = self.sf.admin("POST", "rep-click", body)
        return dt.datetime.fromisoformat(saved["LastModifiedDate"]).astimezone(dt.UTC)

    def record(self, name: str, after_sync: int = -1) -> dict[str, Any]:
        return self.records[after_sync][self.cast[name].contact_id]

    def talk(self, name: str, text: str, at: dt.datetime) -> None:
        contact = self.cast[name]
        self.lw.add_talk(contact.room, contact.customer, text, at)
        self.talk_times.append(at)

    def talk_logs(self, parent: str) -> list[str]:
        return [
            row["Transcript__c"]
            for row in self.sf.records("TalkLog__c")
            if (row["ExternalContact__c"] or "")[:15] == self.parents[parent][:15]
        ]

    def exchange_tasks(self, parent: str) -> list[dict[str, Any]]:
        wanted = self.parents[parent][:15]
        return [
            t
            for t in self.sf.records("Task")
            if t["Subject"] == EXCHANGE
            and wanted in {(t["WhatId"] or "")[:15], (t["WhoId"] or "")[:15]}
        ]


# -- the story ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lineworks(tmp_path_factory) -> Iterator[LineWorksEmulatorHandle]:
    with run_lineworks_emulator(tmp_path_factory.mktemp("lw-links"), *ARGS) as handle:
        yield handle


@pytest.fixture(scope="module")
def story(airflow_metadata_db, emulator, lineworks, tmp_path_factory) -> Iterator[Story]:
    """Directory sync, a first link sync (the mirror), three rounds of clicks each followed by
    a link sync, then the talks around the clicks and the talk-log runs of their windows."""
    _forget_dag_runs()
    emulator.reset()
    lineworks.reset()
    url = f"sqlite:///{tmp_path_factory.mktemp('links-store') / 'store.db'}"
    upgrade(url)
    with pytest.MonkeyPatch.context() as patch:
        env = {**emulator.airflow_conn_env(), **lineworks.airflow_conn_env()}
        env["AIRFLOW_CONN_TALKLOG_STORE"] = json.dumps(
            {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": url}}
        )
        env["TALKLOG_TALK_SOURCE"] = "lineworks"
        for key, value in env.items():
            patch.setenv(key, value)
        patch.delenv("TALKLOG_LINK_SOURCE", raising=False)  # the default: salesforce
        patch.setenv("TALKLOG_OWNER_MATCH", "email")  # staff -> their Salesforce user
        patch.setattr(dag_factory, "TALK_SOURCE", "lineworks")  # read when the module loads
        patch.setitem(dag_factory.DEFAULT_ARGS, "retries", 0)  # a failure shows at once
        found = Story(emulator, lineworks, make_session_factory(url))
        _tell(found)
        yield found


def _tell(story: Story) -> None:
    directory = dag_factory.build_lineworks_dags()["talklog_directory_sync"]
    story.directory = returned(run(directory), "sync_directory")
    story.cast = cast(story.sessions)
    story.group = group_of(story.cast["c1"])
    sf = story.sf
    with story.sessions() as session:
        emails = {u.id: u.email for u in session.scalars(sa.select(LineWorksUser))}
    story.staff_users = {
        lw: sf.create_record("User", Username=email, Email=email, LastName=lw[:8])
        for lw, email in emails.items()
    }
    story.parents = {
        name: sf.create_record("ExternalContact__c", Name=f"外部連絡先 {name}")
        for name in ("a", "b", "c", "d", "d moved")
    }
    story.rep = sf.create_record("User", Username="rep@talklog.example", LastName="Rep")
    link_sync(story)  # the mirror: every contact unlinked, without a parent

    for name, parent in (("a", "a"), ("b", "b"), ("c1", "c"), ("c2", "c"), ("d", "d")):
        story.clicks[name] = story.click(name, linked=True, parent=story.parents[parent])
    link_sync(story)
    wait_until(story.clicks["b"] + SPACING)
    story.clicks["b unlinked"] = story.click("b", linked=False)  # between two runs
    story.clicks["d moved"] = story.click("d", linked=True, parent=story.parents["d moved"])
    story.lw.rename_contact(story.cast["d"].contact_id, "改名", "様")
    link_sync(story)
    wait_until(story.clicks["b unlinked"] + SPACING)
    story.clicks["b again"] = story.click("b", linked=True)
    link_sync(story)

    clicks = story.clicks
    story.talk("a", "a: before the link", clicks["a"] - LATER)
    story.talk("a", "a: after the link", clicks["a"] + LATER)
    story.talk("b", "b: while linked", between(clicks["b"], clicks["b unlinked"]))
    story.talk("b", "b: after do not link", between(clicks["b unlinked"], clicks["b again"]))
    story.talk("b", "b: linked again", clicks["b again"] + LATER)
    story.talk("c1", "c: to both staff", max(clicks["c1"], clicks["c2"]) + LATER)
    story.talk("d", "d: after the move", clicks["d moved"] + LATER)
    group, at = story.group, clicks["b again"] + LATER + dt.timedelta(seconds=10)
    unlinked = [c for c in group.customers if c not in {k.customer for k in story.cast.values()}]
    for n, (sender, role) in enumerate(
        [
            (unlinked[0], "an unlinked customer"),
            (group.staff[0], "staff"),
            (group.staff[1], "staff"),
        ]
    ):
        sent_at = at + dt.timedelta(seconds=n)
        story.lw.add_talk(group.room, sender, f"g: {role} {n}", sent_at)
        story.talk_times.append(sent_at)
    hourly = dag_factory.build_talklog_dag(ScheduleChoice.HOURLY)
    for hour in sorted({t.replace(minute=0, second=0, microsecond=0) for t in story.talk_times}):
        written = run(hourly, hour + dt.timedelta(hours=25), story.sessions)  # `hour`'s window
        story.ingested.append(returned(written, "ingest_talks"))
        story.talk_runs.append(returned(written, "write_talk_logs"))


def wait_until(moment: dt.datetime) -> None:
    delay = (moment - dt.datetime.now(dt.UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def between(first: dt.datetime, second: dt.datetime) -> dt.datetime:
    """A whole second strictly between two clicks `SPACING` apart (the export has seconds)."""
    inside = first.replace(microsecond=0) + dt.timedelta(seconds=1)
    assert first < inside < second, (first, second)
    return inside


def group_of(contact: Contact) -> Group:
    """The members now of `contact`'s room."""
    (room,) = [r for r in _plan().rooms if r.id == contact.room]
    members = [m for m in room.members if m.active(int(time.time() * 1000))]
    staff = tuple(m.user_id for m in members if m.kind == MemberKind.LW)
    return Group(room.id, staff, tuple(m.user_id for m in members if m.kind == MemberKind.LINE))


def _plan() -> Any:
    return _make_plan(CONFIG, random.Random(CONFIG.seed))


def cast(sessions: sessionmaker[Session]) -> dict[str, Contact]:
    """c1, c2: two staff members' contacts of one customer in a group room; a, b, d: contacts
    of three other customers, each in a 1:1 room with one staff member."""
    plan = _plan()
    now = int(time.time() * 1000)
    with sessions() as session:
        contacts = {
            (c.master_lw_user_id, c.line_user_id): c.contact_id
            for c in session.scalars(sa.select(LineContact))
        }
    found: dict[str, Contact] = {}
    for room in plan.rooms:
        members = [m for m in room.members if m.active(now)]
        staff = [m.user_id for m in members if m.kind == MemberKind.LW]
        customers = [m.user_id for m in members if m.kind == MemberKind.LINE]
        if room.room_type == RoomType.GROUP.value and len(staff) >= 2 and "c1" not in found:
            line = customers[-1]
            found["c1"] = Contact(contacts[staff[0], line], staff[0], line, room.id)
            found["c2"] = Contact(contacts[staff[1], line], staff[1], line, room.id)
    taken = {found["c1"].customer}
    pairs = [
        (room.id, *sorted((m.kind.value, m.user_id) for m in room.members if m.active(now)))
        for room in plan.rooms
        if room.room_type == RoomType.ONE_TO_ONE.value
    ]
    for name in ("a", "b", "d"):
        room, (_, line), (_, lw) = next(p for p in pairs if len(p) == 3 and p[1][1] not in taken)
        taken.add(line)
        found[name] = Contact(contacts[lw, line], lw, line, room)
    return found


def link_sync(story: Story) -> None:
    """One link-sync run (the directory first); what it returned and the records after it."""
    done = run(dag_factory.build_link_sync_dag(), sessions=story.sessions)
    story.syncs.append(returned(done, "sync_links"))
    story.records.append({r["LinkKey__c"]: r for r in story.sf.records("LineWorks__c")})


def run(
    dag: DAG,
    logical_date: dt.datetime | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> DagRun:
    """A whole `dag.test()` run (now, or at `logical_date`), which must succeed; a failure
    names the task states and what waits in the store (codes and keys, never content)."""
    at = pendulum.instance(logical_date) if logical_date else pendulum.now("UTC")
    done = dag.test(logical_date=at)
    if done.state != "success":
        states = {ti.task_id: ti.state for ti in done.get_task_instances()}
        raise AssertionError(f"{dag.dag_id}: {states}; {waiting(sessions) if sessions else ''}")
    return done


def waiting(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Open dead letters (object, code, fields, key) and quarantined rows (reason codes)."""
    with sessions() as session:
        letters = deadletters.open_letters(session, retryable_only=False, operation=None)
        held = quarantine.open_rows(session)
        return {
            "dead_letters": [
                (x.object_name, x.error_code, x.error_fields, x.record_key) for x in letters
            ],
            "quarantined": [(row.source, row.reason_code) for row in held],
        }


def returned(run: DagRun, task_id: str) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        run_id=run.run_id, key="return_value", dag_ids=run.dag_id, task_ids=task_id
    )
    with create_session() as session:
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row else {}


def _forget_dag_runs() -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for dag_run in session.query(DagRun).all():
            session.delete(dag_run)


# -- the cases ----------------------------------------------------------------------------------


def test_the_directory_and_the_mirror_come_from_lineworks(story: Story) -> None:
    assert story.directory["staff_read"] == WORLD["n_staff"]
    assert story.directory["contacts_read"] > story.directory["contacts_skipped"] == 2
    with story.sessions() as session:
        contacts = session.scalar(sa.select(sa.func.count()).select_from(LineContact))
    assert story.syncs[0]["mirror"]["created_or_changed"] == contacts
    mirrored = story.records[0].values()
    assert len(mirrored) == contacts
    assert all(r["Linked__c"] is False and not r["ExternalContact__c"] for r in mirrored)
    assert all(r["Nickname__c"] and r["AppLink__c"].startswith("https://") for r in mirrored)
    owners = {r["OwnerId"][:15] for r in mirrored}
    assert owners == {u[:15] for u in story.staff_users.values()}  # each staff member's user
    assert all(
        r["OwnerId"][:15] == story.staff_users[r["LineWorksUserId__c"]][:15] for r in mirrored
    )


def test_a_reps_link_gets_its_fields_one_exchange_task_and_the_talks_after_it(
    story: Story,
) -> None:
    assert story.syncs[1]["linked"] == 5, story.syncs[1]  # a, b, c1, c2, d
    row = story.record("a", after_sync=1)
    assert row["Linked__c"] is True and row["ExternalContact__c"][:15] == story.parents["a"][:15]
    assert row["Nickname__c"] and row["AppLink__c"].startswith("https://")
    (parent,) = [
        r for r in story.sf.records("ExternalContact__c") if r["Id"][:15] == story.parents["a"][:15]
    ]
    assert parent["LineWorksUuid__c"] == story.cast["a"].contact_id
    (task,) = story.exchange_tasks("a")  # after three more runs, still one
    assert task["OwnerId"][:15] == story.staff_users[row["LineWorksUserId__c"]][:15]
    with story.sessions() as session:
        link = session.scalars(
            sa.select(Link).where(Link.link_key == story.cast["a"].contact_id)
        ).one()
        assert [(p.started_at, p.ended_at) for p in link.periods] == [(story.clicks["a"], None)]
    (transcript,) = story.talk_logs("a")
    assert "a: after the link" in transcript and "a: before the link" not in transcript


def test_do_not_link_clears_the_fields_and_stops_talks_link_again_resumes(story: Story) -> None:
    assert story.syncs[2]["unlinked"] == 1, story.syncs[2]
    unlinked = story.record("b", after_sync=2)
    assert (unlinked["Linked__c"], unlinked["Nickname__c"], unlinked["AppLink__c"]) == (
        False,
        None,
        None,
    )
    assert unlinked["ExternalContact__c"][:15] == story.parents["b"][:15]  # the rep's, kept
    assert story.syncs[3]["linked"] == 1, story.syncs[3]
    again = story.record("b", after_sync=3)
    assert (
        again["Linked__c"] is True and again["Nickname__c"] == story.record("b", 1)["Nickname__c"]
    )
    assert again["AppLink__c"] == story.record("b", 1)["AppLink__c"]
    assert len(story.exchange_tasks("b")) == 2  # one per link
    with story.sessions() as session:
        periods = session.scalars(
            sa.select(LinkPeriod)
            .join(Link, Link.id == LinkPeriod.link_id)
            .where(Link.link_key == story.cast["b"].contact_id)
            .order_by(LinkPeriod.started_at)
        ).all()
        spans = [(p.started_at, p.ended_at) for p in periods]
    clicks = story.clicks
    assert spans == [(clicks["b"], clicks["b unlinked"]), (clicks["b again"], None)]
    transcripts = "\n".join(story.talk_logs("b"))
    assert "b: while linked" in transcripts and "b: linked again" in transcripts
    assert "b: after do not link" not in transcripts


def test_two_staff_linking_one_customer_to_one_record_give_one_transcript(story: Story) -> None:
    assert story.record("c1", 1)["Linked__c"] is True and story.record("c2", 1)["Linked__c"]
    assert len(story.exchange_tasks("c")) == 2
    (parent,) = [
        r for r in story.sf.records("ExternalContact__c") if r["Id"][:15] == story.parents["c"][:15]
    ]
    assert parent["LineWorksUuid__c"] in {story.cast["c1"].contact_id, story.cast["c2"].contact_id}
    (transcript,) = story.talk_logs("c")
    assert transcript.count("c: to both staff") == 1


GROUP_LINES = ("g: an unlinked customer 0", "g: staff 1", "g: staff 2")


def test_section_5_in_a_group_every_linked_customer_gets_the_whole_transcript_once(
    story: Story,
) -> None:
    """A group room of two staff members and several customers, one of them unlinked, while
    every link of the story is in force: each record linked through a contact whose staff
    member and customer are both in the room gets one transcript of it, with the unlinked
    customer's and both staff members' lines; records linked elsewhere get none."""
    group = story.group
    assert group is not None and len(group.staff) == 2
    now = {"a": "a", "b": "b", "c1": "c", "c2": "c", "d": "d moved"}  # the records linked now
    members = set(group.staff) | set(group.customers)
    inside = {now[n] for n, c in story.cast.items() if {c.staff, c.customer} <= members}
    assert "c" in inside and inside != set(now.values())  # the story has both kinds
    for parent in set(now.values()):
        of_group = [t for t in story.talk_logs(parent) if GROUP_LINES[0] in t]
        if parent in inside:
            (transcript,) = of_group
            assert all(transcript.count(line) == 1 for line in GROUP_LINES), parent
        else:
            assert of_group == [], parent


def test_a_reps_edit_between_two_runs_is_never_overwritten(story: Story) -> None:
    moved = story.parents["d moved"][:15]
    for after_sync in (2, 3):  # the run after the edit, and the next one
        row = story.record("d", after_sync)
        assert row["Linked__c"] is True and row["ExternalContact__c"][:15] == moved, after_sync
        assert row["Nickname__c"] == "改名 様"  # the project's field follows the directory
    assert story.syncs[2]["retargeted"] == 1, story.syncs[2]
    with story.sessions() as session:
        link = session.scalars(
            sa.select(Link).where(Link.link_key == story.cast["d"].contact_id)
        ).one()
        assert link.target_id[:15] == moved and len(link.periods) == 1
    assert story.talk_logs("d") == []
    (transcript,) = story.talk_logs("d moved")
    assert "d: after the move" in transcript


def test_every_talk_came_from_the_lineworks_download_and_was_placed(story: Story) -> None:
    talks = 10  # the story's talks; the generated world's are a year earlier
    assert sum(r["talks_downloaded"] for r in story.ingested) == talks, story.ingested
    assert sum(r["messages_new"] for r in story.ingested) == talks
    assert sum(r["quarantined"] for r in story.ingested) == 0
    with story.sessions() as session:
        assert quarantine.open_rows(session) == []
    assert all(r["rejected"] == 0 for r in story.talk_runs), story.talk_runs
