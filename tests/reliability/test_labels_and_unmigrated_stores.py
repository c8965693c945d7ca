"""DST-repeated local times labelled with their UTC offset; unmigrated stores say what to run.

Two small classes users hit (issue 16):

- A window label whose local time repeats (the autumn DST change) names its UTC offset, in
  the UI label, the transcript header and the alert facts; other labels stay as they were.
- A store that was never migrated, or is older than the package, makes every command say
  "run `talklog store upgrade --url ...`" (password left out) instead of a traceback.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from talklog import cli
from talklog.extract import LinkInForce, RoomContext
from talklog.store.migrate import StoreNotMigratedError, upgrade
from talklog.talklogs import TalkLogDraft, TalkLogSettings, render_draft
from talklog.targets import CustomerRecord, Placement
from talklog.transcripts import TalkLine
from talklog.windows import TalkWindow

pytestmark = pytest.mark.reliability
NEW_YORK = "America/New_York"
UTC = dt.UTC
PASSWORD = "s3cret-unmigrated"

# (window start in UTC, hours, time zone, the bounds as labelled)
DST_WINDOWS = [
    ((2026, 11, 1, 5), 1, NEW_YORK, "01:00 UTC-04:00 – 01:59 UTC-04:00"),
    ((2026, 11, 1, 6), 1, NEW_YORK, "01:00 UTC-05:00 – 01:59 UTC-05:00"),
    ((2026, 10, 31, 6), 24, NEW_YORK, "02:00 – 2026-11-01 01:59 UTC-04:00"),
    ((2026, 10, 25, 0), 1, "Europe/Berlin", "02:00 UTC+02:00 – 02:59 UTC+02:00"),
    ((2026, 10, 25, 1), 1, "Europe/Berlin", "02:00 UTC+01:00 – 02:59 UTC+01:00"),
    ((2026, 4, 4, 15), 1, "Australia/Sydney", "02:00 UTC+11:00 – 02:59 UTC+11:00"),
]
PLAIN_WINDOWS = [
    ((2026, 11, 1, 7), 1, NEW_YORK),  # the hour after the repeated one
    ((2026, 3, 8, 7), 1, NEW_YORK),  # spring: an hour skipped, nothing repeats
    ((2026, 1, 8, 15), 24, "Asia/Tokyo"),
]


def _window(start: tuple[int, ...], hours: int) -> TalkWindow:
    begin = dt.datetime(*start, tzinfo=UTC)
    return TalkWindow(begin, begin + dt.timedelta(hours=hours))


def _header(window: TalkWindow, timezone: str) -> str:
    room = RoomContext("room-1", "one_to_one", "山田様")
    link = LinkInForce("link", "lw", "U1", "external_contact", "x", ())
    customer = CustomerRecord("x", Placement.EXTERNAL_CONTACT, external_contact_id="x")
    line = TalkLine(1, window.start, "line", "山田", "text", "こんにちは")
    draft = TalkLogDraft("k", room, window, customer, link, None, [line])
    return render_draft(draft, TalkLogSettings(timezone=timezone)).splitlines()[1]


def _alert_label(window: TalkWindow, timezone: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from talklog_airflow.alerts import run_facts

    monkeypatch.setenv("TALKLOG_TIMEZONE", timezone)
    day = dt.timedelta(hours=24)  # the run's data interval is the window shifted by a day
    context = {
        "dag": type("Dag", (), {"dag_id": "talklog_hourly"})(),
        "data_interval_start": window.start + day,
        "data_interval_end": window.end + day,
    }
    return run_facts(context)["talk_window_label"]


@pytest.mark.parametrize(("start", "hours", "timezone", "bounds"), DST_WINDOWS)
def test_a_repeated_local_time_is_labelled_with_its_offset(
    start, hours, timezone, bounds, monkeypatch
):
    window = _window(start, hours)
    label = window.label(timezone)
    assert bounds in label and label.endswith(f"({timezone})")
    assert _header(window, timezone) == f"期間: {label}"
    assert _alert_label(window, timezone, monkeypatch) == label


def test_the_two_repeated_hours_get_different_labels():
    first, second = _window((2026, 11, 1, 5), 1), _window((2026, 11, 1, 6), 1)
    assert first.label(NEW_YORK) != second.label(NEW_YORK)


@pytest.mark.parametrize(("start", "hours", "timezone"), PLAIN_WINDOWS)
def test_other_labels_carry_no_offset(start, hours, timezone):
    assert "UTC" not in _window(start, hours).label(timezone)


def _store_at(url: str, revision: str | None) -> None:
    if revision is not None:
        upgrade(url, revision)


COMMANDS = [
    ["store", "describe"],
    ["trace", "--message", "no-such-message"],
    ["trace", "--record", "no-such-record"],
    ["dead-letters"],
    ["import", "--file", "export.csv"],
]


@pytest.mark.parametrize("revision", [None, "0001", "0002"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_on_an_unmigrated_store_says_what_to_run(
    command, revision, tmp_path, monkeypatch, capsys
):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    _store_at(url, revision)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "export.csv").write_text(
        "日時,送信者,受信者,チャンネルID,トーク\n", encoding="utf-8"
    )
    with pytest.raises(SystemExit) as stop:
        cli.main([*command, "--url", url])
    message = str(stop.value.code)
    assert "run `talklog store upgrade --url" in message and "Traceback" not in message
    assert ("has no tables yet" if revision is None else f"revision {revision}") in message
    assert "Traceback" not in capsys.readouterr().err


def test_an_upgraded_store_runs_the_commands(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    cli.main(["store", "upgrade", "--url", url])
    cli.main(["dead-letters", "--url", url])
    assert "no open dead letters" in capsys.readouterr().out


def test_the_airflow_hook_says_what_to_run_without_the_password(postgres_url, monkeypatch):
    """Every Airflow task opens the store through the hook: one check serves them all."""
    from talklog_airflow.hooks.store import MessageStoreHook

    url = sa.make_url(postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_UNMIGRATED_STORE",
        f'{{"conn_type": "talklog_store", "extra": {{"sqlalchemy_url": "{url}"}}}}',
    )
    hook = MessageStoreHook("unmigrated_store")
    with pytest.raises(StoreNotMigratedError) as error:
        hook.get_conn()
    assert "talklog store upgrade --url" in str(error.value)
    assert PASSWORD not in str(error.value)
    ok, message = hook.test_connection()
    assert not ok and "talklog store upgrade" in message and PASSWORD not in message
    upgrade(url)
    assert hook.test_connection() == (True, "Connection successfully tested")
