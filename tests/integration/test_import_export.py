"""Importing a LINE WORKS export into the store (SQLite and PostgreSQL): harmless re-imports,
BOM or not, identical messages kept, users and rooms matched or created, pipeline-ready."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from talklog.cli import main
from talklog.extract import room_contexts, window_lines
from talklog.imports import ExportRow, ImportFileError, import_export, read_export
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import (
    LineUser,
    LineWorksUser,
    Link,
    LinkPeriod,
    Message,
    Room,
    RoomMember,
)
from talklog.windows import TalkWindow

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "lineworks_export.csv"
BROKEN_LINES = [9, 12, 13, 24]
GOOD_ROWS = 14
TOKYO = dt.timezone(dt.timedelta(hours=9))


@pytest.fixture
def sessions(store_url):
    upgrade(store_url)
    return make_session_factory(store_url)


def stored(sessions) -> dict[str, tuple]:
    with sessions() as session:
        rows = session.execute(
            sa.select(
                Message.message_key,
                Message.room_id,
                Message.sent_at,
                Message.sender_kind,
                Message.message_type,
                Message.text,
            )
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def test_importing_twice_keeps_each_message_once_and_lists_broken_rows_both_times(sessions):
    first = import_export(sessions, FIXTURE).as_dict()
    messages = stored(sessions)
    second = import_export(sessions, FIXTURE).as_dict()

    assert (first["rows_read"], first["inserted"], first["duplicates_skipped"]) == (18, 14, 0)
    assert (second["rows_read"], second["inserted"], second["duplicates_skipped"]) == (18, 0, 14)
    for summary in (first, second):
        assert summary["rejected"] == 4
        assert [r["line"] for r in summary["rejected_rows"]] == BROKEN_LINES
        assert summary["rows_read"] == (
            summary["inserted"] + summary["duplicates_skipped"] + summary["rejected"]
        )
    assert stored(sessions) == messages and len(messages) == GOOD_ROWS
    assert (second["rooms_created"], second["lw_users_created"], second["line_users_created"]) == (
        0,
        0,
        0,
    )


def test_summary_never_carries_message_text(sessions):
    summary = str(import_export(sessions, FIXTURE).as_dict())
    for text in ("ありがとう", "見積書の件", "特別価格", "壊れた日時", "チャンネルがない"):
        assert text not in summary


def test_with_and_without_bom_import_identically(store_url, sessions, tmp_path):
    plain = tmp_path / "no_bom.csv"
    plain.write_bytes(FIXTURE.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    with_bom = import_export(sessions, FIXTURE).as_dict()
    messages = stored(sessions)
    without = import_export(sessions, plain).as_dict()
    assert without["inserted"] == 0 and without["duplicates_skipped"] == with_bom["inserted"]
    assert without["rejected_rows"] == with_bom["rejected_rows"]
    assert stored(sessions) == messages


def test_identical_messages_in_one_second_are_both_kept(sessions):
    import_export(sessions, FIXTURE)
    thanks = [m for m in stored(sessions).values() if m[3:] == ("text", "ありがとう🙏")]
    assert len(thanks) == 2
    assert thanks[0][1] == thanks[1][1] == dt.datetime(2026, 1, 9, 1, 5, tzinfo=dt.UTC)


def test_users_rooms_and_members_are_created_by_the_documented_rules(sessions):
    summary = import_export(sessions, FIXTURE)
    assert (summary.rooms_created, summary.lw_users_created, summary.line_users_created) == (
        3,
        2,
        2,
    )
    with sessions() as session:
        lw = dict(session.execute(sa.select(LineWorksUser.id, LineWorksUser.display_name)).all())
        line = set(session.scalars(sa.select(LineUser.display_name)))
        rooms = dict(session.execute(sa.select(Room.id, Room.room_type)).all())
        members = session.execute(
            sa.select(RoomMember.room_id, RoomMember.member_kind, RoomMember.joined_at)
        ).all()
        kinds = dict(
            session.execute(
                sa.select(Message.message_type, sa.func.count()).group_by(Message.message_type)
            ).all()
        )
    assert lw == {"suzuki@example.co.jp": "鈴木 一郎", "takahashi@example.co.jp": "高橋 健太"}
    assert line == {"山田 太郎", "佐藤 花子🌸"}
    assert rooms == {
        "ch-yamada-1on1": "one_to_one",
        "ch-sato-1on1": "one_to_one",
        "ch-group-1": "group",
    }
    by_room: dict[str, list] = {}
    for room, kind, joined in members:
        by_room.setdefault(room, []).append((kind, joined))
    assert sorted(k for k, _ in by_room["ch-group-1"]) == ["line", "line", "lw", "lw"]
    assert {j for _, j in by_room["ch-group-1"]} == {dt.datetime(2026, 1, 9, 1, 10, tzinfo=dt.UTC)}
    assert len(by_room["ch-yamada-1on1"]) == len(by_room["ch-sato-1on1"]) == 2
    assert kinds == {"text": 10, "file": 1, "sticker": 1, "image": 1, "location": 1}


def test_known_users_are_matched_by_id_and_display_name_and_ambiguous_names_rejected(sessions):
    with sessions.begin() as session:
        session.add_all(
            [
                LineWorksUser(id="suzuki@example.co.jp", display_name="鈴木（本社）"),
                LineUser(id="U-yamada", display_name="山田 太郎"),
                LineUser(id="U-sato-1", display_name="佐藤 花子🌸"),
                LineUser(id="U-sato-2", display_name="佐藤 花子🌸"),
            ]
        )
    summary = import_export(sessions, FIXTURE)
    # 高橋 健太 is new, but every row naming him also names 佐藤 花子🌸: nothing of his is stored.
    assert (summary.lw_users_created, summary.line_users_created) == (0, 0)
    with sessions() as session:
        senders = set(
            session.execute(sa.select(Message.sender_lw_user_id, Message.sender_line_user_id))
        )
        display = session.get(LineWorksUser, "suzuki@example.co.jp").display_name
    assert ("suzuki@example.co.jp", None) in senders and (None, "U-yamada") in senders
    assert display == "鈴木（本社）"  # an existing user is not renamed
    ambiguous = [r for r in summary.rejections if "matches 2 users" in r.reason]
    assert all("佐藤" not in r.reason for r in summary.rejections)  # names are not quoted
    # Every row naming 佐藤 花子🌸 (as sender or receiver) waits for an unambiguous name.
    assert [r.line for r in ambiguous] == [14, 16, 22, 23, 27, 28, 29]
    assert summary.inserted == GOOD_ROWS - len(ambiguous)


def test_small_chunks_and_reverse_order_give_the_same_store(store_url, sessions, tmp_path):
    reverse = tmp_path / "reverse.csv"
    header, *records = FIXTURE.read_bytes().decode("utf-8-sig").split("\r\n2026")
    reverse.write_text(
        header + "".join("\r\n2026" + r for r in reversed(records)), encoding="utf-8"
    )
    summary = import_export(sessions, reverse, chunk_rows=2)
    assert (summary.inserted, summary.rejected) == (GOOD_ROWS, 4)
    parsed = [r for r in read_export(FIXTURE) if isinstance(r, ExportRow)]
    assert import_export(sessions, FIXTURE).inserted == 0  # the same keys, in file order
    earliest: dict[str, dt.datetime] = {}
    for row in parsed:
        earliest[row.channel_id] = min(earliest.get(row.channel_id, row.sent_at), row.sent_at)
    with sessions() as session:
        created = dict(session.execute(sa.select(Room.id, Room.created_at)).all())
        joined = session.execute(sa.select(RoomMember.room_id, RoomMember.joined_at)).all()
    # Rooms and the memberships the import made start at the room's earliest message.
    assert created == earliest
    assert all(at == earliest[room] for room, at in joined)


def test_imported_talks_reach_linked_customers_through_the_pipeline_queries(sessions):
    import_export(sessions, FIXTURE)
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with sessions.begin() as session:
        yamada = session.scalars(
            sa.select(LineUser.id).where(LineUser.display_name == "山田 太郎")
        ).one()
        link = Link(
            link_key="import-test",
            lw_user_id="suzuki@example.co.jp",
            line_user_id=yamada,
            target_type="external_contact",
            target_id="a0X000000000001AAA",
            linked_at=when,
            updated_at=when,
        )
        session.add(link)
        session.flush()
        session.add(LinkPeriod(link_id=link.id, started_at=when))
    window = TalkWindow(
        dt.datetime(2026, 1, 9, 0, tzinfo=dt.UTC), dt.datetime(2026, 1, 9, 3, tzinfo=dt.UTC)
    )
    with sessions() as session:
        contexts = room_contexts(session, window)
        lines = dict(window_lines(session, window))
    for room in ("ch-yamada-1on1", "ch-group-1"):
        assert all(contexts[room].recipients(line.sent_at) for line in lines[room]), room
    assert not contexts["ch-sato-1on1"].recipients(lines["ch-sato-1on1"][0].sent_at)
    assert lines["ch-group-1"][0].speaker_name == "鈴木 一郎"


def test_cli_prints_the_summary_without_text(store_url, capsys):
    main(["import", "--url", store_url, "--file", str(FIXTURE), "--upgrade"])
    out = capsys.readouterr().out
    assert "18 rows read, 14 inserted, 0 duplicates skipped, 4 rejected" in out
    assert "rejected line 24-26: unreadable time" in out
    assert "ありがとう" not in out


def test_cli_fails_clearly_on_a_missing_file(sqlite_url, tmp_path):
    with pytest.raises(SystemExit, match="export file not found"):
        main(["import", "--url", sqlite_url, "--file", str(tmp_path / "nope.csv"), "--upgrade"])


def test_missing_file_raises_before_writing(sessions, tmp_path):
    with pytest.raises(ImportFileError):
        import_export(sessions, tmp_path / "nope.csv")
    copy = tmp_path / "copy.csv"
    shutil.copy(FIXTURE, copy)
    assert import_export(sessions, copy).inserted == GOOD_ROWS


def test_imported_rows_are_stored_exactly_as_the_orm_stores_them(sessions):
    """The importer's fast insert (SQLite: the driver's executemany) writes every column as
    SQLAlchemy's own insert would: the raw stored values of a message copied through the ORM
    are the same (times as `YYYY-MM-DD HH:MM:SS.ffffff` UTC text on SQLite)."""
    import_export(sessions, FIXTURE)
    columns = [c for c in Message.__table__.columns if c.name not in ("id", "message_key")]
    raw = sa.select(*(sa.cast(c, sa.Text) for c in columns))
    with sessions.begin() as session:
        first = session.scalars(sa.select(Message).order_by(Message.id).limit(1)).one()
        copy = Message(**{c.key: getattr(first, c.key) for c in columns}, message_key="copy")
        session.add(copy)
        session.flush()
        imported = session.execute(raw.where(Message.id == first.id)).one()
        through_orm = session.execute(raw.where(Message.id == copy.id)).one()
    assert imported == through_orm
