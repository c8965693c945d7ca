"""Talk windows: the spec's section 4 table, one case per row, and tiling."""

from __future__ import annotations

import datetime as dt
import itertools

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable
from hypothesis import given, settings
from hypothesis import strategies as st

from talklog.windows import ScheduleChoice, TalkWindow, talk_window

TOKYO = "Asia/Tokyo"


def tokyo(month: int, day: int, hour: int, minute: int = 0) -> pendulum.DateTime:
    return pendulum.datetime(2026, month, day, hour, minute, tz=TOKYO)


# (schedule, run at, first minute written, last minute written) — spec section 4, verbatim.
SPEC_TABLE = [
    (ScheduleChoice.HOURLY, tokyo(1, 10, 1), tokyo(1, 9, 0, 0), tokyo(1, 9, 0, 59)),
    (ScheduleChoice.HOURLY, tokyo(1, 10, 2), tokyo(1, 9, 1, 0), tokyo(1, 9, 1, 59)),
    (ScheduleChoice.HOURLY, tokyo(1, 10, 3), tokyo(1, 9, 2, 0), tokyo(1, 9, 2, 59)),
    (ScheduleChoice.EVERY_6_HOURS, tokyo(1, 10, 1), tokyo(1, 8, 19, 0), tokyo(1, 9, 0, 59)),
    (ScheduleChoice.EVERY_6_HOURS, tokyo(1, 10, 7), tokyo(1, 9, 1, 0), tokyo(1, 9, 6, 59)),
    (ScheduleChoice.EVERY_6_HOURS, tokyo(1, 10, 13), tokyo(1, 9, 7, 0), tokyo(1, 9, 12, 59)),
    (ScheduleChoice.DAILY, tokyo(1, 10, 1), tokyo(1, 8, 1, 0), tokyo(1, 9, 0, 59)),
    (ScheduleChoice.DAILY, tokyo(1, 11, 1), tokyo(1, 9, 1, 0), tokyo(1, 10, 0, 59)),
    (ScheduleChoice.DAILY, tokyo(1, 12, 1), tokyo(1, 10, 1, 0), tokyo(1, 11, 0, 59)),
]


@pytest.mark.parametrize(("schedule", "run_at", "first", "last"), SPEC_TABLE)
def test_spec_window_table(schedule, run_at, first, last):
    timetable = CronDataIntervalTimetable(schedule.cron, timezone=TOKYO)
    interval = timetable.infer_manual_data_interval(run_after=run_at)
    assert interval.end == run_at
    window = talk_window(interval.start, interval.end)
    assert window.start == first
    assert window.end - dt.timedelta(minutes=1) == last
    assert window.contains(last) and not window.contains(last + dt.timedelta(minutes=1))


def _scheduled_windows(schedule: ScheduleChoice, timezone: str, start, count: int):
    timetable = CronDataIntervalTimetable(schedule.cron, timezone=timezone)
    restriction = TimeRestriction(earliest=start, latest=None, catchup=True)
    last: DataInterval | None = None
    for _ in range(count):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction
        )
        last = info.data_interval
        yield talk_window(last.start, last.end)


@pytest.mark.parametrize("schedule", list(ScheduleChoice))
def test_consecutive_windows_tile_across_months_and_years(schedule):
    windows = list(_scheduled_windows(schedule, TOKYO, tokyo(12, 30, 0).add(years=-1), 24 * 40))
    for earlier, later in itertools.pairwise(windows):
        assert earlier.end == later.start  # no gap, no overlap
    assert windows[0].start.year < windows[-1].end.year or schedule is ScheduleChoice.HOURLY


@settings(max_examples=40, deadline=None)
@given(
    schedule=st.sampled_from(list(ScheduleChoice)),
    timezone=st.sampled_from(["Asia/Tokyo", "UTC", "America/New_York", "Europe/London"]),
    start=st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 12, 31)),
)
def test_windows_tile_in_any_time_zone_including_dst(schedule, timezone, start):
    windows = list(
        _scheduled_windows(schedule, timezone, pendulum.instance(start, tz=timezone), 60)
    )
    for earlier, later in itertools.pairwise(windows):
        assert earlier.end == later.start
        assert earlier.start < earlier.end


def test_empty_data_interval_is_refused_with_a_clear_message():
    moment = tokyo(1, 10, 1)
    with pytest.raises(ValueError, match="CronDataIntervalTimetable"):
        talk_window(moment, moment)


def test_naive_bounds_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        TalkWindow(dt.datetime(2026, 1, 9), dt.datetime(2026, 1, 10))


def test_window_label_key_and_day():
    window = talk_window(tokyo(1, 9, 1), tokyo(1, 10, 1))
    assert window.label() == "2026-01-08 01:00 – 2026-01-09 00:59 (Asia/Tokyo)"
    assert window.key() == "20260107T1600Z-20260108T1600Z"
    assert window.day() == dt.date(2026, 1, 8)
    hourly = talk_window(tokyo(1, 10, 0), tokyo(1, 10, 1))
    assert hourly.label() == "2026-01-09 00:00 – 00:59 (Asia/Tokyo)"


UTC = dt.UTC


@pytest.mark.parametrize(
    ("start", "hours", "timezone", "label"),
    [
        ((2026, 11, 1, 4), 1, "America/New_York", "2026-11-01 00:00 – 00:59 (America/New_York)"),
        (
            (2026, 11, 1, 5),
            1,
            "America/New_York",
            "2026-11-01 01:00 UTC-04:00 – 01:59 UTC-04:00 (America/New_York)",
        ),
        (
            (2026, 11, 1, 6),
            1,
            "America/New_York",
            "2026-11-01 01:00 UTC-05:00 – 01:59 UTC-05:00 (America/New_York)",
        ),
        ((2026, 11, 1, 7), 1, "America/New_York", "2026-11-01 02:00 – 02:59 (America/New_York)"),
        (
            (2026, 10, 25, 0),
            1,
            "Europe/Berlin",
            "2026-10-25 02:00 UTC+02:00 – 02:59 UTC+02:00 (Europe/Berlin)",
        ),
        (
            (2026, 10, 31, 6),
            24,
            "America/New_York",
            "2026-10-31 02:00 – 2026-11-01 01:59 UTC-04:00 (America/New_York)",
        ),
        (
            (2026, 3, 8, 5),
            24,
            "America/New_York",
            "2026-03-08 00:00 – 2026-03-09 00:59 (America/New_York)",
        ),
    ],
)
def test_a_label_names_the_utc_offset_where_local_time_repeats(start, hours, timezone, label):
    """The autumn DST change repeats an hour: a bound in it carries its offset, no other."""
    begin = dt.datetime(*start, tzinfo=UTC)
    window = TalkWindow(begin, begin + dt.timedelta(hours=hours))
    assert window.label(timezone) == label
