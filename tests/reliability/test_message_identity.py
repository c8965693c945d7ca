"""Message identity across re-downloads and re-imports (never a message stored twice):

the same talks exported again in another form (seconds dropped by a spreadsheet, another time
format, a renamed customer or staff member) store nothing twice, while two identical messages
of one minute stay two; a store keyed by the earlier scheme is re-keyed by migration 0004 and
keeps its deliveries.

Through the real importer (the `talklog import` CLI's and the ingestion's path), on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from talklog.imports import import_export
from talklog.store import downgrade, make_session_factory, upgrade
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
