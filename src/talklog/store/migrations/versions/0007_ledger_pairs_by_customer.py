"""ledger pairs keyed by customer, then message; found by TalkLog

`deliveries`' primary key becomes (customer_key, message_id), the same pairs unique as
before: a window claims a room's messages customer by customer, in time order, so each
customer's pairs now go in next to each other instead of all over the message ids (a 1M
window's claim: about 2.0 s -> 1.1 s on SQLite). Pairs are found by TalkLog through the new
index (talklog_id, message_id), which also grows at its end (new TalkLogs get new ids), and a
TalkLog by its room and window (ix_talklog_claims_room): a message's pairs are those of its
room's TalkLogs whose window holds it (`talklog.ledger.message_entries`). Pairs are kept as
they are (SQLite: WITHOUT ROWID as before); downgrade gives 0006's key back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_MESSAGE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_COPY = "deliveries_0007_copy"


def upgrade() -> None:
    _rebuild(("customer_key", "message_id"), by_talklog=True)
    op.create_index("ix_talklog_claims_room", "talklog_claims", ["room_id", "window_start"])


def downgrade() -> None:
    op.drop_index("ix_talklog_claims_room", table_name="talklog_claims")
    _rebuild(("message_id", "customer_key"), by_talklog=False)


def _rebuild(key: tuple[str, str], *, by_talklog: bool) -> None:
    """The pairs into a copy, `deliveries` made again with `key` (and the TalkLog index), back
    in the key's order."""
    op.execute(
        f"CREATE TABLE {_COPY} AS SELECT message_id, customer_key, talklog_id FROM deliveries"
    )
    op.drop_table("deliveries")
    op.create_table(
        "deliveries",
        sa.Column("message_id", _MESSAGE_ID, nullable=False),
        sa.Column("customer_key", sa.String(length=255), nullable=False),
        sa.Column("talklog_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_deliveries")),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO deliveries (message_id, customer_key, talklog_id)"
        f" SELECT message_id, customer_key, talklog_id FROM {_COPY} ORDER BY {', '.join(key)}"
    )
    op.drop_table(_COPY)
    if by_talklog:
        op.create_index("ix_deliveries_talklog", "deliveries", ["talklog_id", "message_id"])
