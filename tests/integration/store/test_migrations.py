"""Alembic migrations build the same schema as the models on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from talklog.store import downgrade, make_engine, upgrade
from talklog.store.models import Base, Watermark

EXPECTED_TABLES = {
    "lw_users",
    "line_users",
    "rooms",
    "room_members",
    "messages",
    "links",
    "link_periods",
    "deliveries",
    "dead_letters",
    "watermarks",
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
