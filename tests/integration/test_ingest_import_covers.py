"""`talklog import --covers FROM TO` records the period the export holds as covered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from talklog import coverage
from talklog.cli import main as cli
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "lineworks_export.csv"


def test_import_with_covers_records_the_days(sqlite_url, capsys):
    upgrade(sqlite_url)
    cli(
        [
            "import",
            "--url",
            sqlite_url,
            "--file",
            str(FIXTURE),
            "--covers",
            "2026-01-09",
            "2026-01-09",
        ]
    )
    assert "recorded as covered" in capsys.readouterr().out
    sessions = make_session_factory(sqlite_url)
    start = dt.datetime(2026, 1, 8, 15, tzinfo=dt.UTC)
    with sessions() as session:
        assert coverage.is_covered(session, start, start + dt.timedelta(days=1))
        assert not coverage.is_covered(session, start, start + dt.timedelta(days=2))


def test_import_without_covers_records_nothing(sqlite_url):
    upgrade(sqlite_url)
    cli(["import", "--url", sqlite_url, "--file", str(FIXTURE)])
    start = dt.datetime(2026, 1, 9, 1, tzinfo=dt.UTC)
    with make_session_factory(sqlite_url)() as session:
        assert not coverage.is_covered(session, start, start + dt.timedelta(hours=1))


def test_a_bad_covers_period_fails_before_importing(sqlite_url):
    upgrade(sqlite_url)
    with pytest.raises(SystemExit, match="--covers"):
        cli(["import", "--url", sqlite_url, "--file", str(FIXTURE), "--covers", "x", "y"])
