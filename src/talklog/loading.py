"""Loading rows into Salesforce with Bulk API 2.0, exactly as the operator needs to see it.

Every row ends accepted or as a dead letter with Salesforce's error; transient row errors
(row locks) are retried inside the load with a backoff first, and open retryable dead letters
of the same object ride along with the next load, so they pass by themselves. The SOQL
queries of a run get the same patience (`patient_queries`): 5xx answers are retried, the
daily API budget stops the run with `RequestLimitExceededError`.
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
from talklog.deadletters import Rejection, parse_bulk_error
from talklog.salesforce.bulk import (
    RETRY_STATUSES,
    BulkClient,
    CsvSpool,
    RequestLimitExceededError,
    SessionExpiredError,
    spool_rows,
)
from talklog.targets import QueryAll

IN_LOAD_RETRIES = 3
IN_LOAD_BACKOFF_S = 2.0
TRANSIENT_ROW_ERRORS = frozenset({"UNABLE_TO_LOCK_ROW", "UNPROCESSED"})
QUERY_RETRIES = 3
QUERY_BACKOFF_S = 1.0


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

    def upsert(
        self, object_name: str, key_field: str, rows: CsvSpool | Iterable[Mapping[str, Any]]
    ) -> LoadOutcome:
        """Upsert `rows` (a spool that keeps `key_field` keys, or dicts) by `key_field`.

        A spool stays the caller's (read, never changed or closed); dicts are spooled here.
        Rows of different column sets (replayed letters of several jobs) go in one job each.
        """
        outcome = LoadOutcome(object_name)
        with contextlib.ExitStack() as cleanup:
            for pending in self._spools(object_name, key_field, rows, outcome, cleanup):
                for attempt in range(IN_LOAD_RETRIES + 1):
                    transient = self._submit(object_name, key_field, pending, outcome)
                    if not transient or attempt == IN_LOAD_RETRIES:
                        break
                    self.sleep(IN_LOAD_BACKOFF_S * 2**attempt)
                    transient.sort(key=lambda row: str(row.get(key_field)))
                    for row in transient:
                        outcome.rejected.pop(str(row[key_field]), None)
                    pending = cleanup.enter_context(spool_rows(transient, (key_field,)))
        self._record(object_name, outcome)
        return outcome

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
        result = self.bulk.ingest(object_name, "upsert", spool, external_id_field=key_field)
        outcome.accepted_keys.update(result.succeeded_keys)
        outcome.written += result.succeeded
        outcome.sent += result.sent
        transient: list[dict[str, Any]] = []
        for row in result.failed:
            code, message, fields = parse_bulk_error(row.get("sf__Error", ""))
            payload = _payload(row)
            outcome.rejected[row[key_field]] = Rejection(
                object_name, row[key_field], code, message, fields, payload
            )
            if code in TRANSIENT_ROW_ERRORS:
                transient.append(payload)
        for row in result.unprocessed:
            payload = _payload(row)
            outcome.rejected[row[key_field]] = Rejection(
                object_name,
                row[key_field],
                "UNPROCESSED",
                "the Bulk job ended before this row",
                None,
                payload,
            )
            transient.append(payload)
        return transient

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


def _payload(result_row: Mapping[str, str]) -> dict[str, Any]:
    """The row as sent, from a Bulk result row (which echoes the columns after sf__ ones)."""
    return {key: value for key, value in result_row.items() if not key.startswith("sf__")}


def patient_queries(
    query_all: QueryAll,
    *,
    retries: int = QUERY_RETRIES,
    backoff_s: float = QUERY_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> QueryAll:
    """`query_all` that retries 5xx answers with a backoff and says clearly when to stop.

    Works with any client whose errors carry the HTTP `status` and the REST error `content`
    (simple-salesforce's do). The daily API budget raises `RequestLimitExceededError`, an
    expired session that the client could not renew raises `SessionExpiredError`.
    """

    def run(soql: str) -> list[Mapping[str, Any]]:
        for attempt in range(retries + 1):
            try:
                return list(query_all(soql))
            except Exception as exc:
                status, code, message = _rest_error(exc)
                if status in RETRY_STATUSES and attempt < retries:
                    sleep(backoff_s * 2**attempt)
                    continue
                if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
                    raise RequestLimitExceededError(status, code, message) from exc
                if status == 401:
                    raise SessionExpiredError(status, code, message) from exc
                raise
        raise AssertionError("unreachable")

    return run


def _rest_error(exc: Exception) -> tuple[int | None, str, str]:
    """(HTTP status, errorCode, message) of a REST client error, when it carries them."""
    status = getattr(exc, "status", None)
    content = getattr(exc, "content", None)
    first = content[0] if isinstance(content, list) and content else content
    if isinstance(first, Mapping):
        return status, str(first.get("errorCode", "")), str(first.get("message", ""))
    return status, "", str(content or exc)
