"""Times as the LINE WORKS APIs take them: ``YYYY-MM-DDThh:mm:ssTZD``, ``+`` sent as ``%2B``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from urllib.parse import quote

from talklog.lineworks.errors import PeriodError

MAX_DOWNLOAD_PERIOD = dt.timedelta(days=31)
"""The Monitoring API's longest period between startTime and endTime."""
MAX_CONTACTS_PERIOD = dt.timedelta(days=7)
"""The Contacts API's longest period between startDateTime and endDateTime."""


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PeriodError(f"{name} must be timezone-aware, got a naive time")
    return value


def format_time(value: dt.datetime, *, milliseconds: bool = False) -> str:
    """``2025-05-01T00:00:00+09:00`` (in the time's own offset; UTC as ``+00:00``)."""
    _aware(value, "the time")
    return value.replace(microsecond=(value.microsecond // 1000) * 1000).isoformat(
        timespec="milliseconds" if milliseconds else "seconds"
    )


def check_period(
    start: dt.datetime, end: dt.datetime, longest: dt.timedelta = MAX_DOWNLOAD_PERIOD
) -> None:
    """Refuse, before anything is sent, a period LINE WORKS would refuse."""
    _aware(start, "start")
    _aware(end, "end")
    if end <= start:
        raise PeriodError(f"the period must end after it starts: {start} .. {end}")
    if end - start > longest:
        raise PeriodError(
            f"LINE WORKS takes at most {longest.days} days per request; {start} .. {end} is"
            f" {end - start}: split it"
        )


def slices(
    start: dt.datetime, end: dt.datetime, longest: dt.timedelta
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """[start, end) cut into consecutive periods of at most `longest`."""
    check_period(start, end, dt.timedelta.max)
    while start < end:
        stop = min(start + longest, end)
        yield start, stop
        start = stop


def query_string(params: Mapping[str, str | int | None]) -> str:
    """``a=1&b=...``: every reserved character percent-encoded (``+`` as ``%2B``) but ``:``."""
    pairs = (
        f"{quote(str(name), safe='')}={quote(str(value), safe=':')}"
        for name, value in params.items()
        if value is not None
    )
    return "&".join(pairs)
