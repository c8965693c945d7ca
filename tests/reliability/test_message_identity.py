"""Message identity across re-downloads and re-imports (never a message stored twice):

the same talks exported again in another form (seconds dropped by a spreadsheet, another time
format, a renamed customer or staff member) store nothing twice, while two identical messages
of one minute stay two; a store keyed by the earlier scheme is re-keyed by migration 0004 and
keeps its deliveries. A display name several people share is the one member of the row's
room with it at the row's time (two members with it, or none, quarantine the row; never
another room's), and a renamed customer is still the room's customer the row does not name.

Through the real importer (the `talklog import` CLI's and the ingestion's path), on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from talklog.imports import import_export
from talklog.store import make_session_factory
from talklog.store.migrate import downgrade, upgrade
from talklog.store.models import Delivery, LineUser, Message, TalkLogClaim, utc_from_db

pytestmark = pytest.mark.reliability

HEADER = "日時,送信者,受信者,チャンネルID,トーク\r\n"
STAFF = "鈴木 一郎(suzuki@example.co.jp)"
CUSTOMER = "山田 太郎"
RENAMED = "やまだ🌸"
ROWS = [  # (time with seconds, sender is staff, talk)
    ("2026/01/09 10:00:05", True, "こんにちは、山田様。"),
    ("2026/01/09 10:01:12", False, '"こちらこそ！\r\nよろしくお願いします"'),
    ("2026/01/09 10:02:00", True, "[ファイル] 見積書_2026.pdf"),
    ("2026/01/09 10:05:10", False, "ありがとう🙏"),  # identical twice in one minute ...
    ("2026/01/09 10:05:40", False, "ありがとう🙏"),  # ... stays twice
    ("2026/01/09 10:06:30", True, "はい"),  # identical twice in one second
    ("2026/01/09 10:06:30", True, "はい"),
    ("2026/01/09 10:07:59", True, "はい"),  # the same text, the next minute
]


def export(
    path: Path,
    *,
    time: Callable[[str], str] = lambda t: t,
    staff: str = STAFF,
    customer: str = CUSTOMER,
    newline: str = "\r\n",
) -> Path:
    lines = [HEADER.rstrip("\r\n")]
    for at, by_staff, talk in ROWS:
        sender, receiver = (staff, customer) if by_staff else (customer, staff)
        lines.append(f"{time(at)},{sender},{receiver},ch-yamada,{talk}")
    path.write_text(newline.join(lines) + newline, encoding="utf-8")
    return path


def seconds_dropped(at: str) -> str:
    return at[:16]  # what a spreadsheet saves: 2026/01/09 10:05


def iso_with_offset(at: str) -> str:
    return at.replace("/", "-").replace(" ", "T") + "+09:00"


VARIANTS: dict[str, dict] = {
    "seconds dropped (re-saved by a spreadsheet)": {"time": seconds_dropped},
    "ISO times with an offset": {"time": iso_with_offset},
    "LF line ends": {"newline": "\n"},
    "staff member renamed": {"staff": "鈴木 一郎（本社）(suzuki@example.co.jp)"},
    "customer renamed (the store knows the new name)": {"customer": RENAMED},
    "customer renamed and seconds dropped": {"customer": RENAMED, "time": seconds_dropped},
}


def rename_customer(sessions) -> None:
    """What the directory sync does when a customer renames themselves on LINE."""
    with sessions.begin() as session:
        session.execute(
            sa.update(LineUser)
            .where(LineUser.display_name == CUSTOMER)
            .values(display_name=RENAMED)
        )


def message_count(sessions) -> int:
    with sessions() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Message))


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_redownload_in_another_form_stores_nothing_twice(store_url, tmp_path, variant):
    upgrade(store_url)
    sessions = make_session_factory(store_url)
    first = import_export(sessions, export(tmp_path / "first.csv"))
    assert (first.inserted, first.rejected) == (len(ROWS), 0)
    if VARIANTS[variant].get("customer") == RENAMED:
        rename_customer(sessions)
    again = import_export(sessions, export(tmp_path / "again.csv", **VARIANTS[variant]))
    assert (again.inserted, again.duplicates, again.rejected) == (0, len(ROWS), 0)
    assert message_count(sessions) == len(ROWS)


def test_two_identical_messages_of_one_minute_stay_two_when_seconds_are_lost(store_url, tmp_path):
    upgrade(store_url)
    sessions = make_session_factory(store_url)
    summary = import_export(sessions, export(tmp_path / "excel.csv", time=seconds_dropped))
    assert summary.inserted == len(ROWS)
    with sessions() as session:
        texts = list(session.scalars(sa.select(Message.text).where(Message.text == "ありがとう🙏")))
    assert len(texts) == 2


def _old_keys(store_url: str) -> dict[int, str]:
    """Every message given a key of the earlier scheme (a content hash that included the
    sender's label); returns the keys the importer gave them."""
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        keys = dict(conn.execute(sa.select(Message.id, Message.message_key)).all())
        for message_id in keys:
            conn.execute(
                sa.update(Message)
                .where(Message.id == message_id)
                .values(message_key=f"lwx:{message_id:064x}")
            )
    engine.dispose()
    return keys


def _deliver_everything(sessions) -> set[tuple[int, str]]:
    with sessions.begin() as session:
        claim = TalkLogClaim(
            talklog_key="ch-yamada|W|003A",
            room_id="ch-yamada",
            window_start=utc_from_db("2026-01-09 00:00:00"),
            window_end=utc_from_db("2026-01-10 00:00:00"),
        )
        session.add(claim)
        session.flush()
        ids = list(session.scalars(sa.select(Message.id)))
        session.add_all(Delivery(message_id=i, customer_key="c1", talklog_id=claim.id) for i in ids)
    return {(i, "c1") for i in ids}


@pytest.mark.parametrize("variant", ["as first imported", *VARIANTS])
def test_migration_0004_rekeys_a_store_of_the_earlier_scheme(store_url, tmp_path, variant):
    upgrade(store_url)
    sessions = make_session_factory(store_url)
    import_export(sessions, export(tmp_path / "first.csv"))
    delivered = _deliver_everything(sessions)
    keys = _old_keys(store_url)
    downgrade(store_url, "0003")
    upgrade(store_url)
    with sessions() as session:
        assert dict(session.execute(sa.select(Message.id, Message.message_key)).all()) == keys
        pairs = set(session.execute(sa.select(Delivery.message_id, Delivery.customer_key)).all())
    assert pairs == delivered
    options = VARIANTS.get(variant, {})
    if options.get("customer") == RENAMED:
        rename_customer(sessions)
    again = import_export(sessions, export(tmp_path / "again.csv", **options))
    assert (again.inserted, again.duplicates) == (0, len(ROWS))


def test_migration_0005_puts_the_minute_in_front_of_the_keys_and_back(store_url, tmp_path):
    """0004's `lwk:<hash>` keys become `lwt:<UTC minute>:<hash>` (and back on downgrade):
    every message keeps its delivery and its quarantine row, and a re-import stores nothing."""
    from talklog import quarantine

    upgrade(store_url)
    sessions = make_session_factory(store_url)
    import_export(sessions, export(tmp_path / "first.csv"))
    delivered = _deliver_everything(sessions)
    with sessions.begin() as session:
        keys = dict(session.execute(sa.select(Message.id, Message.message_key)).all())
        flagged = next(iter(keys.values()))
        kept = quarantine.Quarantined(quarantine.Source.STORE, flagged, "not_utf8", "unreadable")
        quarantine.record(session, [kept], dt.datetime.now(dt.UTC), run_id=None)
    assert all(key.startswith("lwt:20260109") for key in keys.values())
    downgrade(store_url, "0004")
    with sessions() as session:
        untimed = dict(session.execute(sa.select(Message.id, Message.message_key)).all())
        (row,) = quarantine.open_rows(session)
    assert untimed == {i: "lwk:" + key.rsplit(":", 1)[1] for i, key in keys.items()}
    assert row.record_key == untimed[next(iter(keys))]
    upgrade(store_url)
    with sessions() as session:
        assert dict(session.execute(sa.select(Message.id, Message.message_key)).all()) == keys
        assert [r.record_key for r in quarantine.open_rows(session)] == [flagged]
        pairs = set(session.execute(sa.select(Delivery.message_id, Delivery.customer_key)).all())
    assert pairs == delivered
    again = import_export(sessions, export(tmp_path / "again.csv"))
    assert (again.inserted, again.duplicates) == (0, len(ROWS))


DIRECTORY_CASES = {  # a row's sender, receivers -> what keeps it out
    "staff member not in the directory": ("新人(new@example.co.jp)", CUSTOMER, "unknown_person"),
    "customer not in the directory, group": (
        STAFF,
        f"{CUSTOMER}, 誰か, 別の誰か",
        "unknown_person",
    ),
    "display name shared by two customers": (STAFF, "同名", "ambiguous_name"),
    "a bot's post": ("[Bot]受付ボット", f"{STAFF}, {CUSTOMER}", "unknown_person"),
}


def _directory(sessions) -> None:
    """What the directory sync wrote: the staff member, three customers (two share a name)."""
    from talklog.store.models import LineWorksUser

    with sessions.begin() as session:
        session.add(
            LineWorksUser(id="u-suzuki", display_name="鈴木 一郎", email="suzuki@example.co.jp")
        )
        session.add_all(
            LineUser(id=f"U{n}", display_name=name)
            for n, name in enumerate((CUSTOMER, "同名", "同名"))
        )


@pytest.mark.parametrize("case", DIRECTORY_CASES)
def test_a_party_the_directory_cannot_tell_is_quarantined_never_invented(store_url, tmp_path, case):
    from talklog import quarantine
    from talklog.store.models import LineWorksUser

    upgrade(store_url)
    sessions = make_session_factory(store_url)
    _directory(sessions)
    sender, receivers, code = DIRECTORY_CASES[case]
    good = f"2026/01/09 10:00:00,{STAFF},{CUSTOMER},ch-yamada,こんにちは"
    bad = f'2026/01/09 10:01:00,{sender},"{receivers}",ch-other,お知らせ'
    path = tmp_path / "download.csv"
    path.write_text(f"{HEADER}{good}\r\n{bad}\r\n", encoding="utf-8")
    summary = import_export(sessions, path, directory=True)
    assert (summary.inserted, summary.rejected, summary.quarantined) == (1, 1, 1)
    with sessions() as session:
        (row,) = quarantine.open_rows(session)
        users = session.scalar(sa.select(sa.func.count()).select_from(LineWorksUser))
        customers = session.scalar(sa.select(sa.func.count()).select_from(LineUser))
        sender_of_good = session.scalar(sa.select(Message.sender_lw_user_id))
    assert (row.source, row.reason_code) == ("directory", code)
    assert row.record_key.startswith("ch-other@2026-01-09T01:01Z:")
    assert "お知らせ" not in row.reason and "同名" not in row.reason
    assert (users, customers) == (1, 3)  # nobody invented
    assert sender_of_good == "u-suzuki"  # staff matched by their login email


# A display name several people share is told apart by the room: the one person with it among
# the room's members at the row's time. Two members of one room with it, or none (another room's
# people are never taken), keep the row out, never guessed.
NAMESAKE = "同名 さくら"
STAFF_NAMESAKE = "佐藤 健"
NEW_NAME = "改名しました🌸"
T = "2026/01/09"


def _at(hhmm: str) -> dt.datetime:
    hour, minute = map(int, hhmm.split(":"))
    return dt.datetime(2026, 1, 9, hour - 9, minute, tzinfo=dt.UTC)  # Asia/Tokyo -> UTC


ROOMS = {  # room -> type, members (user, joined, left: Tokyo times)
    "ch-a": ("one_to_one", [("u-suzuki", "09:00", None), ("U-a", "09:00", None)]),
    "ch-b": ("one_to_one", [("u-tanaka", "09:00", None), ("U-b", "09:00", None)]),
    "ch-y": ("one_to_one", [("u-suzuki", "09:00", None), ("U-y", "09:00", None)]),
    "ch-group": (
        "group",
        [("u-suzuki", "09:00", None), ("U-y", "09:00", None), ("U-a", "09:00", None)],
    ),
    "ch-twins": (
        "group",
        [("u-suzuki", "09:00", None), ("U-b", "09:00", None), ("U-c", "09:00", None)],
    ),
    "ch-handover": (  # U-a leaves at 10:00, U-c joins then
        "group",
        [("u-suzuki", "09:00", None), ("U-a", "09:00", "10:00"), ("U-c", "10:00", None)],
    ),
    "ch-staff": ("one_to_one", [("u-sato-1", "09:00", None), ("U-y", "09:00", None)]),
    "ch-renamed": ("one_to_one", [("u-suzuki", "09:00", None), ("U-r", "09:00", None)]),
    "ch-renamed-group": (
        "group",
        [("u-suzuki", "09:00", None), ("U-a", "09:00", None), ("U-r", "09:00", None)],
    ),
}


def _store_with_rooms(sessions) -> None:
    """The directory (three customers and two staff members share a display name) and the
    store's rooms with their members over time."""
    from talklog.store.models import LineWorksUser, Room, RoomMember

    staff = {
        "u-suzuki": ("鈴木 一郎", "suzuki@example.co.jp"),
        "u-tanaka": ("田中 二郎", "tanaka@example.co.jp"),
        "u-sato-1": (STAFF_NAMESAKE, "sato1@example.co.jp"),
        "u-sato-2": (STAFF_NAMESAKE, "sato2@example.co.jp"),
    }
    customers = {"U-a": NAMESAKE, "U-b": NAMESAKE, "U-c": NAMESAKE, "U-y": CUSTOMER, "U-r": "旧姓"}
    with sessions.begin() as session:
        session.add_all(LineWorksUser(id=i, display_name=n, email=e) for i, (n, e) in staff.items())
        session.add_all(LineUser(id=i, display_name=n) for i, n in customers.items())
        session.flush()
        for room_id, (room_type, members) in ROOMS.items():
            session.add(Room(id=room_id, room_type=room_type, created_at=_at("09:00")))
            session.flush()
            session.add_all(
                RoomMember(
                    room_id=room_id,
                    member_kind="lw" if user.startswith("u-") else "line",
                    lw_user_id=user if user.startswith("u-") else None,
                    line_user_id=None if user.startswith("u-") else user,
                    joined_at=_at(joined),
                    left_at=_at(left) if left else None,
                )
                for user, joined, left in members
            )


def _memberships(sessions) -> set[tuple]:
    from talklog.store.models import RoomMember

    with sessions() as session:
        rows = session.execute(
            sa.select(RoomMember.room_id, RoomMember.lw_user_id, RoomMember.line_user_id)
        )
        return set(rows)


def _download(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    lines = [
        f'{T} {at}:00,{sender},"{receivers}",{room},お知らせ'
        for at, sender, receivers, room in rows
    ]
    path.write_text(HEADER + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


MATCHED_IN_ROOM = {  # rows (Tokyo time, sender, receivers, room) -> senders stored, in order
    "customer sends in their 1:1 room": ([("10:00", NAMESAKE, STAFF, "ch-a")], ["U-a"]),
    "customer receives in their 1:1 room": (
        [("10:00", "田中 二郎(tanaka@example.co.jp)", NAMESAKE, "ch-b")],
        ["u-tanaka"],
    ),
    "customer in a group": ([("10:00", NAMESAKE, f"{STAFF}, {CUSTOMER}", "ch-group")], ["U-a"]),
    "the namesake who was a member then (same room, one download)": (
        [("09:30", NAMESAKE, STAFF, "ch-handover"), ("10:30", NAMESAKE, STAFF, "ch-handover")],
        ["U-a", "U-c"],
    ),
    "staff member named by a bare display name": (
        [("10:00", STAFF_NAMESAKE, CUSTOMER, "ch-staff")],
        ["u-sato-1"],
    ),
    "customer in two rooms of one download": (
        [("10:00", NAMESAKE, STAFF, "ch-a"), ("10:01", "田中 二郎", NAMESAKE, "ch-b")],
        ["U-a", "u-tanaka"],
    ),
}


def _senders(sessions) -> list[str]:
    with sessions() as session:
        rows = session.execute(
            sa.select(
                sa.func.coalesce(Message.sender_lw_user_id, Message.sender_line_user_id)
            ).order_by(Message.sent_at)
        )
        return list(rows.scalars())


@pytest.mark.parametrize("directory", [True, False], ids=["download", "export"])
@pytest.mark.parametrize("case", MATCHED_IN_ROOM)
def test_a_name_shared_in_the_directory_is_the_one_member_of_the_room_with_it(
    store_url, tmp_path, case, directory
):
    upgrade(store_url)
    sessions = make_session_factory(store_url)
    _store_with_rooms(sessions)
    before = _memberships(sessions)
    rows, senders = MATCHED_IN_ROOM[case]
    summary = import_export(sessions, _download(tmp_path / "d.csv", rows), directory=directory)
    assert (summary.inserted, summary.rejected, summary.quarantined) == (len(rows), 0, 0)
    assert _senders(sessions) == senders
    assert _memberships(sessions) == before  # nobody put in a room they are not in
    assert (summary.lw_users_created, summary.line_users_created) == (0, 0)


AMBIGUOUS_IN_ROOM = {  # row (Tokyo time, sender, receivers, room) -> the role kept out
    "two members of the room share it (sender)": (
        ("10:00", NAMESAKE, STAFF, "ch-twins"),
        "the sender",
    ),
    "two members of the room share it (receiver)": (
        ("10:00", STAFF, f"{CUSTOMER}, {NAMESAKE}", "ch-twins"),
        "receiver 2",
    ),
    "no member has it at the row's time (before they joined)": (
        ("08:30", NAMESAKE, STAFF, "ch-handover"),
        "the sender",
    ),
    "only members of other rooms have it": (("10:00", NAMESAKE, STAFF, "ch-y"), "the sender"),
    "a room the store does not know": (("10:00", NAMESAKE, STAFF, "ch-new"), "the sender"),
    "a staff namesake outside the room": (
        ("10:00", STAFF_NAMESAKE, CUSTOMER, "ch-y"),
        "the sender",
    ),
}


@pytest.mark.parametrize("directory", [True, False], ids=["download", "export"])
@pytest.mark.parametrize("case", AMBIGUOUS_IN_ROOM)
def test_a_name_the_room_cannot_tell_is_quarantined_never_picked(
    store_url, tmp_path, case, directory
):
    from talklog import quarantine

    upgrade(store_url)
    sessions = make_session_factory(store_url)
    _store_with_rooms(sessions)
    before = _memberships(sessions)
    row, role = AMBIGUOUS_IN_ROOM[case]
    summary = import_export(sessions, _download(tmp_path / "d.csv", [row]), directory=directory)
    assert (summary.inserted, summary.rejected, summary.quarantined) == (0, 1, 1)
    with sessions() as session:
        (kept_out,) = quarantine.open_rows(session)
    assert kept_out.reason_code == "ambiguous_name"
    assert kept_out.reason.startswith(f"{role}: the display name matches")
    assert NAMESAKE not in kept_out.reason and STAFF_NAMESAKE not in kept_out.reason
    assert kept_out.source == ("directory" if directory else "import")
    assert _memberships(sessions) == before and _senders(sessions) == []


RENAMED_IN_ROOM = {  # rows: a customer renamed on LINE (the directory knows the old name)
    "renamed customer sends in their 1:1 room": (
        [("10:00", NEW_NAME, STAFF, "ch-renamed")],
        ["U-r"],
    ),
    "renamed customer receives in their 1:1 room": (
        [("10:00", STAFF, NEW_NAME, "ch-renamed")],
        ["u-suzuki"],
    ),
    "renamed customer beside a namesake the room tells": (
        [("10:00", NEW_NAME, f"{STAFF}, {NAMESAKE}", "ch-renamed-group")],
        ["U-r"],
    ),
    "namesake writes to the renamed customer": (
        [("10:00", NAMESAKE, f"{STAFF}, {NEW_NAME}", "ch-renamed-group")],
        ["U-a"],
    ),
}


@pytest.mark.parametrize("case", RENAMED_IN_ROOM)
def test_a_renamed_customer_is_still_the_room_customer_the_row_does_not_name(
    store_url, tmp_path, case
):
    upgrade(store_url)
    sessions = make_session_factory(store_url)
    _store_with_rooms(sessions)
    before = _memberships(sessions)
    rows, senders = RENAMED_IN_ROOM[case]
    summary = import_export(sessions, _download(tmp_path / "d.csv", rows), directory=True)
    assert (summary.inserted, summary.rejected, summary.quarantined) == (len(rows), 0, 0)
    assert _senders(sessions) == senders
    assert _memberships(sessions) == before
    with sessions() as session:
        assert session.get(LineUser, "U-r").display_name == "旧姓"  # the directory's to rename
