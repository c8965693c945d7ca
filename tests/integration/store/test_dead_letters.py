"""Dead letters in a real store: one row per record, automatic retries bounded."""

from __future__ import annotations

import datetime as dt

from talklog import deadletters
from talklog.deadletters import MAX_AUTOMATIC_ATTEMPTS, Rejection
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade

NOW = dt.datetime(2026, 1, 10, 1, 0, tzinfo=dt.UTC)
NOT_SYNCED = Rejection(
    "TalkLog__c",
    "room-1|w|005|1",
    "INVALID_FIELD",
    "Foreign key external ID: link-1 not found for field LinkKey__c in entity LineWorks__c",
    "LineWorks__c",
    {"TalkLogKey__c": "room-1|w|005|1"},
)


def test_a_retryable_letter_stops_riding_along_after_the_last_automatic_attempt(sqlite_url):
    upgrade(sqlite_url)
    sessions = make_session_factory(sqlite_url)
    for attempt in range(1, MAX_AUTOMATIC_ATTEMPTS + 1):
        with sessions.begin() as session:
            deadletters.record(session, [NOT_SYNCED], NOW, dag_id="d", run_id=f"r{attempt}")
        with sessions() as session:
            (letter,) = deadletters.open_letters(session, retryable_only=False)
            retried = deadletters.open_letters(session, retryable_only=True)
        assert letter.attempts == attempt
        assert bool(retried) == (attempt < MAX_AUTOMATIC_ATTEMPTS)
    with sessions.begin() as session:  # an operator's replay that succeeds closes it
        assert deadletters.resolve(session, "TalkLog__c", [NOT_SYNCED.record_key], NOW) == 1
    with sessions() as session:
        assert deadletters.open_letters(session, retryable_only=False) == []
