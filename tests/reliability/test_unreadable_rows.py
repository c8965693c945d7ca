"""A row that cannot be read must not stop the others (issue 16).

Another tool wrote into a SQLite store what it cannot return (text that is not UTF-8, a BLOB
where text belongs, a time that is not one) or a display name it cannot decode. Each case
corrupts one room of four, runs the talk-log job through the real clients against the
emulator (in this process and in the reader process), and checks: the other rooms and the
room's other messages are delivered, each unreadable message is quarantined with its key and
a reason that quotes nothing, the summary counts it, `check_dead_letters` is red and names it,
no log, output or quarantine row shows the content; then the row is fixed, the window run
again, and the quarantine is resolved with the message delivered.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException

from talklog import quarantine, reader
from talklog.ledger import entries
from talklog.links import sync_links
from talklog.loading import BulkLoader
from talklog.pipeline import RunSummary, write_talk_logs
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import (
    Message,
    TalkLogClaim,
)
from talklog.talklogs import TalkLogSettings
from talklog_airflow.dag_factory import check_dead_letters
from tests.integration.talklog_world import direct_clients
from tests.reliability.linked_rooms import TOKYO, WINDOW, add_linked_room

pytestmark = pytest.mark.reliability
AT_10 = dt.datetime(2026, 1, 9, 10, tzinfo=TOKYO)
ROOMS = 4
BAD_ROOM = 1
MARKERS = ("秘密の商談メモ", "confidential-deal-memo")  # content that must never be shown
SECRET = " ".join(MARKERS)
STORE_CONN = "talklog_store"


def text_of(raw: bytes) -> str:
    """SQL for text holding these bytes as they are (SQLite keeps them, valid or not)."""
    return f"CAST(x'{raw.hex()}' AS TEXT)"


SECRET_BYTES = SECRET.encode()
INVALID = b"\xff\xfeA"  # bytes that never occur in UTF-8
TRUNCATED = b"\xe3\x81"  # the first two bytes of a three-byte character
CESU = b"\xed\xa0\xbd"  # a UTF-16 surrogate encoded as if it were a character
OVERLONG = b"\xc0.pdf"  # a lead byte of an overlong form, then ASCII
LONE_BYTE = b"\xff"
CONTINUATION = b"\x80"  # a continuation byte with no lead


@dataclass(frozen=True)
class Corruption:
    """What another tool wrote (`sql`), the messages that become unreadable, why, and the
    statement that fixes it."""

    name: str
    sql: str
    keys: tuple[str, ...]
    reason_code: str
    fix: str


CUSTOMER_MESSAGES = ("m1-0", "m1-2")  # the bad room's customer speaks first and last
CORRUPTIONS = (
    Corruption(
        "text with invalid UTF-8 bytes",
        f"UPDATE messages SET text = {text_of(SECRET_BYTES + INVALID)} WHERE message_key = 'm1-0'",
        ("m1-0",),
        "UNREADABLE_TEXT",
        "UPDATE messages SET text = '直しました' WHERE message_key = 'm1-0'",
    ),
    Corruption(
        "text with a truncated multi-byte character",
        f"UPDATE messages SET text = {text_of(SECRET_BYTES + TRUNCATED)}"
        " WHERE message_key = 'm1-1'",
        ("m1-1",),
        "UNREADABLE_TEXT",
        "UPDATE messages SET text = '直しました' WHERE message_key = 'm1-1'",
    ),
    Corruption(
        "text with an encoded surrogate (CESU-8)",
        f"UPDATE messages SET text = {text_of(SECRET_BYTES + CESU)} WHERE message_key = 'm1-2'",
        ("m1-2",),
        "UNREADABLE_TEXT",
        "UPDATE messages SET text = '直しました' WHERE message_key = 'm1-2'",
    ),
    Corruption(
        "file name with invalid UTF-8 bytes",
        "UPDATE messages SET message_type = 'file', text = NULL,"
        f" file_name = {text_of(SECRET_BYTES + OVERLONG)} WHERE message_key = 'm1-0'",
        ("m1-0",),
        "UNREADABLE_TEXT",
        "UPDATE messages SET file_name = 'fixed.pdf' WHERE message_key = 'm1-0'",
    ),
    Corruption(
        "customer display name with invalid UTF-8 bytes",
        f"UPDATE line_users SET display_name = {text_of(SECRET_BYTES + LONE_BYTE)} WHERE id = 'U1'",
        CUSTOMER_MESSAGES,
        "UNREADABLE_SENDER_NAME",
        "UPDATE line_users SET display_name = '山田 直子' WHERE id = 'U1'",
    ),
    Corruption(
        "staff display name with invalid UTF-8 bytes",
        f"UPDATE lw_users SET display_name = {text_of(SECRET_BYTES + CONTINUATION)}"
        " WHERE id = 'lw1'",
        ("m1-1",),
        "UNREADABLE_SENDER_NAME",
        "UPDATE lw_users SET display_name = '鈴木 直樹' WHERE id = 'lw1'",
    ),
    Corruption(
        "text stored as a BLOB",
        f"UPDATE messages SET text = x'{SECRET_BYTES.hex()}' WHERE message_key = 'm1-0'",
        ("m1-0",),
        "UNRENDERABLE",
        "UPDATE messages SET text = '直しました' WHERE message_key = 'm1-0'",
    ),
    Corruption(
        "a time that is not one",
        "UPDATE messages SET sent_at = sent_at || ' noon' WHERE message_key = 'm1-2'",
        ("m1-2",),
        "UNREADABLE_TIME",
        "UPDATE messages SET sent_at = substr(sent_at, 1, 19) WHERE message_key = 'm1-2'",
    ),
)


# -- the store ------------------------------------------------------------------------------


def build_store(emulator: Any, url: str) -> None:
    """Four 1:1 rooms, each a staff member, a customer linked to an external contact and three
    messages (customer, staff, customer) on the window day."""
    upgrade(url)
    targets = emulator.create_records(
        "ExternalContact__c", [{"Name": f"UR{n}"} for n in range(ROOMS)]
    )
    sessions = make_session_factory(url)
    with sessions.begin() as session:
        for n, target in enumerate(targets):
            _add_room(session, n, target)


def _add_room(session: Any, n: int, target: str) -> None:
    add_linked_room(
        session, n, room_id=f"r{n}", title=f"room {n}", target=("external_contact", target),
        link_key=f"lw{n}:U{n}", names=(f"担当{n}", f"お客様{n}", f"nick{n}"),
    )  # fmt: skip
    for j, sender in enumerate(("customer", "staff", "customer")):
        staff = sender == "staff"
        session.add(
            Message(
                message_key=f"m{n}-{j}",
                room_id=f"r{n}",
                sent_at=AT_10 + dt.timedelta(minutes=j),
                sender_kind="lw" if staff else "line",
                sender_lw_user_id=f"lw{n}" if staff else None,
                sender_line_user_id=None if staff else f"U{n}",
                message_type="text",
                text=f"message {j} of room {n}",
            )
        )


def execute(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(sql))
    engine.dispose()


@dataclass
class Job:
    emulator: Any
    url: str
    sessions: Any
    loader: BulkLoader
    query_all: Any

    def run(self, reader_process_min_messages: int | None) -> RunSummary:
        return write_talk_logs(
            sessions=self.sessions,
            store_url=self.url,
            query_all=self.query_all,
            loader=self.loader,
            window=WINDOW,
            settings=TalkLogSettings(),
            run_id="unreadable rows",
            reader_process_min_messages=reader_process_min_messages,
        )


@pytest.fixture
def job(sf_emulator, tmp_path, monkeypatch) -> Iterator[Job]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    build_store(sf_emulator, url)
    clients = direct_clients(sf_emulator)
    sessions = make_session_factory(url)
    loader = BulkLoader(clients.bulk, sessions, sleep=lambda _: None)
    synced = sync_links(sessions=sessions, query_all=clients.query_all, loader=loader)
    assert synced.linkworks["rejected"] == 0
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": url}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{STORE_CONN.upper()}", json.dumps(store))
    yield Job(sf_emulator, url, sessions, loader, clients.query_all)


# -- what to check ---------------------------------------------------------------------------


def transcripts(emulator: Any) -> dict[str, str]:
    """Room -> its TalkLog transcript (one part each here)."""
    return {r["RoomId__c"]: r["Transcript__c"] for r in emulator.records("TalkLog__c")}


def task_descriptions(emulator: Any) -> dict[str, str]:
    return {
        r["LineWorksRoomId__c"]: r["Description"]
        for r in emulator.records("Task")
        if r.get("LineWorksKind__c") == "TalkLog"
    }


def delivered_keys(job: Job) -> set[str]:
    with job.sessions() as session:
        ids = {e.message_id for e in entries(session) if e.delivered_at is not None}
        claimed = {e.message_id for e in entries(session, TalkLogClaim.delivered_at.is_(None))}
        assert not claimed, "every claim of the run was delivered"
        rows = session.execute(sa.select(Message.id, Message.message_key))
        return {key for message_id, key in rows if message_id in ids}


def open_quarantine(job: Job) -> list[tuple[str, str, str, str]]:
    with job.sessions() as session:
        return [
            (row.source, row.record_key, row.reason_code, row.reason)
            for row in quarantine.open_rows(session)
        ]


def check_is_red() -> str | None:
    """The message `check_dead_letters` fails the run with, None when it is green."""
    try:
        check_dead_letters.function({}, store_conn_id=STORE_CONN)
    except AirflowFailException as failure:
        return str(failure)
    return None


ALL_KEYS = {f"m{n}-{j}" for n in range(ROOMS) for j in range(3)}


# (reader process from this many messages, reader renders when this many batches wait)
READS = {"in-process": (None, None), "reader": (0, None), "reader renders": (0, 0)}


@pytest.mark.parametrize("read", READS.values(), ids=READS)
@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda c: c.name)
def test_an_unreadable_row_is_quarantined_and_the_rest_delivered(
    job: Job, corruption: Corruption, read, monkeypatch, caplog, capfd
):
    reader_process_min_messages, render_when_waiting = read
    if render_when_waiting is not None:  # the good rooms come rendered, ids and times only
        monkeypatch.setattr(reader, "RENDER_WHEN_WAITING", render_when_waiting)
    execute(job.url, corruption.sql)
    caplog.set_level(logging.DEBUG)

    run = job.run(reader_process_min_messages)

    bad = set(corruption.keys)
    assert run.quarantined == len(bad)
    assert run.rooms == ROOMS and run.messages == 3 * ROOMS
    assert delivered_keys(job) == ALL_KEYS - bad
    rooms = transcripts(job.emulator)
    assert set(rooms) == {f"r{n}" for n in range(ROOMS)}  # the bad room too, without them
    for n in set(range(ROOMS)) - {BAD_ROOM}:
        assert all(f"message {j} of room {n}" in rooms[f"r{n}"] for j in range(3))
    assert task_descriptions(job.emulator) == rooms
    rows = open_quarantine(job)
    assert sorted(key for _, key, _, _ in rows) == sorted(bad)
    assert {(source, code) for source, _, code, _ in rows} == {("store", corruption.reason_code)}
    red = check_is_red()
    assert red is not None and all(key in red for key in bad) and corruption.reason_code in red
    shown = [
        caplog.text,
        *capfd.readouterr(),
        json.dumps(run.as_dict(), ensure_ascii=False),
        repr(rows),
        red,
        *rooms.values(),
    ]
    assert not [text for text in shown for marker in MARKERS if marker in text]

    execute(job.url, corruption.fix)
    again = job.run(reader_process_min_messages)

    assert again.quarantined == 0 and again.quarantine_resolved == len(bad)
    assert open_quarantine(job) == []
    assert check_is_red() is None
    assert delivered_keys(job) == ALL_KEYS
    fixed = transcripts(job.emulator)[f"r{BAD_ROOM}"]
    assert fixed.count(" [LINE] ") + fixed.count(" [LW] ") == 3
    assert not [marker for marker in MARKERS if marker in caplog.text]


def test_a_row_quarantined_again_stays_one_row(job: Job):
    execute(job.url, CORRUPTIONS[0].sql)
    job.run(None)
    job.run(0)
    rows = open_quarantine(job)
    assert [key for _, key, _, _ in rows] == ["m1-0"]
    with job.sessions() as session:
        assert [row.seen for row in quarantine.open_rows(session)] == [2]
