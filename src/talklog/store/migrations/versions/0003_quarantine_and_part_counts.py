"""quarantine table; part counts in the TalkLog ledger

`quarantine` keeps rows the project could not read, decode or place (a message the store
cannot return, an import row that cannot be stored), with key and reason and never their
content. `talklog_claims.talklog_parts` / `task_parts` record how many parts Salesforce
last accepted, so a re-run that writes fewer removes the extra ones. Existing claims get
NULL (not known).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.String(length=255), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'resolved')", name=op.f("ck_quarantine_status_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint("source", "record_key", name=op.f("uq_quarantine_source_record_key")),
    )
    op.create_index("ix_quarantine_status", "quarantine", ["status"], unique=False)
    op.add_column("talklog_claims", sa.Column("talklog_parts", sa.Integer(), nullable=True))
    op.add_column("talklog_claims", sa.Column("task_parts", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would drop talklog_claims, and with
    # foreign keys on that deletes every delivery through ON DELETE CASCADE.
    op.execute("ALTER TABLE talklog_claims DROP COLUMN task_parts")
    op.execute("ALTER TABLE talklog_claims DROP COLUMN talklog_parts")
    op.drop_index("ix_quarantine_status", table_name="quarantine")
    op.drop_table("quarantine")
