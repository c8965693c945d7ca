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


def covered_period(first: str, last: str, timezone: str) -> Range:
    """The range an export covers, as `talklog import --covers FROM TO` names it: local days
    (`2026-01-09 2026-01-10`: both days whole) or times (`2026-01-09T10:00+09:00`, local to
    `timezone` without an offset; TO excluded)."""
    from talklog.windows import zone

    local = zone(timezone)

    def moment(text: str, day_end: bool) -> dt.datetime:
        text = text.strip()
        if len(text) == 10:  # a day
            day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if day_end else 0)
            return dt.datetime.combine(day, dt.time(), local)
        value = dt.datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=local)

    try:
        start, end = moment(first, False), moment(last, True)
    except ValueError:
        raise ValueError(
            "--covers takes two days (2026-01-09) or times (2026-01-09T10:00)"
        ) from None
    if end <= start:
        raise ValueError(f"--covers ends before it starts: {first} .. {last}")
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)
