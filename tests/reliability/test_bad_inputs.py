"""Bad inputs (issues 9 and 16): every case of `bad_inputs.CASES` ends in a correct record, a
dead letter, a reported unresolved target or a quarantined message with a clear reason, or is
refused by the store as written; none crashes the run, none vanishes, no transcript line looks
like a message that was not sent.

All cases share one store and one emulator state: one link sync and one talk-log run over the
window day, checked case by case. What another tool wrote as raw bytes is written after the
link sync (which reads display names and is not covered here).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from talklog import quarantine
from talklog.extract import LinkInForce, RoomContext, window_lines
from talklog.ledger import entries
from talklog.links import LinkSyncSummary
from talklog.pipeline import RunSummary
from talklog.store.migrate import upgrade
from talklog.store.models import (
    DeadLetter,
    Delivery,
    LineUser,
    Message,
    TalkLogClaim,
)
from talklog.talklogs import TalkLogDraft, TalkLogSettings, transcript_parts
from talklog.targets import CustomerRecord, Placement
from talklog.transcripts import TALKLOG_LIMIT, TASK_DESCRIPTION_LIMIT, render_line, utf16_len
from tests.integration.talklog_world import direct_clients
from tests.reliability.bad_inputs import CASES, TOKYO_10, Case, Expect, Msg, Target
from tests.reliability.linked_rooms import TOKYO, WINDOW, add_linked_room

pytestmark = pytest.mark.reliability
_PART_HEADER = re.compile(r"^\(\d+/\d+\)\n")
_ENTRY = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} \[(?:LW|LINE|\?)\] ")


@dataclass
class Corpus:
    emulator: Any
    sessions: Any
    sync: LinkSyncSummary
    run: RunSummary
    refused: dict[str, list[str]] = field(default_factory=dict)  # case -> store errors


def room_id(case: Case) -> str:
    return f"room{CASES.index(case):02d}"


def overhead(case: Case) -> int:
    """UTF-16 length of the case's transcript with an empty last message."""
    n = CASES.index(case)
    room = RoomContext(room_id(case), "one_to_one", case.name)
    link = LinkInForce(f"link{n:02d}", f"lw{n}", f"U{n}", "external_contact", "x", ())
    line = render_probe(case)
    customer = CustomerRecord("x", Placement.EXTERNAL_CONTACT, external_contact_id="x")
    draft = TalkLogDraft("k", room, WINDOW, customer, link, None, [line])
    return utf16_len(transcript_parts(draft, TalkLogSettings(), 10**9)[0])


def render_probe(case: Case):
    from talklog.transcripts import TalkLine

    return TalkLine(1, TOKYO_10, "line", case.customer_name, "text", "")


def _target(em: Any, sf: Any, case: Case, n: int) -> tuple[str, str]:
    """(target type, target id) of the case's link, made in the emulator as the case says."""
    if case.target is Target.MALFORMED_ID:
        return "external_contact", "a' OR Name!='"
    if case.target in (Target.EXTERNAL_CONTACT, Target.DELETED):
        record = em.create_record("ExternalContact__c", Name=f"BI{n}")
        if case.target is Target.DELETED:
            sf.ExternalContact__c.delete(record)
        return "external_contact", record
    lead = em.create_record("Lead", LastName=f"BL{n}", Company=f"BCo{n}")
    converted = em.convert_lead(lead)
    if case.target is Target.CONVERTED_LEAD_DELETED:
        sf.Lead.delete(lead)
    else:
        sf.Contact.delete(converted["contactId"])
    return "lead", lead


def _write_case(sessions: Any, case: Case, n: int, target: tuple[str, str]) -> list[str]:
    """The case's room, members, link and messages; returns the store's refusals."""
    with sessions.begin() as session:
        session.add(LineUser(id=f"S{n}", display_name=f"通りすがり{n}"))
        add_linked_room(
            session, n, room_id=room_id(case), title=case.name, target=target,
            link_key=f"link{n:02d}", names=(case.staff_name, case.customer_name, case.nickname),
        )  # fmt: skip
    refused = []
    for j, msg in enumerate(case.messages(overhead(case))):
        try:
            with sessions.begin() as session:
                session.add(_message(case, n, j, msg))
        except (sa.exc.StatementError, ValueError) as exc:
            refused.append(str(exc))
    return refused


def _message_key(n: int, j: int, msg: Msg) -> str:
    return msg.key or f"c{n}-m{j}"


def _store_raw_bytes(sessions: Any, case: Case, n: int) -> None:
    """What another tool wrote as bytes (not UTF-8): texts, file names, display names."""
    with sessions.begin() as session:
        for j, msg in enumerate(case.messages(overhead(case))):
            for column, raw in (("text", msg.raw_text), ("file_name", msg.raw_file_name)):
                if raw is not None:
                    session.execute(
                        sa.text(f"UPDATE messages SET {column} = CAST(:raw AS TEXT)"
                                " WHERE message_key = :key"),
                        {"raw": raw, "key": _message_key(n, j, msg)},
                    )  # fmt: skip
        for table, user, raw in zip(
            ("line_users", "lw_users"), (f"U{n}", f"lw{n}"), case.raw_names, strict=True
        ):
            if raw is not None:
                session.execute(
                    sa.text(f"UPDATE {table} SET display_name = CAST(:raw AS TEXT) WHERE id = :id"),
                    {"raw": raw, "id": user},
                )


def _message(case: Case, n: int, j: int, msg: Msg) -> Message:
    sender = {"customer": f"U{n}", "stranger": f"S{n}"}.get(msg.sender)
    return Message(
        message_key=_message_key(n, j, msg),
        room_id=room_id(case),
        sent_at=msg.sent_at or TOKYO_10 + dt.timedelta(minutes=msg.minute),
        sender_kind="lw" if sender is None else "line",
        sender_lw_user_id=f"lw{n}" if sender is None else None,
        sender_line_user_id=sender,
        message_type=msg.message_type,
        text=msg.text,
        file_name=msg.file_name,
    )


@pytest.fixture(scope="module")
def corpus(emulator, tmp_path_factory) -> Corpus:
    """The corpus written, links synced, the window day run once."""
    from talklog.links import sync_links
    from talklog.loading import BulkLoader
    from talklog.pipeline import write_talk_logs
    from talklog.store import make_session_factory

    emulator.reset()
    url = f"sqlite:///{tmp_path_factory.mktemp('bad-inputs')}/store.db"
    upgrade(url)
    sessions = make_session_factory(url)
    sf = emulator.salesforce()
    refused = {
        case.name: _write_case(sessions, case, n, _target(emulator, sf, case, n))
        for n, case in enumerate(CASES)
    }
    clients = direct_clients(emulator)
    loader = BulkLoader(clients.bulk, sessions, sleep=lambda _: None)
    sync = sync_links(sessions=sessions, query_all=clients.query_all, loader=loader)
    for n, case in enumerate(CASES):
        _store_raw_bytes(sessions, case, n)
    run = write_talk_logs(
        sessions=sessions,
        store_url=url,
        query_all=clients.query_all,
        loader=loader,
        window=WINDOW,
        settings=TalkLogSettings(),
        run_id="bad inputs",
    )
    return Corpus(emulator, sessions, sync, run, refused)


def _joined(rows: list[dict[str, Any]], field_name: str, part_field: str, limit: int) -> str:
    rows = sorted(rows, key=lambda row: int(float(row[part_field])))
    assert all(utf16_len(row[field_name]) <= limit for row in rows)
    return "".join(_PART_HEADER.sub("", row[field_name], count=1) for row in rows)


def _task_part(row: dict[str, Any]) -> int:
    return int(row["LineWorksKey__c"].rsplit("|", 1)[1])


def _check_record(corpus: Corpus, case: Case, left_out: frozenset[int] = frozenset()) -> None:
    """The room's TalkLog and Task hold each of its messages (but the `left_out` ones) once,
    and no line that looks like a message that was not sent."""
    room = room_id(case)
    talklogs = [r for r in corpus.emulator.records("TalkLog__c") if r["RoomId__c"] == room]
    tasks = [
        {**r, "Part": _task_part(r)}
        for r in corpus.emulator.records("Task")
        if r.get("LineWorksRoomId__c") == room
    ]
    text = _joined(talklogs, "Transcript__c", "Part__c", TALKLOG_LIMIT)
    assert _joined(tasks, "Description", "Part", TASK_DESCRIPTION_LIMIT) == text
    if case.parts:
        assert len(talklogs) <= case.parts[0] and len(tasks) <= case.parts[1]
    with corpus.sessions() as session:
        lines = dict(window_lines(session, WINDOW)).get(room, [])
        lines = [line for n, line in enumerate(lines) if n not in left_out]
        ids = [line.message_id for line in lines]
        delivered = [e.delivered_at for e in entries(session, Delivery.message_id.in_(ids))]
    assert lines and len(delivered) == len(lines) and all(delivered)
    for line in lines:
        assert text.count(render_line(line, TOKYO)) >= 1, line.message_id
    assert not [ch for ch in text if ord(ch) < 32 and ch not in "\n\t"]
    entries_shown = [line for line in text.splitlines() if _ENTRY.match(line)]
    assert len(entries_shown) == len(lines), entries_shown  # no forged line
    for tag in case.tags:
        assert tag in text


def _check_dead_letter(corpus: Corpus, case: Case) -> None:
    with corpus.sessions() as session:
        letters = session.scalars(
            sa.select(DeadLetter).where(DeadLetter.record_key.contains(f"{room_id(case)}|"))
        ).all()
        claims = entries(session, TalkLogClaim.room_id == room_id(case))
    assert letters and {letter.error_code for letter in letters} == set(case.reason.split())
    assert all(letter.error_message and letter.status == "open" for letter in letters)
    assert claims and all(claim.delivered_at is None for claim in claims)  # wait for replay


def _check_unresolved(corpus: Corpus, case: Case) -> None:
    assert corpus.run.unresolved_targets.get(case.reason, 0) >= 1
    assert corpus.sync.unresolved_targets.get(case.reason, 0) >= 1
    room = room_id(case)
    assert not [r for r in corpus.emulator.records("TalkLog__c") if r["RoomId__c"] == room]
    with corpus.sessions() as session:
        claimed = entries(session, TalkLogClaim.room_id == room)
    assert not claimed  # nothing claimed: a corrected link delivers the messages later


def _check_quarantined(corpus: Corpus, case: Case) -> None:
    """The case's unreadable messages are quarantined (key, reason code, a reason that quotes
    nothing) and unclaimed; the room's other messages are its record."""
    n = CASES.index(case)
    messages = case.messages(overhead(case))
    expected = {_message_key(n, j, messages[j]) for j in case.quarantined}
    with corpus.sessions() as session:
        rows = [
            row
            for row in quarantine.open_rows(session, quarantine.Source.STORE)
            if f"room {room_id(case)}:" in row.reason
        ]
        ids = session.scalars(
            sa.select(Message.id).where(Message.message_key.in_(sorted(expected)))
        ).all()
        claimed = entries(session, Delivery.message_id.in_(ids))
    assert {row.record_key for row in rows} == expected
    assert {row.reason_code for row in rows} == {case.reason}
    assert all(row.reason.isascii() for row in rows)  # quotes no text or name
    assert len(ids) == len(expected) and not claimed
    _check_record(corpus, case, left_out=frozenset(case.quarantined))


CHECKS = {
    Expect.RECORD: _check_record,
    Expect.DEAD_LETTER: _check_dead_letter,
    Expect.UNRESOLVED: _check_unresolved,
    Expect.QUARANTINED: _check_quarantined,
}


def test_the_run_with_every_bad_input_completes(corpus: Corpus):
    assert corpus.run.rooms == len(CASES) - 1  # the naive-timestamp room has no message
    assert corpus.run.messages >= len(CASES)
    assert corpus.run.quarantined == sum(len(case.quarantined) for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input_ends_clearly(corpus: Corpus, case: Case):
    refused = corpus.refused[case.name]
    if case.expect is Expect.REFUSED:
        assert refused and all(case.reason in error for error in refused), refused
        return
    assert not refused, refused
    CHECKS[case.expect](corpus, case)
