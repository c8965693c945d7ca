"""Store revision 0006: ledger pairs lose their foreign key to the TalkLog, and keep it back
on downgrade; every pair stays, with its TalkLog, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from talklog import ledger
from talklog.store import make_engine, make_session_factory
from talklog.store.migrate import downgrade, upgrade
from talklog.windows import TalkWindow

WINDOW = TalkWindow(dt.datetime(2026, 1, 9, tzinfo=dt.UTC), dt.datetime(2026, 1, 10, tzinfo=dt.UTC))


def _claim_two_talklogs(url: str) -> None:
    with make_session_factory(url).begin() as session:
        claims = [
            ledger.Claim([1, 2, 3], "c1", "room-1|W|003A", "003A"),
            ledger.Claim([2, 3], "c2", "room-1|W|003B", "003B"),
        ]
        assert ledger.claim_rooms(session, [claims], WINDOW, "run-1") == [claims]


def _pairs(url: str) -> set[tuple]:
    with make_session_factory(url)() as session:
        return {(e.message_id, e.customer_key, e.talklog_key) for e in ledger.entries(session)}


def _foreign_keys(url: str) -> list[dict]:
    engine = make_engine(url)
    try:
        return sa.inspect(engine).get_foreign_keys("deliveries")
    finally:
        engine.dispose()


def _without_rowid(url: str) -> bool:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'deliveries'"
            ).scalar_one()
    finally:
        engine.dispose()
    return "WITHOUT ROWID" in sql.upper()


def test_migration_0006_drops_the_talklog_key_of_pairs_and_back(store_url):
    upgrade(store_url, "0005")
    _claim_two_talklogs(store_url)
    before = _pairs(store_url)
    assert len(before) == 5
    assert [fk["referred_table"] for fk in _foreign_keys(store_url)] == ["talklog_claims"]

    upgrade(store_url)
    assert _pairs(store_url) == before
    assert _foreign_keys(store_url) == []
    with make_session_factory(store_url).begin() as session:  # claims go on as before
        [again] = ledger.claim_rooms(
            session, [[ledger.Claim([3, 4], "c1", "room-1|V|003A", "003A")]], WINDOW, "run-2"
        )
    assert sorted((list(c.message_ids), c.customer_key, c.talklog_key) for c in again) == [
        ([3], "c1", "room-1|W|003A"),  # message 3 stays the first window's, for both
        ([3], "c2", "room-1|W|003B"),
        ([4], "c1", "room-1|V|003A"),
    ]

    downgrade(store_url, "0005")
    assert _pairs(store_url) == {*before, (4, "c1", "room-1|V|003A")}
    assert [fk["referred_table"] for fk in _foreign_keys(store_url)] == ["talklog_claims"]
    if store_url.startswith("sqlite"):
        assert _without_rowid(store_url)
    upgrade(store_url)
    assert len(_pairs(store_url)) == 6
    if store_url.startswith("sqlite"):
        assert _without_rowid(store_url)
