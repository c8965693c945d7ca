"""Which time ranges of talks the store holds completely, and from which source.

A talk-log run writes its window only when the window is covered: a download of the LINE
WORKS Monitoring API (`talklog.ingest`) or an export imported with `talklog import --covers`
recorded ranges whose union contains it. Ranges are half-open `[start, end)` in UTC; they may
overlap (overlapping downloads, a re-import), and nothing here ever removes one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog.store.models import CoverageSource, CoveredRange

Range = tuple[dt.datetime, dt.datetime]


def record(
    session: Session,
    start: dt.datetime,
    end: dt.datetime,
    source: CoverageSource,
    *,
    run_id: str | None = None,
    detail: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Record that the talks of [start, end) are in the store completely."""
    if end <= start:
        raise ValueError(f"a covered range must end after it starts: {start} .. {end}")
    session.add(
        CoveredRange(
            source=source.value,
            range_start=start,
            range_end=end,
            recorded_at=now or dt.datetime.now(dt.UTC),
            run_id=run_id,
            detail=(detail or None) and detail[:255],
        )
    )


def gaps(session: Session, start: dt.datetime, end: dt.datetime) -> list[Range]:
    """The parts of [start, end) no recorded range covers (empty: covered)."""
    rows = session.execute(
        sa.select(CoveredRange.range_start, CoveredRange.range_end)
        .where(CoveredRange.range_start < end, CoveredRange.range_end > start)
        .order_by(CoveredRange.range_start)
    )
    return uncovered(start, end, rows)


def uncovered(start: dt.datetime, end: dt.datetime, ranges: Iterable[Range]) -> list[Range]:
    """The parts of [start, end) outside `ranges` (sorted by their start)."""
    missing: list[Range] = []
    reached = start
    for first, last in ranges:
        if first > reached:
            missing.append((reached, min(first, end)))
        reached = max(reached, last)
        if reached >= end:
            return missing
    if reached < end:
        missing.append((reached, end))
    return missing


def is_covered(session: Session, start: dt.datetime, end: dt.datetime) -> bool:
    return not gaps(session, start, end)
