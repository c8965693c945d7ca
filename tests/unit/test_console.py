"""The console's domain: schedules as Airflow runs them, talk-day backfills, window tables,
summaries rendered whatever keys they hold."""

from __future__ import annotations

import datetime as dt
import itertools

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable
from hypothesis import example, given, settings
from hypothesis import strategies as st

from talklog.console import (
    RunRecord,
    Schedule,
    ScheduledRun,
    WindowState,
    advice,
    day_span,
    headline_counts,
    one_line,
    plan_backfill,
    runs_for_talk_days,
    summary_rows,
    window_table,
)
from talklog.windows import ScheduleChoice

TOKYO = "Asia/Tokyo"
UTC = dt.UTC


def tokyo(month: int, day: int, hour: int = 0) -> dt.datetime:
    return pendulum.datetime(2026, month, day, hour, tz=TOKYO)


def airflow_runs(cron: str, timezone: str, earliest: dt.datetime, count: int) -> list[tuple]:
    """The data intervals Airflow's own timetable gives, for comparison."""
    timetable = CronDataIntervalTimetable(cron, timezone=timezone)
    restriction = TimeRestriction(earliest=pendulum.instance(earliest), latest=None, catchup=True)
    last: DataInterval | None = None
    found = []
    for _ in range(count):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction
        )
        last = info.data_interval
        found.append((last.start, last.end))
    return found


@settings(max_examples=30, deadline=None)
@given(
    choice=st.sampled_from(list(ScheduleChoice)),
    timezone=st.sampled_from([TOKYO, "UTC", "America/New_York", "Europe/London"]),
    start=st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 12, 31)),
)
def test_schedule_runs_equal_airflows_timetable_in_any_zone(choice, timezone, start):
    earliest = start.replace(tzinfo=UTC)
    expected = airflow_runs(choice.cron, timezone, earliest, 30)
    mine = list(Schedule(choice.cron, timezone).runs(earliest, expected[-1][0]))
    assert [(r.start, r.end) for r in mine] == expected


@pytest.mark.parametrize(
    ("choice", "timezone", "earliest"),
    [
        (ScheduleChoice.HOURLY, "America/New_York", dt.datetime(2026, 11, 1, 3, tzinfo=UTC)),
        (ScheduleChoice.HOURLY, "America/New_York", dt.datetime(2026, 3, 8, 5, tzinfo=UTC)),
        (ScheduleChoice.DAILY, "Europe/London", dt.datetime(2026, 3, 27, tzinfo=UTC)),
        (ScheduleChoice.EVERY_6_HOURS, "Europe/London", dt.datetime(2026, 10, 24, tzinfo=UTC)),
    ],
)
def test_schedule_runs_equal_airflows_across_dst_changes(choice, timezone, earliest):
    expected = airflow_runs(choice.cron, timezone, earliest, 30)
    mine = Schedule(choice.cron, timezone).runs(earliest, expected[-1][0])
    assert [(r.start, r.end) for r in mine] == expected


def test_day_span_is_local_midnight_to_midnight():
    assert day_span(dt.date(2026, 1, 9), dt.date(2026, 1, 10), TOKYO) == (
        dt.datetime(2026, 1, 8, 15, tzinfo=UTC),
        dt.datetime(2026, 1, 10, 15, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="before"):
        day_span(dt.date(2026, 1, 10), dt.date(2026, 1, 9), TOKYO)


@pytest.mark.parametrize(
    ("choice", "count", "first_window", "last_window"),
    [
        (ScheduleChoice.HOURLY, 48, tokyo(1, 9, 0), tokyo(1, 11, 0)),
        (ScheduleChoice.EVERY_6_HOURS, 9, tokyo(1, 8, 19), tokyo(1, 11, 1)),
        (ScheduleChoice.DAILY, 3, tokyo(1, 8, 1), tokyo(1, 11, 1)),
    ],
)
def test_runs_for_talk_days_cover_exactly_those_days(choice, count, first_window, last_window):
    runs = runs_for_talk_days(
        Schedule(choice.cron, TOKYO), dt.date(2026, 1, 9), dt.date(2026, 1, 10)
    )
    assert len(runs) == count
    assert runs[0].window.start == first_window
    assert runs[-1].window.end == last_window
    for earlier, later in itertools.pairwise(runs):
        assert earlier.end == later.start  # consecutive, no gap


@settings(max_examples=40, deadline=None)
@given(
    choice=st.sampled_from(list(ScheduleChoice)),
    timezone=st.sampled_from([TOKYO, "America/New_York", "Europe/London"]),
    first=st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2030, 12, 1)),
    days=st.integers(min_value=0, max_value=3),
)
# London springs forward at 01:00 on 2024-03-31: the cron's 01:00 run starts at 02:00 BST, the
# instant the step back from 02:00 BST first returned again (the day's first window was lost).
@example(ScheduleChoice.EVERY_6_HOURS, "Europe/London", dt.date(2024, 3, 30), 0)
@example(ScheduleChoice.DAILY, "Europe/London", dt.date(2024, 3, 30), 0)
def test_runs_for_talk_days_cover_every_talk_minute_and_no_more(choice, timezone, first, days):
    last = first + dt.timedelta(days=days)
    start, end = day_span(first, last, timezone)
    runs = runs_for_talk_days(Schedule(choice.cron, timezone), first, last)
    assert runs[0].window.start <= start < runs[0].window.end
    assert runs[-1].window.start < end <= runs[-1].window.end
    assert all(r.window.start < end and r.window.end > start for r in runs)


def test_backfill_plan_asks_airflow_for_first_and_last_logical_dates():
    schedule = Schedule(ScheduleChoice.HOURLY.cron, TOKYO)
    ran = RunRecord(
        "talklog_hourly",
        "scheduled__x",
        tokyo(1, 10, 10),
        tokyo(1, 10, 11),
        "success",
    )
    plan = plan_backfill(
        "talklog_hourly",
        schedule,
        dt.date(2026, 1, 9),
        dt.date(2026, 1, 9),
        existing=[ran],
        now=tokyo(1, 11, 0),
    )
    assert plan.from_date == tokyo(1, 10, 0)  # writes Jan 9 00:00-00:59
    assert plan.to_date == tokyo(1, 10, 23)  # writes Jan 9 23:00-23:59
    assert len(plan.runs) == 24 and len(plan.to_run()) == 23
    assert plan.status(ScheduledRun(ran.start, ran.end)) == "already ran"
    body = plan.request()
    assert body["from_date"] == "2026-01-09T15:00:00+00:00"
    assert body["to_date"] == "2026-01-10T14:00:00+00:00"
    lines = plan.lines(TOKYO)
    assert lines[0].startswith("2026-01-09 00:00 – 00:59 (Asia/Tokyo)")
    assert "23 of 24 windows to run" in lines[-1]


def test_backfill_plan_marks_windows_not_due():
    schedule = Schedule(ScheduleChoice.DAILY.cron, TOKYO)
    plan = plan_backfill(
        "talklog_daily", schedule, dt.date(2026, 1, 9), dt.date(2026, 1, 9), now=tokyo(1, 10, 12)
    )
    assert [plan.status(r) for r in plan.runs] == ["will run", "not due yet"]


def record(start, end, state="success", dag="talklog_hourly", **summary) -> RunRecord:
    return RunRecord(dag, f"run_{start:%d%H}_{dag}", start, end, state, summary or None)


def test_window_table_shows_runs_counts_and_gaps():
    schedule = Schedule(ScheduleChoice.HOURLY.cron, TOKYO)
    runs = [
        record(tokyo(1, 10, 10), tokyo(1, 10, 11), messages=5, talklogs={"sent": 2, "written": 2}),
        record(tokyo(1, 10, 11), tokyo(1, 10, 12), "failed"),
        record(tokyo(1, 10, 13), tokyo(1, 10, 14), "running"),
    ]
    rows = window_table(schedule, tokyo(1, 9, 10), tokyo(1, 9, 15), runs, now=tokyo(1, 10, 14))
    assert [row.state for row in rows] == [
        WindowState.WRITTEN,
        WindowState.FAILED,
        WindowState.GAP,
        WindowState.RUNNING,
        WindowState.NOT_DUE,
    ]
    assert rows[0].counts == {"messages": 5, "TalkLogs written": 2, "rejected": 0}
    assert rows[0].runs == (runs[0],)
    assert rows[2].runs == ()


def test_window_written_by_another_schedules_runs_is_not_a_gap():
    """After a switch from hourly to daily, the hourly runs that wrote a day cover its window."""
    daily = Schedule(ScheduleChoice.DAILY.cron, TOKYO)
    hourly = [record(tokyo(1, 10, h), tokyo(1, 10, h + 1), messages=1) for h in range(1, 23)]
    hourly += [record(tokyo(1, 10, 23), tokyo(1, 11, 0)), record(tokyo(1, 11, 0), tokyo(1, 11, 1))]
    rows = window_table(daily, tokyo(1, 9, 2), tokyo(1, 9, 3), hourly, now=tokyo(1, 12))
    assert [row.state for row in rows] == [WindowState.WRITTEN]
    missing_one = [run for run in hourly if run.start != tokyo(1, 10, 5)]
    rows = window_table(daily, tokyo(1, 9, 2), tokyo(1, 9, 3), missing_one, now=tokyo(1, 12))
    assert [row.state for row in rows] == [WindowState.GAP]


RUN_SUMMARY = {
    "window": "20260109T0100Z-20260109T0200Z",
    "window_label": "2026-01-09 10:00 – 10:59 (Asia/Tokyo)",
    "rooms": 3,
    "messages": 42,
    "transcripts": 4,
    "pairs_owned_by_other_windows": 0,
    "unresolved_targets": {},
    "talklogs": {"sent": 4, "written": 3, "rejected": 1, "rejected_by_code": {"INVALID_FIELD": 1}},
    "tasks": {"sent": 4, "written": 4, "rejected": 0, "rejected_by_code": {}},
    "rejected": 1,
    "api_calls": 17,
}
# Keys other engineers add to the summaries: the console shows them without knowing them.
NEW_KEYS = [
    ("quarantined", 2, "quarantined rows 2"),
    ("deleted", {"TalkLog__c": 3}, "deleted 3"),
    ("resent", 5, "re-sent 5"),
    ("tasks_owned_by_integration_user", {"no_user": 2}, "tasks owned by the integration user 2"),
    ("brand_new_counter", 7, "brand new counter 7"),
    ("brand_new_by_reason", {"a": 1, "b": 2}, "brand new by reason 3"),
]


def test_one_line_names_counts_rejections_and_api_calls():
    line = one_line(RUN_SUMMARY)
    assert line == (
        "42 messages; 3 rooms; 4 transcripts; 3 TalkLogs, 4 Tasks written;"
        " 1 rejected (INVALID_FIELD 1); 17 API calls"
    )
    assert one_line(None).startswith("no summary")


@pytest.mark.parametrize(("key", "value", "shown"), NEW_KEYS)
def test_one_line_and_rows_show_keys_they_do_not_know(key, value, shown):
    summary = {**RUN_SUMMARY, key: value}
    assert shown in one_line(summary)
    labels = [label for label, _ in summary_rows(summary)]
    assert any(label.lower().startswith(shown.rsplit(" ", 1)[0]) for label in labels)
    assert len(summary_rows(summary)) == len(summary_rows(RUN_SUMMARY)) + max(
        1, len(value) if isinstance(value, dict) else 1
    )


@pytest.mark.parametrize(
    "summary",
    [
        {"since": "2026-01-09T00:00:00+00:00", "links": 3, "linked": 2, "unlinked": 1,
         "linkworks": {"sent": 3, "written": 3, "rejected": 0, "rejected_by_code": {}},
         "exchange_tasks": {"sent": 2, "written": 2, "rejected": 0, "rejected_by_code": {}},
         "rejected": 0, "api_calls": 9},
        {"by_object": {"Task": {"sent": 2, "written": 1, "rejected": 1,
                                "rejected_by_code": {"UNABLE_TO_LOCK_ROW": 1}}},
         "rejected": 1, "api_calls": 4},
        {"since": "x", "changed_customers": 2, "links": 2, "unresolved_targets": 0,
         "moved": {"TalkLog__c": 3}, "by_object": {}, "rejected": 0, "api_calls": 6},
    ],
    ids=["link_sync", "replay", "relink"],
)  # fmt: skip
def test_every_jobs_summary_renders(summary):
    line = one_line(summary)
    assert line and "None" not in line
    rows = dict(summary_rows(summary))
    assert "API calls used" in rows
    counts = headline_counts(summary)
    assert counts["rejected"] == summary["rejected"]


def test_summary_rows_label_known_keys_and_flatten_loads():
    rows = dict(summary_rows(RUN_SUMMARY))
    assert rows["Talk window"] == "2026-01-09 10:00 – 10:59 (Asia/Tokyo)"
    assert rows["TalkLogs › written"] == "3"
    assert rows["TalkLogs › rejected by code › INVALID_FIELD"] == "1"
    assert rows["Unresolved targets"] == "—"
    assert rows["API calls used"] == "17"


@pytest.mark.parametrize(
    ("extra", "hint"),
    [
        ({}, "Replay"),
        ({"quarantined": 1}, "quarantine"),
        ({"unresolved_targets": {"no_record": 2}}, "no Salesforce record"),
        ({"staff_without_active_user": {"x": ["lw1"]}}, "integration user"),
    ],
)
def test_advice_says_what_to_do_when_something_is_red(extra, hint):
    assert any(hint in line for line in advice({**RUN_SUMMARY, **extra}))
    assert advice({"messages": 1, "rejected": 0}) == []


def test_backfill_command_prints_the_windows_and_needs_no_store(capsys, monkeypatch):
    from talklog.cli import main

    monkeypatch.delenv("AIRFLOW_API_URL", raising=False)
    main(["backfill", "--talks-from", "2026-01-09", "--dag", "talklog_daily", "--tz", TOKYO])
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "2026-01-08 01:00 – 2026-01-09 00:59 (Asia/Tokyo)  run [2026-01-08 16:00,"
        " 2026-01-09 16:00) UTC  will run",
        "2026-01-09 01:00 – 2026-01-10 00:59 (Asia/Tokyo)  run [2026-01-09 16:00,"
        " 2026-01-10 16:00) UTC  will run",
    ]
    assert "backfill from 2026-01-08T16:00:00+00:00 to 2026-01-09T16:00:00+00:00" in out[2]
    assert out[3].startswith("dry run: set AIRFLOW_API_URL and AIRFLOW_API_TOKEN")
