"""`make demo`'s table: its API-call figures are the runs' own `api_calls`, and its legend says
why a window can have more Tasks than TalkLogs (the two objects' part limits)."""

from __future__ import annotations

import pytest

from talklog.transcripts import TALKLOG_LIMIT, TASK_DESCRIPTION_LIMIT
from talklog_dev.demo import LEGEND, TABLE_HEADERS, talk_row

STATES = {"write_talk_logs": "success", "check_dead_letters": "success"}


@pytest.mark.parametrize(
    ("talklogs", "tasks", "api_calls"), [(11, 11, 14), (1, 3, 9), (0, 0, 2), (47, 52, 15)]
)
def test_the_api_calls_column_is_the_run_s_own_count(talklogs: int, tasks: int, api_calls: int):
    write = {
        "window_label": "2025-01-11 09:00 – 09:59 (Asia/Tokyo)",
        "talklogs": {"written": talklogs},
        "tasks": {"written": tasks},
        "api_calls": api_calls,
    }
    values = {"ingest_talks": {}, "write_talk_logs": write, "check_api_budget": {"low": False}}
    row = dict(zip(TABLE_HEADERS, talk_row("talklog_hourly", values, STATES), strict=True))
    assert row["Salesforce\nAPI calls"] == api_calls
    assert (row["TalkLogs\nwritten"], row["Tasks\nwritten"]) == (talklogs, tasks)


def test_the_legend_says_why_a_window_can_have_more_tasks_than_talklogs():
    text = " ".join(LEGEND.split())
    assert f"{TALKLOG_LIMIT:,}" in text and f"{TASK_DESCRIPTION_LIMIT:,}" in text
    assert "more Tasks than TalkLogs" in text
    assert "api_calls" in text
