"""Named high-water marks kept in the store (link sync, re-link)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from talklog.store.models import Watermark

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def read_watermark(session: Session, name: str) -> dt.datetime | None:
    """The mark's value, or None before the first successful run."""
    mark = session.get(Watermark, name)
    return mark.value if mark else None


def advance_watermark(
    sessions: sessionmaker[Session], name: str, value: dt.datetime, now: dt.datetime | None = None
) -> None:
    """Move the mark forward to `value` (never backwards), in its own transaction."""
    now = now or dt.datetime.now(dt.UTC)
    with sessions.begin() as session:
        mark = session.get(Watermark, name)
        if mark is None:
            session.add(Watermark(name=name, value=value, updated_at=now))
        elif mark.value < value:
            mark.value, mark.updated_at = value, now
