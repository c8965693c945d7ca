"""Loading rows into Salesforce with Bulk API 2.0, exactly as the operator needs to see it.

Every row ends accepted or as a dead letter with Salesforce's error. The failure policy
(`talklog.salesforce.failures`) decides what happens to each: rows answered RETRY_NOW (row
locks) are sent again inside the load after its backoff, and open retryable dead letters of the
same object ride along with the next load, so they pass by themselves. The SOQL queries of a
run get the same policy (`patient_queries`): 5xx answers are retried, the daily API budget
stops the run with `RequestLimitExceededError`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from talklog import deadletters
from talklog.deadletters import Rejection
from talklog.salesforce.bulk import BulkClient, CsvSpool, spool_rows
from talklog.salesforce.failures import (
    QUERY_RETRY,
    ROW_RETRY,
    Backoff,
    Failure,
    SfError,
    call_with_policy,
    row_error,
    without_refused_owner,
)
from talklog.targets import QueryAll


@dataclass
class LoadOutcome:
    """What one object's load did: rows sent (a row retried in the load counts each time),
    written (accepted by Salesforce, upserted) and rejected (dead letters, by key)."""

    object_name: str
    sent: int = 0
    written: int = 0
    accepted_keys: set[str] = field(default_factory=set)
    rejected: dict[str, Rejection] = field(default_factory=dict)
    retried_letters: int = 0
    resent_without_owner: int = 0  # rows refused for their OwnerId, sent again without

    def summary(self) -> dict[str, Any]:
        codes = Counter(rejection.error_code for rejection in self.rejected.values())
        return {
            "sent": self.sent,
            "written": self.written,
            "rejected": len(self.rejected),
            "rejected_by_code": dict(sorted(codes.items())),
            "dead_letters_retried": self.retried_letters,
        }


@dataclass
class BulkLoader:
    """Upserts rows of one object by its external id, with dead letters kept in the store."""

    bulk: BulkClient
    sessions: sessionmaker[Session]
    dag_id: str | None = None
    run_id: str | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    row_retry: Backoff = ROW_RETRY

    def upsert(
        self, object_name: str, key_field: str, rows: CsvSpool | Iterable[Mapping[str, Any]]
    ) -> LoadOutcome:
        """Upsert `rows` (a spool that keeps `key_field` keys, or dicts) by `key_field`.

        A spool stays the caller's (read, never changed or closed); dicts are spooled here.
        Rows of different column sets (replayed letters of several jobs) go in one job each.
        """
        outcome = LoadOutcome(object_name)
        with contextlib.ExitStack() as cleanup:
            for spool in self._spools(object_name, key_field, rows, outcome, cleanup):
                self._upsert_spool(object_name, key_field, spool, outcome, cleanup)
        self._record(object_name, outcome)
        return outcome

    def _upsert_spool(
        self,
        object_name: str,
        key_field: str,
        spool: CsvSpool,
        outcome: LoadOutcome,
        cleanup: contextlib.ExitStack,
    ) -> None:
        """Upsert `spool`, then the rows answered RETRY_NOW again (sorted by key, after the
        policy's backoff) while `row_retry` allows; rows still failing stay retryable letters."""
        pending = spool
        for retry in range(1, self.row_retry.attempts):
            retry_now = self._submit(object_name, key_field, pending, outcome)
            if not retry_now:
                return
            self.sleep(self.row_retry.delay(retry))
            retry_now.sort(key=lambda row: str(row.get(key_field)))
            for row in retry_now:
                outcome.rejected.pop(str(row[key_field]), None)
            pending = cleanup.enter_context(spool_rows(retry_now, (key_field,)))
        self._submit(object_name, key_field, pending, outcome)

    def _spools(
        self,
        object_name: str,
        key_field: str,
        rows: CsvSpool | Iterable[Mapping[str, Any]],
        outcome: LoadOutcome,
        cleanup: contextlib.ExitStack,
    ) -> list[CsvSpool]:
        """`rows`, with the open retryable dead letters of the object whose keys are not
        among them, as spools of one column set each (closed by `cleanup`, except `rows`)."""
        with self.sessions() as session:
            letters = deadletters.open_letters(
                session, retryable_only=True, object_name=object_name
            )
            payloads = [letter.payload for letter in letters]
        spools: list[CsvSpool] = []
        if isinstance(rows, CsvSpool):
            spools.append(cleanup.enter_context(rows.copy()) if payloads else rows)
        else:
            for row in rows:
                _spool_for(row, spools, key_field, cleanup).add(row)
        fresh = {key for spool in spools for key in spool.keys(key_field)}
        for payload in payloads:
            if str(payload.get(key_field)) not in fresh:
                _spool_for(payload, spools, key_field, cleanup).add(payload)
                outcome.retried_letters += 1
        return [spool for spool in spools if len(spool)]

    def _submit(
        self, object_name: str, key_field: str, spool: CsvSpool, outcome: LoadOutcome
    ) -> list[dict[str, Any]]:
        """One ingest; every failed or unprocessed row becomes a rejection. Returns the
        payloads of the rows the policy says to send again now."""
        result = self.bulk.ingest(object_name, "upsert", spool, external_id_field=key_field)
        outcome.accepted_keys.update(result.succeeded_keys)
        outcome.written += result.succeeded
        outcome.sent += result.sent
        returned = [(row, row_error(row.get("sf__Error", ""))) for row in result.failed]
        returned += result.unprocessed_with_errors()
        retry_now: list[dict[str, Any]] = []
        for row, error in returned:
            key, payload = row[key_field], _payload(row)
            outcome.rejected[key] = _rejection(object_name, key, error, payload)
            if error.failure is Failure.RETRY_NOW:
                retry_now.append(payload)
            elif again := without_refused_owner(error, payload):
                retry_now.append(again)  # the default owner (the integration user) owns it
                outcome.resent_without_owner += 1
        return retry_now

    def _record(self, object_name: str, outcome: LoadOutcome) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            deadletters.resolve(session, object_name, sorted(outcome.accepted_keys), now)
            deadletters.record(
                session, outcome.rejected.values(), now, dag_id=self.dag_id, run_id=self.run_id
            )


def _spool_for(
    row: Mapping[str, Any], spools: list[CsvSpool], key_field: str, cleanup: contextlib.ExitStack
) -> CsvSpool:
    """The first spool whose columns hold all of `row`'s, or a new one."""
    for spool in spools:
        if spool.fits(row):
            return spool
    spools.append(cleanup.enter_context(CsvSpool((key_field,))))
    return spools[-1]


def _rejection(object_name: str, key: str, error: SfError, payload: dict[str, Any]) -> Rejection:
    return Rejection(object_name, key, error.code, error.message, error.fields_text, payload)


def _payload(result_row: Mapping[str, str]) -> dict[str, Any]:
    """The row as sent, from a Bulk result row (which echoes the columns after sf__ ones)."""
    return {key: value for key, value in result_row.items() if not key.startswith("sf__")}


def patient_queries(
    query_all: QueryAll,
    *,
    backoff: Backoff = QUERY_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> QueryAll:
    """`query_all` under the failure policy: 5xx and connection failures are retried after
    `backoff`, and it says clearly when to stop.

    Works with any client whose errors carry the HTTP `status` and the REST error `content`
    (simple-salesforce's do). The daily API budget raises `RequestLimitExceededError`, an
    expired session that the client could not renew raises `SessionExpiredError`; other
    errors pass unchanged.
    """

    def run(soql: str) -> list[Mapping[str, Any]]:
        return call_with_policy(lambda: list(query_all(soql)), backoff=backoff, sleep=sleep)

    return run
