"""Replaying dead letters after their cause was fixed (an operator's action)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from talklog import deadletters, ledger
from talklog.loading import BulkLoader
from talklog.salesforce.fields import UPSERT_KEYS
from talklog.summary import JobSummary

REPLAY_ORDER = ("LineWorks__c", "TalkLog__c", "Task")  # parents before the rows that use them


@dataclass
class ReplaySummary(JobSummary):
    """What a replay resubmitted, by object; `rejected`: letters Salesforce still refuses."""

    by_object: dict[str, dict[str, Any]] = field(default_factory=dict)  # LoadOutcome.summary()

    def loads(self) -> Iterable[Mapping[str, Any]]:
        return self.by_object.values()


def replay_dead_letters(
    *,
    sessions: sessionmaker[Session],
    loader: BulkLoader,
    object_name: str | None = None,
    error_code: str | None = None,
    api_calls: Callable[[], int] | None = None,
) -> ReplaySummary:
    """Resubmit every open dead letter (optionally one object / one error code).

    `api_calls` counts the run's Salesforce API calls for the summary (None: not counted).
    """
    summary = ReplaySummary()
    for name in REPLAY_ORDER:
        if object_name and name != object_name:
            continue
        with sessions() as session:
            letters = deadletters.open_letters(session, retryable_only=False, object_name=name)
            payloads = [x.payload for x in letters if not error_code or x.error_code == error_code]
        if not payloads:
            continue
        outcome = loader.upsert(name, UPSERT_KEYS[name], payloads)
        summary.by_object[name] = outcome.summary()
        if name == "TalkLog__c":
            completed = ledger.completed_talklogs(outcome.accepted_keys, outcome.rejected)
            with sessions.begin() as session:
                ledger.mark_delivered(session, dict.fromkeys(completed), dt.datetime.now(dt.UTC))
    summary.api_calls = api_calls() if api_calls else None
    return summary
