"""Loading rows into Salesforce with Bulk API 2.0, exactly as the operator needs to see it.

Every row ends accepted or as a dead letter with Salesforce's error; deletions (records found
by their external keys, deleted by Id) end the same way. The failure policy
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from talklog import deadletters
from talklog.batching import chunked
from talklog.deadletters import DELETE, Rejection
from talklog.salesforce.bulk import BulkClient, CsvSpool, IngestRequest, IngestResult, spool_rows
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
from talklog.salesforce.soql import quote
from talklog.targets import QueryAll

KEYS_PER_QUERY = 50
"""External keys per SOQL `IN (...)` that finds record Ids (keys run to ~120 characters;
the query stays far below the URL limit of a GET)."""


@dataclass
class LoadOutcome:
    """What one object's load did.

    `sent`: distinct rows sent; `resent`: further sends of rows answered RETRY_NOW in the
    load (a row sent four times counts 1 + 3); `written`: rows upserted, `deleted`: records
    deleted; `rejected`: dead letters, by key. `accepted_keys`: keys upserted or, for a
    deletion, no longer in Salesforce.
    """

    object_name: str
    sent: int = 0
    resent: int = 0
    written: int = 0
    deleted: int = 0
    accepted_keys: set[str] = field(default_factory=set)
    rejected: dict[str, Rejection] = field(default_factory=dict)
    retried_letters: int = 0
    resends: Counter[str] = field(default_factory=Counter)
    resent_without_owner: int = 0  # rows refused for their OwnerId, sent again without

    def sends(self, key: str) -> int:
        """How often this load sent the row of `key` (1 unless it was retried)."""
        return 1 + self.resends[key]

    def merged(self, other: LoadOutcome) -> LoadOutcome:
        """This load and `other` (the same object's deletions, say) as one outcome."""
        return LoadOutcome(
            self.object_name,
            self.sent + other.sent,
            self.resent + other.resent,
            self.written + other.written,
            self.deleted + other.deleted,
            self.accepted_keys | other.accepted_keys,
            {**self.rejected, **other.rejected},
            self.retried_letters + other.retried_letters,
            self.resends + other.resends,
            self.resent_without_owner + other.resent_without_owner,
        )

    def summary(self) -> dict[str, Any]:
        codes = Counter(rejection.error_code for rejection in self.rejected.values())
        return {
            "sent": self.sent,
            "resent": self.resent,
            "written": self.written,
            "deleted": self.deleted,
            "rejected": len(self.rejected),
            "rejected_by_code": dict(sorted(codes.items())),
            "dead_letters_retried": self.retried_letters,
        }


@dataclass(frozen=True)
class _Operation:
    """How a load names its rows: upserts by their external key; deletions by Id, each Id
    standing for the external key (`record_keys`) its dead letter is kept under."""

    name: str
    key_field: str  # the external key field of the object
    record_keys: Mapping[str, str] | None = None  # deletions: Id -> external key

    @property
    def ingest_key(self) -> str:
        """The column that identifies a row in the ingest job."""
        return self.key_field if self.record_keys is None else "Id"

    def key(self, ingest_key: str) -> str:
        return ingest_key if self.record_keys is None else self.record_keys[ingest_key]

    def letter_payload(self, sent: dict[str, Any]) -> dict[str, Any]:
        if self.record_keys is None:
            return sent
        record_id = str(sent["Id"])
        return deadletters.deletion_payload(self.key_field, self.key(record_id), record_id)


@dataclass
class _Lane:
    """One spool of one object's load: the rows it sends next (all, then those to resend)."""

    object_name: str
    operation: _Operation
    outcome: LoadOutcome
    pending: CsvSpool
    first: bool = True

    def request(self) -> IngestRequest:
        if self.operation.record_keys is None:
            key = self.operation.key_field
            return IngestRequest(self.object_name, "upsert", self.pending, key)
        return IngestRequest(self.object_name, self.operation.name, self.pending, key_field="Id")


Load = tuple[str, str, "CsvSpool | Iterable[Mapping[str, Any]]"]
"""An upsert of `BulkLoader.upsert_all`: object, external key field, rows."""


@dataclass
class BulkLoader:
    """Upserts and deletes rows of one object by its external id, with dead letters kept
    in the store."""

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
        return self.upsert_all([(object_name, key_field, rows)])[0]

    def upsert_all(self, loads: Sequence[Load]) -> list[LoadOutcome]:
        """Several upserts (objects that do not depend on each other) as one load: every
        job of every object is submitted before Salesforce is asked how any is doing, and
        the rows to resend are resent together. One outcome per load, in order."""
        outcomes = [LoadOutcome(object_name) for object_name, _, _ in loads]
        with contextlib.ExitStack() as cleanup:
            lanes = [
                _Lane(object_name, _Operation("upsert", key_field), outcome, spool)
                for (object_name, key_field, rows), outcome in zip(loads, outcomes, strict=True)
                for spool in self._spools(object_name, key_field, rows, outcome, cleanup)
            ]
            self._load_lanes(lanes, cleanup)
        for outcome in outcomes:
            self._record(outcome.object_name, outcome)
        return outcomes

    def delete(
        self, object_name: str, key_field: str, keys: Iterable[str], query_all: QueryAll
    ) -> LoadOutcome:
        """Delete the records whose `key_field` is one of `keys`, and those of the object's
        open retryable deletion letters (Bulk API 2.0 delete by Id; `record_ids` finds the
        Ids through `query_all`, which should be under the failure policy).

        A key Salesforce holds no record of is accepted: nothing is left to delete.
        """
        outcome = LoadOutcome(object_name)
        wanted = list(dict.fromkeys(keys))
        riding = self._riding_deletions(object_name, set(wanted))
        outcome.retried_letters = len(riding)
        every = [*wanted, *riding]
        ids = record_ids(query_all, object_name, key_field, every) if every else {}
        absent = set(every) - set(ids.values())
        outcome.accepted_keys.update(absent)
        if ids:
            operation = _Operation("delete", key_field, ids)
            with (
                contextlib.ExitStack() as cleanup,
                spool_rows(({"Id": record_id} for record_id in sorted(ids)), ("Id",)) as spool,
            ):
                self._load_lanes([_Lane(object_name, operation, outcome, spool)], cleanup)
        outcome.accepted_keys -= outcome.rejected.keys()  # a key with a record left
        self._record(object_name, outcome, unsent=absent)
        return outcome

    def _riding_deletions(self, object_name: str, wanted: set[str]) -> list[str]:
        with self.sessions() as session:
            letters = deadletters.open_letters(
                session, retryable_only=True, object_name=object_name, operation=DELETE
            )
            return [letter.record_key for letter in letters if letter.record_key not in wanted]

    def _load_lanes(self, lanes: list[_Lane], cleanup: contextlib.ExitStack) -> None:
        """Send every lane's spool, then the rows answered RETRY_NOW (and rows refused for
        their owner, without OwnerId) again, sorted by key, after the policy's backoff, while
        `row_retry` allows; rows still failing stay letters. Each round is one
        `BulkClient.ingest_many` of every lane with rows to send."""
        for retry in range(1, self.row_retry.attempts):
            again = [(lane, rows) for lane, rows in self._submit_all(lanes) if rows]
            if not again:
                return
            self.sleep(self.row_retry.delay(retry))
            for lane, retry_now in again:
                _resend(lane, retry_now, cleanup)
            lanes = [lane for lane, _ in again]
        self._submit_all(lanes)

    def _submit_all(self, lanes: list[_Lane]) -> list[tuple[_Lane, list[dict[str, Any]]]]:
        """One ingest of every lane; each lane with the rows to send again now."""
        results = self.bulk.ingest_many([lane.request() for lane in lanes])
        pairs = zip(lanes, results, strict=True)
        return [(lane, self._account(lane, result)) for lane, result in pairs]

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

    def _account(self, lane: _Lane, result: IngestResult) -> list[dict[str, Any]]:
        """Count one ingest of a lane; every failed or unprocessed row becomes a rejection.
        Returns the rows the policy says to send again now."""
        object_name, operation, outcome, first = (
            lane.object_name, lane.operation, lane.outcome, lane.first
        )  # fmt: skip
        outcome.accepted_keys.update(map(operation.key, result.succeeded_keys))
        if operation.record_keys is None:
            outcome.written += result.succeeded
        else:
            outcome.deleted += result.succeeded
        if first:
            outcome.sent += result.sent
        else:
            outcome.resent += result.sent
        returned = [(row, row_error(row.get("sf__Error", ""))) for row in result.failed]
        returned += result.unprocessed_with_errors()
        retry_now: list[dict[str, Any]] = []
        for row, error in returned:
            sent = _payload(row)
            key = operation.key(str(row[operation.ingest_key]))
            payload = operation.letter_payload(sent)
            outcome.rejected[key] = _rejection(object_name, key, error, payload, outcome.sends(key))
            if error.failure is Failure.RETRY_NOW:
                retry_now.append(sent)
            elif operation.record_keys is None and (again := without_refused_owner(error, sent)):
                retry_now.append(again)  # the default owner (the integration user) owns it
                outcome.resent_without_owner += 1
        return retry_now

    def _record(
        self, object_name: str, outcome: LoadOutcome, unsent: set[str] = frozenset()
    ) -> None:
        """Close the letters of accepted keys and keep the rejections, `attempts` counting
        every send (keys in `unsent` were not sent: nothing was left to delete)."""
        now = self.clock()
        sends = {key: outcome.sends(key) for key in outcome.resends} | dict.fromkeys(unsent, 0)
        with self.sessions.begin() as session:
            deadletters.resolve(session, object_name, sorted(outcome.accepted_keys), now, sends)
            deadletters.record(
                session, outcome.rejected.values(), now, dag_id=self.dag_id, run_id=self.run_id
            )


def record_ids(
    query_all: QueryAll, object_name: str, key_field: str, keys: Iterable[str]
) -> dict[str, str]:
    """Id -> `key_field` of the `object_name` records whose key is one of `keys`: one SOQL
    per `KEYS_PER_QUERY` keys, every value quoted by `soql.quote`."""
    found: dict[str, str] = {}
    for chunk in chunked(sorted(set(keys)), KEYS_PER_QUERY):
        values = ",".join(quote(key) for key in chunk)
        soql = f"SELECT Id, {key_field} FROM {object_name} WHERE {key_field} IN ({values})"
        found.update({row["Id"]: row[key_field] for row in query_all(soql)})
    return found


def _resend(lane: _Lane, retry_now: list[dict[str, Any]], cleanup: contextlib.ExitStack) -> None:
    """Make `retry_now` (sorted by key) the lane's next spool; their rejections are open
    again and each counts one more send."""
    operation, outcome = lane.operation, lane.outcome
    retry_now.sort(key=lambda row: str(row.get(operation.ingest_key)))
    for row in retry_now:
        key = operation.key(str(row[operation.ingest_key]))
        outcome.rejected.pop(key, None)
        outcome.resends[key] += 1
    lane.pending = cleanup.enter_context(spool_rows(retry_now, (operation.ingest_key,)))
    lane.first = False


def _spool_for(
    row: Mapping[str, Any], spools: list[CsvSpool], key_field: str, cleanup: contextlib.ExitStack
) -> CsvSpool:
    """The first spool whose columns hold all of `row`'s, or a new one."""
    for spool in spools:
        if spool.fits(row):
            return spool
    spools.append(cleanup.enter_context(CsvSpool((key_field,))))
    return spools[-1]


def _rejection(
    object_name: str, key: str, error: SfError, payload: dict[str, Any], sends: int
) -> Rejection:
    return Rejection(object_name, key, error.code, error.message, error.fields_text, payload, sends)


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
