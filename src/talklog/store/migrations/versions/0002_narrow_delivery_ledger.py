"""narrow delivery ledger: per-TalkLog columns move to talklog_claims

A window claims about one (message, customer) pair per message; each pair used to repeat the
TalkLog's key, record, window, run and delivery state. Those now live once per TalkLog in
`talklog_claims`, and `deliveries` keeps (message_id, customer_key) -> talklog_id (on SQLite
WITHOUT ROWID: the rows live in the primary key's B-tree only). `deliveries.message_id` is
no longer a foreign key: pairs are built from messages read in the same transaction, and the
check against the messages table took more than half of a million-pair claim on SQLite.
Existing rows are carried over; a TalkLog counts as delivered only if every one of its pairs
was.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_MESSAGE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_COPY = "deliveries_0002_copy"


def _room_of_key() -> str:
    """SQL for the room id of a TalkLog key (`room|window|record`)."""
    if op.get_bind().dialect.name == "postgresql":
        return "split_part(talklog_key, '|', 1)"
    return "substr(talklog_key, 1, instr(talklog_key, '|') - 1)"


def upgrade() -> None:
    op.create_table(
        "talklog_claims",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("talklog_key", sa.String(length=255), nullable=False),
        sa.Column("room_id", sa.String(length=64), nullable=False),
        sa.Column("target_record_id", sa.String(length=18), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.Column("task_key", sa.String(length=255), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_talklog_claims")),
        sa.UniqueConstraint("talklog_key", name=op.f("uq_talklog_claims_talklog_key")),
    )
    op.execute(
        "INSERT INTO talklog_claims (talklog_key, room_id, target_record_id, window_start,"
        " window_end, run_id, task_key, delivered_at)"
        f" SELECT talklog_key, {_room_of_key()}, min(target_record_id), min(window_start),"
        " min(window_end), min(run_id), max(task_key),"
        " CASE WHEN count(delivered_at) = count(*) THEN max(delivered_at) END"
        " FROM deliveries GROUP BY talklog_key"
    )
    op.execute(
        f"CREATE TABLE {_COPY} AS SELECT d.message_id, d.customer_key, c.id AS talklog_id"
        " FROM deliveries d JOIN talklog_claims c ON c.talklog_key = d.talklog_key"
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_talklog")
    op.drop_table("deliveries")
    op.create_table(
        "deliveries",
        sa.Column("message_id", _MESSAGE_ID, nullable=False),
        sa.Column("customer_key", sa.String(length=255), nullable=False),
        sa.Column("talklog_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["talklog_id"],
            ["talklog_claims.id"],
            name=op.f("fk_deliveries_talklog_id_talklog_claims"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "customer_key", name=op.f("pk_deliveries")),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO deliveries (message_id, customer_key, talklog_id)"
        f" SELECT message_id, customer_key, talklog_id FROM {_COPY}"
    )
    op.drop_table(_COPY)


def downgrade() -> None:
    op.execute(
        f"CREATE TABLE {_COPY} AS SELECT d.message_id, d.customer_key, c.talklog_key,"
        " c.task_key, c.target_record_id, c.window_start, c.window_end, c.delivered_at,"
        " c.run_id FROM deliveries d JOIN talklog_claims c ON c.id = d.talklog_id"
    )
    op.drop_table("deliveries")
    op.drop_table("talklog_claims")
    op.create_table(
        "deliveries",
        sa.Column("message_id", _MESSAGE_ID, nullable=False),
        sa.Column("customer_key", sa.String(length=255), nullable=False),
        sa.Column("talklog_key", sa.String(length=255), nullable=False),
        sa.Column("task_key", sa.String(length=255), nullable=True),
        sa.Column("target_record_id", sa.String(length=18), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_deliveries_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "customer_key", name=op.f("pk_deliveries")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_talklog", ["talklog_key"], unique=False)
    op.execute(
        "INSERT INTO deliveries (message_id, customer_key, talklog_key, task_key,"
        " target_record_id, window_start, window_end, delivered_at, run_id)"
        " SELECT message_id, customer_key, talklog_key, task_key, target_record_id,"
        f" window_start, window_end, delivered_at, run_id FROM {_COPY}"
    )
    op.drop_table(_COPY)
