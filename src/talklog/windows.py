"""Talk windows: every talk is written by the run that starts 24 hours after it.

A run with the data interval [start, end) writes the talks of [start - 24h, end - 24h).
Windows are derived from the data interval only, never from the logical date or "now",
so scheduled runs, manual runs, clears and backfills agree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Tokyo"
TALK_DELAY = dt.timedelta(hours=24)


class ScheduleChoice(StrEnum):
    """The schedules a Salesforce admin can pick, each a cron in the configured time zone."""

    HOURLY = "hourly"
    EVERY_6_HOURS = "every_6_hours"
    DAILY = "daily"

    @property
    def cron(self) -> str:
        return _CRONS[self]


_CRONS = {
    ScheduleChoice.HOURLY: "0 * * * *",
    ScheduleChoice.EVERY_6_HOURS: "0 1,7,13,19 * * *",
    ScheduleChoice.DAILY: "0 1 * * *",
}


@dataclass(frozen=True)
class TalkWindow:
    """A half-open span [start, end) of talk time, in UTC."""

    start: dt.datetime
    end: dt.datetime
    _key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for value in (self.start, self.end):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"talk window bounds must be timezone-aware, got {value!r}")
        if self.end <= self.start:
            raise ValueError(f"talk window is empty or reversed: {self.start} .. {self.end}")
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        # Built once: keys of every claim and TalkLog of a window start with it.
        object.__setattr__(self, "_key", f"{self.start:%Y%m%dT%H%MZ}-{self.end:%Y%m%dT%H%MZ}")

    def contains(self, moment: dt.datetime) -> bool:
        return self.start <= moment < self.end

    def label(self, timezone: str = DEFAULT_TIMEZONE) -> str:
        """Human-readable bounds in `timezone`, e.g. `2026-01-09 00:00 – 00:59 (Asia/Tokyo)`.

        A bound whose local time occurs twice (the hour a DST change repeats) carries its
        UTC offset: `2026-11-01 01:00 UTC-04:00 – 01:59 UTC-04:00 (America/New_York)`.
        """
        local = zone(timezone)
        start = self.start.astimezone(local)
        last = (self.end - dt.timedelta(minutes=1)).astimezone(local)
        last_fmt = "%H:%M" if last.date() == start.date() else "%Y-%m-%d %H:%M"
        return f"{_local(start, '%Y-%m-%d %H:%M')} – {_local(last, last_fmt)} ({timezone})"

    def key(self) -> str:
        """A compact, deterministic identifier of the window (UTC, minute precision)."""
        return self._key

    def day(self, timezone: str = DEFAULT_TIMEZONE) -> dt.date:
        """The day of the window in `timezone`: the day it starts on (a Task's ActivityDate)."""
        return self.start.astimezone(zone(timezone)).date()


def _local(moment: dt.datetime, fmt: str) -> str:
    """`moment` (aware, local) as `fmt`, with its UTC offset when the wall time is ambiguous."""
    text = moment.strftime(fmt)
    if moment.replace(fold=1 - moment.fold).utcoffset() == moment.utcoffset():
        return text
    offset = moment.strftime("%z")
    return f"{text} UTC{offset[:3]}:{offset[3:]}"


def talk_window(
    data_interval_start: dt.datetime,
    data_interval_end: dt.datetime,
    delay: dt.timedelta = TALK_DELAY,
) -> TalkWindow:
    """The talk window written by a run with the data interval [start, end)."""
    if data_interval_end <= data_interval_start:
        raise ValueError(
            "the run has an empty data interval: schedule it with a data-interval timetable "
            f"(CronDataIntervalTimetable), got {data_interval_start} .. {data_interval_end}"
        )
    return TalkWindow(data_interval_start - delay, data_interval_end - delay)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A plain stdlib UTC datetime (pendulum and other tz-aware subclasses normalised)."""
    utc = moment.astimezone(dt.UTC)
    return dt.datetime(*utc.timetuple()[:6], utc.microsecond, tzinfo=dt.UTC)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (e.g. `Asia/Tokyo`); ValueError for a name it does not know."""
    from zoneinfo import ZoneInfo  # here, not at the top: DAG files import this module

    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, malformed, a folder like `America`
        raise ValueError(
            f"unknown time zone {name!r}: expected an IANA name such as {DEFAULT_TIMEZONE}"
        ) from None
