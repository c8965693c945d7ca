"""directory, coverage and message identity

- `lw_users.email`: a staff member's login id (`name(account@domain)` in exports), written by
  the directory sync;
- `line_contacts`: LINE WORKS contacts (contact id -> LINE user, master staff user);
- `coverage`: time ranges whose talks were ingested completely, and from which source;
- message keys of exports (`lwx:`, a hash of the sender's label and the time to the second)
  are re-keyed to `lwk:` (room, UTC minute, sender id, stored talk, occurrence:
  `talklog.imports.message_keys`), computed from the stored columns. Identical messages of one
  minute are numbered in time order, so no two stored messages can get the same key: nothing
  is merged and every delivery (by message id) is kept. Quarantine rows of the store keep
  pointing at their message. Messages with a source's own id keep it.

Downgrade drops the new tables and column and leaves the keys as they are (the earlier
scheme's hash needs the sender's label, which the store never kept): after a downgrade,
re-imported exports would store their messages again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

from talklog.imports.message_keys import KEY_PREFIX, LEGACY_PREFIX, MessageKeys
from talklog.store.models import utc_from_db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PAGE_ROWS = 5_000
_MESSAGES = sa.table(
    "messages",
    *(
        sa.column(name)
        for name in (
            "id",
            "message_key",
            "room_id",
            "sent_at",
            "sender_kind",
            "sender_lw_user_id",
            "sender_line_user_id",
            "message_type",
            "text",
            "file_name",
        )
    ),
)
_QUARANTINE = sa.table("quarantine", sa.column("source"), sa.column("record_key"))


def upgrade() -> None:
    op.add_column("lw_users", sa.Column("email", sa.String(length=255), nullable=True))
    op.create_index("ix_lw_users_email", "lw_users", ["email"], unique=False)
    op.create_table(
        "line_contacts",
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("line_user_id", sa.String(length=64), nullable=False),
        sa.Column("master_lw_user_id", sa.String(length=64), nullable=True),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["line_user_id"],
            ["line_users.id"],
            name=op.f("fk_line_contacts_line_user_id_line_users"),
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_line_contacts")),
    )
    op.create_index("ix_line_contacts_line_user", "line_contacts", ["line_user_id"], unique=False)
    op.create_table(
        "coverage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("range_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("range_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "source IN ('lineworks', 'import')", name=op.f("ck_coverage_source_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coverage")),
    )
    op.create_index("ix_coverage_range", "coverage", ["range_start", "range_end"], unique=False)
    rekey_messages(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_coverage_range", table_name="coverage")
    op.drop_table("coverage")
    op.drop_index("ix_line_contacts_line_user", table_name="line_contacts")
    op.drop_table("line_contacts")
    op.drop_index("ix_lw_users_email", table_name="lw_users")
    # Plain DROP COLUMN (SQLite 3.35+), as in 0003: a batch copy would recreate lw_users.
    op.execute("ALTER TABLE lw_users DROP COLUMN email")


def rekey_messages(conn: sa.Connection) -> int:
    """Give every export-keyed message its `lwk:` key; returns how many keys changed."""
    quarantined = set(
        conn.scalars(sa.select(_QUARANTINE.c.record_key).where(_QUARANTINE.c.source == "store"))
    )
    keys = MessageKeys()
    changed: list[dict[str, Any]] = []
    for row in _export_keyed(conn):
        sender = (row.sender_kind, row.sender_lw_user_id or row.sender_line_user_id)
        sent_at = utc_from_db(row.sent_at)
        key, _ = keys.key(row.room_id, sent_at, sender, row.message_type, row.text, row.file_name)
        if key != row.message_key:
            changed.append({"row_id": row.id, "old": row.message_key, "new": key})
    # Two steps, so that no key is ever taken twice while others move (a re-run after a
    # downgrade may recompute the keys rows already hold).
    _set_keys(conn, [{**c, "new": f"tmp:{c['row_id']}"} for c in changed], quarantined)
    _set_keys(conn, [{**c, "old": f"tmp:{c['row_id']}"} for c in changed], quarantined)
    return len(changed)


def _export_keyed(conn: sa.Connection) -> Iterator[Any]:
    """Messages keyed by an export hash, in (sent_at, id) order, a page at a time."""
    m = _MESSAGES.c
    prefixes = sa.or_(m.message_key.startswith(LEGACY_PREFIX), m.message_key.startswith(KEY_PREFIX))
    last: tuple[Any, Any] | None = None
    while True:
        query = sa.select(*_MESSAGES.c).where(prefixes).order_by(m.sent_at, m.id).limit(PAGE_ROWS)
        if last is not None:
            query = query.where(sa.tuple_(m.sent_at, m.id) > sa.tuple_(*last))
        page = conn.execute(query).all()
        if not page:
            return
        yield from page
        last = (page[-1].sent_at, page[-1].id)


def _set_keys(conn: sa.Connection, changes: list[dict[str, Any]], quarantined: set[str]) -> None:
    m = _MESSAGES.c
    for start in range(0, len(changes), PAGE_ROWS):
        batch = changes[start : start + PAGE_ROWS]
        conn.execute(
            sa.update(_MESSAGES)
            .where(m.id == sa.bindparam("row_id"))
            .values(message_key=sa.bindparam("new")),
            batch,
        )
        moved = [c for c in batch if c["old"] in quarantined]
        if moved:
            conn.execute(
                sa.update(_QUARANTINE)
                .where(_QUARANTINE.c.source == "store")
                .where(_QUARANTINE.c.record_key == sa.bindparam("old"))
                .values(record_key=sa.bindparam("new")),
                moved,
            )
            quarantined.update(c["new"] for c in moved)
