"""Store revision 0007: ledger pairs keyed by (customer, message), found by TalkLog and a
TalkLog by room and window; every pair stays, both ways, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from talklog import ledger
from talklog.store import make_engine, make_session_factory
from talklog.store.migrate import downgrade, upgrade

from .test_migration_0006 import WINDOW, _claim_two_talklogs, _pairs, _without_rowid


def _layout(url: str) -> tuple[list[str], set[str], set[str]]:
    """deliveries' key columns, its indexes, talklog_claims' indexes."""
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        key = inspector.get_pk_constraint("deliveries")["constrained_columns"]
        pairs = {index["name"] for index in inspector.get_indexes("deliveries")}
        talklogs = {index["name"] for index in inspector.get_indexes("talklog_claims")}
    finally:
        engine.dispose()
    return key, pairs, talklogs


def test_migration_0007_keys_pairs_by_customer_and_back(store_url):
    upgrade(store_url, "0006")
    _claim_two_talklogs(store_url)
    before = _pairs(store_url)
    assert _layout(store_url)[0] == ["message_id", "customer_key"]

    upgrade(store_url)
    key, pair_indexes, talklog_indexes = _layout(store_url)
    assert key == ["customer_key", "message_id"]
    assert "ix_deliveries_talklog" in pair_indexes
    assert "ix_talklog_claims_room" in talklog_indexes
    assert _pairs(store_url) == before
    with make_session_factory(store_url).begin() as session:  # a re-claim finds the owners
        [again] = ledger.claim_rooms(
            session, [[ledger.Claim([2, 3], "c2", "room-1|W|003B", "003B")]], WINDOW, "run-2"
        )
        found = ledger.owners(session, "room-1", WINDOW, [1, 2, 3, 4])
        elsewhere = ledger.owners(session, "room-2", WINDOW, [1, 2, 3])
    assert sorted((list(c.message_ids), c.customer_key, c.talklog_key) for c in again) == [
        ([2, 3], "c1", "room-1|W|003A"),  # every customer's pairs of those messages
        ([2, 3], "c2", "room-1|W|003B"),
    ]
    assert found == {(m, c): key for m, c, key in before} and elsewhere == {}

    downgrade(store_url, "0006")
    key, pair_indexes, talklog_indexes = _layout(store_url)
    assert key == ["message_id", "customer_key"]
    assert "ix_deliveries_talklog" not in pair_indexes
    assert "ix_talklog_claims_room" not in talklog_indexes
    assert _pairs(store_url) == before
    if store_url.startswith("sqlite"):
        assert _without_rowid(store_url)
    upgrade(store_url)
    assert _pairs(store_url) == before
    if store_url.startswith("sqlite"):
        assert _without_rowid(store_url)
