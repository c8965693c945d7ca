"""Ingestion's pure parts: download periods on whole minutes, coverage gaps, the room column."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from talklog.coverage import uncovered
from talklog.imports import ExportReader, ExportRow
from talklog.ingest import download_period

UTC = dt.UTC


def at(hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, 9, hour, minute, second, tzinfo=UTC)


def test_a_download_asks_for_the_window_and_a_margin_on_whole_minutes():
    assert download_period(at(10), at(11)) == (at(9, 55), at(11, 5))
    assert download_period(at(10, 0, 30), at(11, 0, 30)) == (at(9, 55), at(11, 6))
    tokyo = dt.timezone(dt.timedelta(hours=9))
    start = dt.datetime(2026, 1, 9, 19, tzinfo=tokyo)
    assert download_period(start, start + dt.timedelta(hours=1))[0] == at(9, 55)


@pytest.mark.parametrize(
    ("ranges", "missing"),
    [
        ([], [(at(10), at(12))]),
        ([(at(9), at(13))], []),
        ([(at(10), at(11)), (at(11), at(12))], []),  # touching ranges tile
        ([(at(9), at(10, 30)), (at(10, 15), at(11))], [(at(11), at(12))]),  # overlapping
        ([(at(10, 30), at(11))], [(at(10), at(10, 30)), (at(11), at(12))]),
        ([(at(8), at(9)), (at(13), at(14))], [(at(10), at(12))]),
    ],
)
def test_coverage_gaps_of_a_window(ranges, missing):
    assert uncovered(at(10), at(12), ranges) == missing


@pytest.mark.parametrize("room_column", ["チャンネルID", "トークルームID", "Channel ID"])
def test_the_room_column_of_every_known_export(room_column):
    text = f"日時,送信者,受信者,{room_column},トーク\r\n2026/01/09 10:00:00,a(a@x.jp),b,ch,hi\r\n"
    (row,) = list(ExportReader(io.StringIO(text, newline="")))
    assert isinstance(row, ExportRow) and row.channel_id == "ch"


def test_an_import_covers_the_days_or_times_it_names():
    from talklog.coverage import covered_period

    assert covered_period("2026-01-09", "2026-01-09", "Asia/Tokyo") == (
        dt.datetime(2026, 1, 8, 15, tzinfo=UTC),
        dt.datetime(2026, 1, 9, 15, tzinfo=UTC),
    )
    assert covered_period("2026-01-09T10:00", "2026-01-09T11:00+09:00", "Asia/Tokyo") == (
        at(1),
        at(2),
    )
    with pytest.raises(ValueError, match="ends before it starts"):
        covered_period("2026-01-10", "2026-01-09", "Asia/Tokyo")
