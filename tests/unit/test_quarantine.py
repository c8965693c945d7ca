"""Quarantine rows: one per (source, key), updated when met again, resolved when read."""

from __future__ import annotations

import datetime as dt

from talklog import quarantine
from talklog.quarantine import Quarantined, Source
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade

T0 = dt.datetime(2026, 1, 9, tzinfo=dt.UTC)


def test_a_row_met_twice_is_one_row_and_resolves_when_read(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    sessions = make_session_factory(url)
    row = Quarantined(Source.STORE, "m-1", "UNREADABLE_TEXT", "text is not valid UTF-8")
    with sessions.begin() as session:
        quarantine.record(session, [row], T0, run_id="r1")
    with sessions.begin() as session:
        quarantine.record(session, [row], T0 + dt.timedelta(hours=1), run_id="r2")
    with sessions() as session:
        (kept,) = quarantine.open_rows(session)
        assert (kept.record_key, kept.seen, kept.run_id) == ("m-1", 2, "r2")
        assert quarantine.open_rows(session, Source.IMPORT) == []
    with sessions.begin() as session:
        assert quarantine.resolve(session, Source.STORE, ["m-1", "other"], T0) == 1
    with sessions() as session:
        assert quarantine.open_rows(session) == []
