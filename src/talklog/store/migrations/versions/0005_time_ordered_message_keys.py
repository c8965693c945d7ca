"""time-ordered message keys

Export message keys `lwk:<hash>` (0004) become `lwt:<UTC minute>:<hash>`: the same hash with
the message's UTC minute (`YYYYmmddHHMM`) in front (`talklog.imports.message_keys`), so that
the unique index of the keys grows at its end as talks arrive in time order instead of
being rewritten at every commit. Computed from each row's `sent_at`; nothing is merged and
quarantine rows of the store keep pointing at their message. Downgrade takes the minute off.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

from talklog.imports.message_keys import KEY_PREFIX, UNTIMED_PREFIX, key_prefix
from talklog.store.models import utc_from_db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PAGE_ROWS = 5_000
_MESSAGES = sa.table("messages", sa.column("id"), sa.column("message_key"), sa.column("sent_at"))
_QUARANTINE = sa.table("quarantine", sa.column("source"), sa.column("record_key"))


def upgrade() -> None:
    _rekey(UNTIMED_PREFIX, _timed)


def downgrade() -> None:
    _rekey(KEY_PREFIX, _untimed)


def _timed(row: Any) -> str:
    return key_prefix(utc_from_db(row.sent_at)) + row.message_key.removeprefix(UNTIMED_PREFIX)


def _untimed(row: Any) -> str:
    return UNTIMED_PREFIX + row.message_key.rsplit(":", 1)[1]


def _rekey(prefix: str, new_key: Callable[[Any], str]) -> None:
    """Every message keyed with `prefix` gets `new_key(row)`, a page at a time."""
    conn = op.get_bind()
    quarantined = set(
        conn.scalars(
            sa.select(_QUARANTINE.c.record_key)
            .where(_QUARANTINE.c.source == "store")
            .where(_QUARANTINE.c.record_key.startswith(prefix))
        )
    )
    for page in _pages(conn, prefix):
        changes = [{"row_id": row.id, "old": row.message_key, "new": new_key(row)} for row in page]
        _set_keys(conn, changes, quarantined)


def _pages(conn: sa.Connection, prefix: str) -> Iterator[list[Any]]:
    """Messages keyed with `prefix`, by id, a page at a time (each page re-keyed before the
    next is read, so the prefix query moves on)."""
    m = _MESSAGES.c
    last = 0
    while True:
        page = conn.execute(
            sa.select(m.id, m.message_key, m.sent_at)
            .where(m.message_key.startswith(prefix))
            .where(m.id > last)
            .order_by(m.id)
            .limit(PAGE_ROWS)
        ).all()
        if not page:
            return
        yield page
        last = page[-1].id


def _set_keys(conn: sa.Connection, changes: list[dict[str, Any]], quarantined: set[str]) -> None:
    conn.execute(
        sa.update(_MESSAGES)
        .where(_MESSAGES.c.id == sa.bindparam("row_id"))
        .values(message_key=sa.bindparam("new")),
        changes,
    )
    moved = [change for change in changes if change["old"] in quarantined]
    if moved:
        conn.execute(
            sa.update(_QUARANTINE)
            .where(_QUARANTINE.c.source == "store")
            .where(_QUARANTINE.c.record_key == sa.bindparam("old"))
            .values(record_key=sa.bindparam("new")),
            moved,
        )
