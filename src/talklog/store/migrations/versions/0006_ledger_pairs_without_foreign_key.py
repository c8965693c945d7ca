"""ledger pairs without a foreign key to their TalkLog

`deliveries.talklog_id` is no longer a foreign key to `talklog_claims`: a window claims
about one (message, customer) pair per message, and checking each pair's TalkLog took about
a quarter of a million-pair claim on SQLite. The store makes the pairs itself from the ids of
TalkLogs the same transaction registered just before (`talklog.ledger.claim`), and nothing
deletes a TalkLog's claim, so the key's ON DELETE CASCADE never ran. Pairs are kept as they
are (SQLite: the table is rebuilt, WITHOUT ROWID as before); downgrade adds the key back.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_MESSAGE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_COPY = "deliveries_0006_copy"
_FOREIGN_KEY = "fk_deliveries_talklog_id_talklog_claims"


def upgrade() -> None:
    _rebuild(with_foreign_key=False)


def downgrade() -> None:
    _rebuild(with_foreign_key=True)


def _rebuild(*, with_foreign_key: bool) -> None:
    """The pairs into a copy, `deliveries` made again (with or without the key), back."""
    op.execute(
        f"CREATE TABLE {_COPY} AS SELECT message_id, customer_key, talklog_id FROM deliveries"
    )
    op.drop_table("deliveries")
    foreign_key = (
        [
            sa.ForeignKeyConstraint(
                ["talklog_id"], ["talklog_claims.id"], name=_FOREIGN_KEY, ondelete="CASCADE"
            )
        ]
        if with_foreign_key
        else []
    )
    op.create_table(
        "deliveries",
        sa.Column("message_id", _MESSAGE_ID, nullable=False),
        sa.Column("customer_key", sa.String(length=255), nullable=False),
        sa.Column("talklog_id", sa.Integer(), nullable=False),
        *foreign_key,
        sa.PrimaryKeyConstraint("message_id", "customer_key", name=op.f("pk_deliveries")),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO deliveries (message_id, customer_key, talklog_id)"
        f" SELECT message_id, customer_key, talklog_id FROM {_COPY}"
        " ORDER BY message_id, customer_key"
    )
    op.drop_table(_COPY)
