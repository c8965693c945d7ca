"""A Bulk API 2.0 client that accounts for every row: one job per upload part, UTF-8 throughout.

simple-salesforce's bulk2 decodes results as latin-1, holds every chunk in memory and hides which
rows failed; this client drives the endpoints with an authenticated ``requests.Session`` instead.
Rows are encoded once into a `CsvSpool`; upload parts are cut from its bytes. A job's failed and
unprocessed rows are downloaded only when Salesforce reports some, and the rows that succeeded are
the keys sent less those: ``successfulResults`` (an echo of every column) is never read.

`BulkClient.ingest_many` submits the jobs of several loads (every part of every object) before
it looks at any, then watches them together: one ``GET /jobs/ingest`` list call per round,
the rounds timed from the processing time Salesforce is expected to take (`ExpectedPace`), and
one job-info call per job at the end for its counts.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import datetime as dt
import io
import logging
import math
import shutil
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import IO, Any

import requests
import tenacity

from talklog.salesforce.failures import (
    UNPROCESSED,
    Backoff,
    BulkApiError,
    SfError,
    call_with_policy,
    error_of_response,
    exception_for,
    job_error,
    row_error,
)

# re-exported: the operator, the pipeline and the tests import them from here
from talklog.salesforce.failures import RequestLimitExceededError as RequestLimitExceededError
from talklog.salesforce.failures import SessionExpiredError as SessionExpiredError

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
MIB = 1024 * 1024
NULL = "#N/A"
UNCHANGED = ""
"""An empty cell: Salesforce keeps the field as it is (its default on insert), unlike NULL."""
TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")
LOOK_GROWTH = 1.5
"""A job still open after its expected time is looked at again when 1.5 times as long has
passed since it was closed."""
MAX_LOOK_INTERVAL = 300.0


@dataclass(frozen=True)
class ExpectedPace:
    """How long Salesforce is expected to take over an ingest job, from its rows and bytes.

    Salesforce splits a job into a batch per 10,000 records, processes batches in parallel and
    each batch in chunks of 200 records ("How Requests Are Processed", Bulk API 2.0 Developer
    Guide); how fast depends on the org and is not documented. The defaults assume 20 s in the
    queue, 1 s per chunk, 2 MiB a second per batch and 5 batches at once. A pace too slow for
    the org costs waiting, one too fast a few more looks (each 1.5 times later than the last).
    """

    queue_s: float = 20.0
    seconds_per_chunk: float = 1.0
    seconds_per_mib: float = 0.5
    parallel_batches: int = 5

    def seconds(self, rows: int, size: int) -> float:
        batches = max(1, math.ceil(rows / 10_000))
        waves = math.ceil(batches / max(1, self.parallel_batches))
        chunks = math.ceil(min(rows, 10_000) / 200)
        per_batch = chunks * self.seconds_per_chunk + size / batches / MIB * self.seconds_per_mib
        return self.queue_s + waves * per_batch


NO_EXPECTATION = ExpectedPace(0.0, 0.0, 0.0)
"""Looks 1.5 times later each time from `poll_interval` on (a client of an instant test org)."""


@dataclass(frozen=True)
class JobSummary:
    """One ingest job as Salesforce last reported it."""

    id: str
    state: str
    records_processed: int
    records_failed: int
    error_message: str | None = None

    @property
    def error(self) -> SfError | None:
        """Why the job ended Failed or Aborted (None when it completed)."""
        return job_error(self.state, self.error_message)


@dataclass
class IngestResult:
    """What an ingest did with the rows it sent.

    Failed and unprocessed rows come back from Salesforce with their full payload; every other
    row sent succeeded (its ``successfulResults`` row is never downloaded: Salesforce echoes
    every column there). ``succeeded_keys`` holds the key column's value of each succeeded row
    in the order sent (empty when the ingest had no key field). ``unprocessed_errors`` says,
    row by row, why `unprocessed` rows were left (their job's error, or ``UNPROCESSED``).
    """

    key_field: str | None = None
    jobs: list[JobSummary] = field(default_factory=list)
    sent: int = 0
    succeeded_keys: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    unprocessed: list[dict[str, str]] = field(default_factory=list)
    unprocessed_errors: list[SfError] = field(default_factory=list)

    def unprocessed_with_errors(self) -> Iterator[tuple[dict[str, str], SfError]]:
        """Each unprocessed row with the reason its job left it."""
        for number, row in enumerate(self.unprocessed):
            reasons = self.unprocessed_errors
            yield row, reasons[number] if number < len(reasons) else UNPROCESSED

    @property
    def succeeded(self) -> int:
        return self.sent - len(self.failed) - len(self.unprocessed)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unprocessed


def error_code(failed_row: Mapping[str, str]) -> str:
    """The errorCode of a failed row's ``sf__Error`` (``CODE:message:fields --``)."""
    return row_error(failed_row.get("sf__Error", "")).code


def csv_value(value: Any) -> str:
    """A Python value as Bulk CSV text: None nulls the field (#N/A), booleans lower-case."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class CsvPart:
    """One upload: a UTF-8 CSV document (header + records), its row count and the rows' keys."""

    data: bytes | bytearray
    rows: int
    keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SubmittedJob:
    """An ingest job whose data is uploaded and closed: what collecting its results needs."""

    job_id: str
    rows: int
    keys: list[str]
    size: int = 0  # bytes uploaded


@dataclass(frozen=True)
class IngestRequest:
    """One load of `BulkClient.ingest_many`: rows (a spool, or dicts) of one object."""

    object_name: str
    operation: str
    rows: CsvSpool | Iterable[Mapping[str, Any]]
    external_id_field: str | None = None
    key_field: str | None = None  # default: external_id_field

    @property
    def key(self) -> str | None:
        return self.key_field or self.external_id_field


@dataclass
class _Watched:
    """A submitted job being waited for, with its load's result."""

    job: SubmittedJob
    request: IngestRequest
    result: IngestResult
    closed_at: float  # the client's clock when the job was closed
    expected_s: float
    looked_s: float | None = None  # seconds after closing of the last look
    state: str = "UploadComplete"
    info: dict[str, Any] | None = None  # the job's own info (with counts), once read

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES


def csv_cell(text: str) -> str:
    """Text as a CSV cell: quoted, with quotes doubled, when it holds a comma, a quote or a
    line break (what `csv.writer` does, and a bare CR too); str methods, not a per-character
    walk, so long transcripts cost little."""
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


def csv_record(cells: Iterable[str]) -> bytes:
    """One CSV record (LF-terminated, UTF-8) of text cells."""
    line = ",".join(map(csv_cell, cells))
    return (line + "\n" if line else '""\n').encode("utf-8")


class CsvSpool:
    """Rows encoded once as Bulk CSV records (UTF-8) in a temporary file: memory stays flat.

    The header is the first row's keys, in order; values go through `csv_value` (None nulls
    the field as ``#N/A``, booleans lower-case) and a column missing from a row is an empty cell
    (Salesforce leaves the field unchanged); a column that is not in the header is a
    ValueError. The end offset of every record and the values of the ``key_fields`` columns
    stay in memory, so `parts` cuts upload documents from the file's bytes without parsing or
    encoding anything again (records may hold quoted newlines).
    """

    def __init__(self, key_fields: Iterable[str] = ()) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile("w+b")  # ruff: ignore[open-file-with-context-handler]
        self._key_fields = tuple(key_fields)
        self.header: tuple[str, ...] | None = None
        self._columns: frozenset[str] = frozenset()
        self._head = b""
        self._size = 0
        self._ends = array("q")  # file offset just past each record
        self._keys: dict[str, list[str]] = {}
        self._key_columns: list[tuple[int, list[str]]] = []

    def __len__(self) -> int:
        return len(self._ends)

    @property
    def count(self) -> int:
        return len(self._ends)

    def __enter__(self) -> CsvSpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fits(self, row: Mapping[str, Any]) -> bool:
        """Whether `row` can be added: no header yet, or every column of it in the header."""
        return self.header is None or self._columns.issuperset(row)

    def add(self, row: Mapping[str, Any]) -> None:
        if self.header is None:
            self._set_header(tuple(row))
        elif not self.fits(row):
            unknown = sorted(set(row) - self._columns)
            raise ValueError(f"row has columns not in the header: {unknown}")
        values = [
            value if type(value) is str else csv_value(value)
            for value in map(row.get, self.header, repeat(UNCHANGED))
        ]
        record = csv_record(values)
        self._file.write(record)
        self._size += len(record)
        self._ends.append(self._size)
        for index, keys in self._key_columns:
            keys.append(values[index])

    def keys(self, key_field: str) -> list[str]:
        """The `key_field` value of every row, in order (as sent: CSV text)."""
        if self.header is None:
            return []
        if key_field not in self._keys:
            raise ValueError(
                f"this spool keeps no {key_field} keys (it keeps {sorted(self._keys)});"
                f" create it with {key_field} as a key field"
            )
        return self._keys[key_field]

    def parts(
        self, max_bytes: int = MAX_UPLOAD_BYTES, key_field: str | None = None
    ) -> Iterator[CsvPart]:
        """Upload documents of at most `max_bytes` each, the header repeated in every one."""
        keys = self.keys(key_field) if key_field else None
        budget = max_bytes - len(self._head)
        self._file.flush()
        start, first = 0, 0
        while first < len(self._ends):
            last = bisect.bisect_right(self._ends, start + budget, lo=first)
            if last == first:
                raise ValueError("a single row is larger than the upload limit")
            end = self._ends[last - 1]
            data = self._document(start, end)
            yield CsvPart(data, last - first, keys[first:last] if keys is not None else [])
            start, first = end, last

    def _document(self, start: int, end: int) -> bytearray:
        """The header and the records in [start, end) of the file, read straight into one
        buffer (a part is up to 100 MB: no second copy to put the header in front)."""
        document = bytearray(len(self._head) + end - start)
        document[: len(self._head)] = self._head
        self._file.seek(start)
        read = self._file.readinto(memoryview(document)[len(self._head) :])
        self._file.seek(0, io.SEEK_END)
        if read != end - start:
            raise OSError(f"the CSV spool file ended early ({read} of {end - start} bytes)")
        return document

    def copy(self) -> CsvSpool:
        """A spool of the same rows that can grow apart from this one."""
        twin = CsvSpool(self._key_fields)
        if self.header is not None:
            twin._set_header(self.header)
            for name, keys in self._keys.items():
                twin._keys[name].extend(keys)
            self._file.flush()
            self._file.seek(0)
            shutil.copyfileobj(self._file, twin._file)
            self._file.seek(0, io.SEEK_END)
            twin._size, twin._ends = self._size, array("q", self._ends)
        return twin

    def close(self) -> None:
        self._file.close()

    def _set_header(self, header: tuple[str, ...]) -> None:
        self.header, self._columns = header, frozenset(header)
        self._head = csv_record(header)
        self._keys = {name: [] for name in self._key_fields if name in self._columns}
        self._key_columns = [(header.index(name), keys) for name, keys in self._keys.items()]


def spool_rows(rows: Iterable[Mapping[str, Any]], key_fields: Iterable[str] = ()) -> CsvSpool:
    """`rows` in a new `CsvSpool` (closed again if a row is refused): the caller closes it."""
    spool = CsvSpool(key_fields)
    try:
        for row in rows:
            spool.add(row)
    except BaseException:
        spool.close()
        raise
    return spool


def _jobs_path(next_records_url: str | None) -> str | None:
    """The path under ``…/jobs`` of a job list's ``nextRecordsUrl``."""
    if not next_records_url or "/jobs/" not in next_records_url:
        return None
    return "/" + next_records_url.split("/jobs/", 1)[1]


def succeeded_keys(
    sent: Sequence[str], key_field: str, *returned: Iterable[Mapping[str, str]]
) -> list[str]:
    """The keys `sent` less one occurrence of the key of every failed or unprocessed row."""
    dropped = Counter(row.get(key_field) for rows in returned for row in rows)
    if not dropped:
        return list(sent)
    kept = []
    for key in sent:
        if dropped[key] > 0:
            dropped[key] -= 1
        else:
            kept.append(key)
    return kept


class BulkClient:
    """Bulk API 2.0 ingest and query over an authenticated ``requests.Session``."""

    def __init__(
        self,
        session: requests.Session,
        instance_url: str,
        access_token: str,
        api_version: str = "66.0",
        refresh_token: Callable[[], str] | None = None,
        poll_interval: float = 0.5,
        max_poll_interval: float = 10.0,
        timeout: float = 3600.0,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        expected_pace: ExpectedPace = ExpectedPace(),
    ) -> None:
        """`retries` 5xx/connection failures per call are retried after 2, 4, 8... poll
        intervals (at most `max_poll_interval`), as the failure policy says. Ingest jobs are
        first looked at after `poll_interval`, then when `expected_pace` says they should be
        done, then 1.5 times later each time; `sleep` and `clock` (seconds) time it."""
        self.session = session
        self.base = f"{instance_url.rstrip('/')}/services/data/v{api_version}/jobs"
        self.clock = clock
        self.expected_pace = expected_pace
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout
        self.max_upload_bytes = max_upload_bytes
        self.backoff = Backoff(retries + 1, 2 * poll_interval, max_poll_interval)
        self.sleep = sleep

    # -- ingest --------------------------------------------------------------------------
    def ingest(
        self,
        object_name: str,
        operation: str,
        rows: CsvSpool | Iterable[Mapping[str, Any]],
        external_id_field: str | None = None,
        *,
        key_field: str | None = None,
    ) -> IngestResult:
        """Load rows (a spool, or dicts spooled here first); one job per upload part.

        `key_field` (default: `external_id_field`) names the column whose values identify the
        rows in `IngestResult.succeeded_keys`; a spool must keep that column's keys. Per job
        only the results that hold rows are downloaded: ``failedResults`` when Salesforce
        counted failed rows, ``unprocessedrecords`` when it processed fewer rows than sent.
        """
        request = IngestRequest(object_name, operation, rows, external_id_field, key_field)
        return self.ingest_many([request])[0]

    def ingest_many(self, requests: Sequence[IngestRequest]) -> list[IngestResult]:
        """Several loads at once, one result each, in order (see `ingest`).

        Every part of every load is created, uploaded and closed before any job is looked at,
        so Salesforce processes them side by side; then the open jobs are watched together
        (`_wait_all`) and each job's outcome is read once.
        """
        with contextlib.ExitStack() as cleanup:
            watched: list[_Watched] = []
            results = []
            for request in requests:
                results.append(IngestResult(request.key))
                spool = self._spool_of(request, cleanup)
                for part in spool.parts(self.max_upload_bytes, request.key):
                    job = self._submit_part(
                        request.object_name, request.operation, part, request.external_id_field
                    )
                    expected = self.expected_pace.seconds(part.rows, len(part.data))
                    watched.append(_Watched(job, request, results[-1], self.clock(), expected))
            self._wait_all(watched)
            for item in watched:
                self._collect_part(item)
        return results

    @staticmethod
    def _spool_of(request: IngestRequest, cleanup: contextlib.ExitStack) -> CsvSpool:
        if isinstance(request.rows, CsvSpool):
            return request.rows
        keys = (request.key,) if request.key else ()
        return cleanup.enter_context(spool_rows(request.rows, keys))

    def _submit_part(
        self, object_name: str, operation: str, part: CsvPart, ext: str | None
    ) -> SubmittedJob:
        """One job: create, upload, close (Salesforce starts processing it)."""
        job_id = self._open_job(object_name, operation, ext)
        try:
            self._call("PUT", f"/ingest/{job_id}/batches", data=part.data, content_type="text/csv")
            self._call("PATCH", f"/ingest/{job_id}", json={"state": "UploadComplete"})
        except BulkApiError:
            self._abort_quietly(f"/ingest/{job_id}")
            raise
        return SubmittedJob(job_id, part.rows, part.keys, len(part.data))

    # -- watching open jobs ---------------------------------------------------------------
    def _wait_all(self, watched: Sequence[_Watched]) -> None:
        """Look at the open jobs, all of them in one round, until every one has ended.

        Their outcomes are read only once all have ended, so a round comes when the last
        open job is due (`_due`): a job done earlier waits at no cost in calls. A job still
        open `timeout` seconds after it was closed ends the wait with a 408 TIMEOUT."""
        waiting = [item for item in watched if not item.done]
        while waiting:
            deadline = min(item.closed_at + self.timeout for item in waiting)
            pause = min(max(map(self._due, waiting)), deadline) - self.clock()
            if pause > 0:
                self.sleep(pause)
            self._look(waiting)
            now = self.clock()
            for item in waiting:
                item.looked_s = now - item.closed_at
            waiting = [item for item in waiting if not item.done]
            late = next((item for item in waiting if item.looked_s >= self.timeout), None)
            if late is not None:
                raise BulkApiError(
                    408, "TIMEOUT", f"job still {late.state} after {self.timeout:g}s"
                )

    def _due(self, item: _Watched) -> float:
        """When to look at an open job next: `poll_interval` after closing, then at its
        expected time, then 1.5 times as long after closing as at the last look (at most
        `MAX_LOOK_INTERVAL` later, and never past its timeout)."""
        looked = item.looked_s
        if looked is None:
            after = self.poll_interval
        elif looked < item.expected_s:
            after = item.expected_s
        else:
            after = looked * LOOK_GROWTH
        if looked is not None:
            after = min(max(after, looked + self.poll_interval), looked + MAX_LOOK_INTERVAL)
        return item.closed_at + min(after, self.timeout)

    def _look(self, waiting: Sequence[_Watched]) -> None:
        """One round: a single open job is asked for its own info (which holds its counts);
        several are found in the job list, which pages only while paging costs fewer calls
        than asking each job left."""
        if len(waiting) == 1:
            self._look_at_job(waiting[0])
            return
        by_id = {item.job.job_id: item for item in waiting}
        seen: set[str] = set()
        path: str | None = "/ingest?jobType=V2Ingest"
        pages = 0
        while path and len(seen) < len(by_id) and pages < max(1, len(by_id) - len(seen)):
            page = self._call("GET", path).json()
            pages += 1
            for record in page.get("records") or []:
                item = by_id.get(record.get("id"))
                if item is not None:
                    item.state = record.get("state", item.state)
                    seen.add(item.job.job_id)
            path = None if page.get("done", True) else _jobs_path(page.get("nextRecordsUrl"))
        for job_id in by_id.keys() - seen:
            self._look_at_job(by_id[job_id])

    def _look_at_job(self, item: _Watched) -> None:
        item.info = self._call("GET", f"/ingest/{item.job.job_id}").json()
        item.state = item.info["state"]

    def _collect_part(self, item: _Watched) -> None:
        """A finished job's outcome (its info, unless a look read it already), then only
        the results that hold rows."""
        submitted, result = item.job, item.result
        object_name, operation = item.request.object_name, item.request.operation
        job_id, rows = submitted.job_id, submitted.rows
        info = item.info or self._call("GET", f"/ingest/{job_id}").json()
        job = self._job_summary(job_id, info)
        failed = self._results(job_id, "failedResults") if job.records_failed else []
        unprocessed = (
            self._results(job_id, "unprocessedrecords") if job.records_processed < rows else []
        )
        returned = len(failed) + len(unprocessed)
        if job.records_processed - job.records_failed != rows - returned:
            log.warning(
                "Bulk job %s: %d rows sent, Salesforce counts %d processed and %d failed, but"
                " returned %d failed and %d unprocessed rows",
                job_id,
                rows,
                job.records_processed,
                job.records_failed,
                len(failed),
                len(unprocessed),
            )
        result.jobs.append(job)
        result.sent += rows
        result.failed += failed
        result.unprocessed += unprocessed
        result.unprocessed_errors += [job.error or UNPROCESSED] * len(unprocessed)
        if result.key_field:
            result.succeeded_keys += succeeded_keys(
                submitted.keys, result.key_field, failed, unprocessed
            )
        log.info(
            "Bulk job %s %s %s: %s; %d rows, %d ok, %d failed, %d unprocessed",
            job_id,
            operation,
            object_name,
            job.state,
            rows,
            rows - returned,
            len(failed),
            len(unprocessed),
        )

    def _open_job(self, object_name: str, operation: str, ext: str | None) -> str:
        body: dict[str, Any] = {
            "object": object_name,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if ext:
            body["externalIdFieldName"] = ext
        return self._call("POST", "/ingest", json=body).json()["id"]

    @staticmethod
    def _job_summary(job_id: str, info: Mapping[str, Any]) -> JobSummary:
        return JobSummary(
            job_id,
            info["state"],
            int(info.get("numberRecordsProcessed") or 0),
            int(info.get("numberRecordsFailed") or 0),
            info.get("errorMessage"),
        )

    def _results(self, job_id: str, kind: str) -> list[dict[str, str]]:
        """A result CSV (every column sent, after the sf__ ones), parsed as it streams in."""
        response = self._call("GET", f"/ingest/{job_id}/{kind}", accept="text/csv", stream=True)
        with response:
            response.raw.decode_content = True
            response.raw.auto_close = False  # the CSV reader reads on past the last byte
            text = io.TextIOWrapper(response.raw, encoding="utf-8", newline="")
            return list(csv.DictReader(text))

    def _abort_quietly(self, path: str) -> None:
        try:
            self._call("PATCH", path, json={"state": "Aborted"})
        except (BulkApiError, requests.RequestException):
            log.warning("could not abort Bulk job %s", path.rsplit("/", 1)[-1])

    # -- query ---------------------------------------------------------------------------
    def query(self, soql: str, page_size: int = 50_000) -> Iterator[dict[str, str | None]]:
        """Run a Bulk 2.0 query job and yield its rows (empty cells as None), page by page."""
        body = {"operation": "query", "query": soql, "contentType": "CSV", "lineEnding": "LF"}
        job_id = self._call("POST", "/query", json=body).json()["id"]
        info = self._wait(f"/query/{job_id}")
        error = job_error(info["state"], info.get("errorMessage"))
        if error is not None:
            raise exception_for(error)
        locator: str | None = None
        while True:
            params: dict[str, Any] = {"maxRecords": page_size}
            if locator:
                params["locator"] = locator
            response = self._call(
                "GET", f"/query/{job_id}/results", params=params, accept="text/csv"
            )
            text = response.content.decode("utf-8")
            for row in csv.DictReader(io.StringIO(text, newline="")):
                yield {k: (v if v != "" else None) for k, v in row.items()}
            locator = response.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return

    # -- plumbing ------------------------------------------------------------------------
    def _wait(self, path: str, first_delay: float | None = None) -> dict[str, Any]:
        """Poll a query job until it ends, the pause growing 1.5 times per poll up to
        `max_poll_interval`; the first poll comes after `first_delay` (default: one poll
        interval, since a job polled at once is never done). Polling, not a failure retry:
        each poll is one `_call`, which applies the failure policy."""
        self.sleep(self.poll_interval if first_delay is None else first_delay)
        polling = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda info: info["state"] not in TERMINAL_STATES),
            wait=tenacity.wait_exponential(
                multiplier=self.poll_interval * 1.5, exp_base=1.5, max=self.max_poll_interval
            ),
            stop=tenacity.stop_after_delay(self.timeout),
            sleep=self.sleep,
            retry_error_callback=self._still_running,
        )
        return polling(lambda: self._call("GET", path).json())

    def _still_running(self, state: tenacity.RetryCallState) -> dict[str, Any]:
        info = state.outcome.result() if state.outcome else {"state": "unknown"}
        raise BulkApiError(408, "TIMEOUT", f"job still {info['state']} after {self.timeout}s")

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        stream: bool = False,
    ) -> requests.Response:
        """One request under the failure policy (a 401 renews the session once)."""

        def request() -> requests.Response:
            headers = {
                "Authorization": f"Bearer {self.access_token}",
                "Content-Type": content_type,
                "Accept": accept,
            }
            response = self.session.request(
                method,
                self.base + path,
                headers=headers,
                json=json,
                data=data,
                params=params,
                timeout=300,
                stream=stream,
            )
            if response.status_code >= 300:
                raise exception_for(error_of_response(response))
            return response

        refresh = self._refresh if self.refresh_token else None
        return call_with_policy(request, backoff=self.backoff, sleep=self.sleep, refresh=refresh)

    def _refresh(self) -> None:
        assert self.refresh_token is not None
        self.access_token = self.refresh_token()
