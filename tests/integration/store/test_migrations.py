"""Alembic migrations build the same schema as the models on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from talklog.store import make_engine
from talklog.store.migrate import downgrade, upgrade
from talklog.store.models import Base, LineUser, Message, Room, Watermark

EXPECTED_TABLES = {
    "lw_users",
    "line_users",
    "rooms",
    "room_members",
    "messages",
    "links",
    "link_periods",
    "deliveries",
    "talklog_claims",
    "dead_letters",
    "quarantine",
    "watermarks",
    "line_contacts",
    "coverage",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_and_downgrade_drops_them(store_url):
    upgrade(store_url)
    assert _tables(store_url) == EXPECTED_TABLES
    downgrade(store_url, "base")
    assert _tables(store_url) == set()
    upgrade(store_url)
    assert _tables(store_url) == EXPECTED_TABLES


def test_migrations_match_the_models(store_url):
    upgrade(store_url)
    engine = make_engine(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_window_index_exists_for_the_hot_query(store_url):
    upgrade(store_url)
    engine = make_engine(store_url)
    indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(engine).get_indexes("messages")}
    engine.dispose()
    assert indexes["ix_messages_window"] == ["sent_at", "room_id"]


def test_times_round_trip_as_utc(store_url):
    upgrade(store_url)
    engine = make_engine(store_url)
    tokyo = dt.timezone(dt.timedelta(hours=9))
    sent = dt.datetime(2026, 1, 9, 0, 30, tzinfo=tokyo)
    with sa.orm.Session(engine) as session:
        session.add(Watermark(name="w", value=sent, updated_at=sent))
        session.commit()
    with sa.orm.Session(engine) as session:
        value = session.get(Watermark, "w").value
    engine.dispose()
    assert value == sent
    assert value.utcoffset() == dt.timedelta(0)


def test_naive_times_are_refused(sqlite_url):
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with sa.orm.Session(engine) as session:
        session.add(
            Watermark(name="w", value=dt.datetime(2026, 1, 9), updated_at=dt.datetime.now(dt.UTC))
        )
        with pytest.raises(sa.exc.StatementError, match="naive datetime"):
            session.commit()
    engine.dispose()


_OLD_LEDGER = sa.table(
    "deliveries",
    *(
        sa.column(name)
        for name in (
            "message_id",
            "customer_key",
            "talklog_key",
            "task_key",
            "target_record_id",
            "window_start",
            "window_end",
            "delivered_at",
            "run_id",
        )
    ),
)


def _old_ledger_rows(message_ids: list[int]) -> list[dict]:
    """Revision 0001 rows: TalkLog A fully delivered, TalkLog B delivered for one pair only."""
    common = {"window_start": "2026-01-08 15:00:00.000000", "window_end": "2026-01-09 15:00:00"}
    a = {**common, "talklog_key": "room-1|W|003A", "target_record_id": "003A", "run_id": "r1"}
    b = {**common, "talklog_key": "room-2|W|003B", "target_record_id": "003B", "run_id": "r2"}
    done = {"delivered_at": "2026-01-10 01:00:00.000000", "task_key": "log|room-1|W|003A|1"}
    first, second = message_ids
    return [
        {**a, **done, "message_id": first, "customer_key": "c1"},
        {**a, **done, "message_id": second, "customer_key": "c1"},
        {**b, **done, "task_key": None, "message_id": first, "customer_key": "c2"},
        {**b, "delivered_at": None, "task_key": None, "message_id": second, "customer_key": "c2"},
    ]


def _two_messages(url: str) -> list[int]:
    """Two messages of one room (tables that revision 0002 does not change)."""
    sent = dt.datetime(2026, 1, 9, 1, tzinfo=dt.UTC)
    engine = make_engine(url)
    with sa.orm.Session(engine) as session:
        session.add(LineUser(id="U1", display_name="山田"))
        session.add(Room(id="room-1", room_type="one_to_one", created_at=sent))
        session.flush()
        messages = [
            Message(
                message_key=f"m{n}",
                room_id="room-1",
                sent_at=sent,
                sender_kind="line",
                sender_line_user_id="U1",
                text="x",
            )
            for n in (1, 2)
        ]
        session.add_all(messages)
        session.commit()
        ids = [message.id for message in messages]
    engine.dispose()
    return ids


def _ledger_pairs(url: str) -> set[tuple]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT d.message_id, d.customer_key, c.talklog_key, c.room_id,"
                " c.delivered_at IS NOT NULL FROM deliveries d"
                " JOIN talklog_claims c ON c.id = d.talklog_id"
            )
        ).all()
    engine.dispose()
    return {tuple(row) for row in rows}


def test_narrow_ledger_migration_carries_the_pairs_both_ways(store_url):
    """0001 -> 0002 keeps every pair; a TalkLog is delivered only if all its pairs were;
    0002 -> 0001 gives the wide rows back."""
    upgrade(store_url, "0001")
    message_ids = _two_messages(store_url)
    engine = make_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(_OLD_LEDGER), _old_ledger_rows(message_ids))
    engine.dispose()

    upgrade(store_url)
    first, second = message_ids
    assert _ledger_pairs(store_url) == {
        (first, "c1", "room-1|W|003A", "room-1", True),
        (second, "c1", "room-1|W|003A", "room-1", True),
        (first, "c2", "room-2|W|003B", "room-2", False),
        (second, "c2", "room-2|W|003B", "room-2", False),
    }

    downgrade(store_url, "0001")
    engine = make_engine(store_url)
    with engine.connect() as conn:
        keys = conn.execute(
            sa.text("SELECT talklog_key, count(*), count(delivered_at) FROM deliveries GROUP BY 1")
        ).all()
    engine.dispose()
    assert sorted(tuple(row) for row in keys) == [("room-1|W|003A", 2, 2), ("room-2|W|003B", 2, 0)]
