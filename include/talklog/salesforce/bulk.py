"""A Bulk API 2.0 client that keeps per-record results: one job per upload part, UTF-8 throughout.

simple-salesforce's bulk2 decodes results as latin-1, holds every chunk in memory and hides which
rows failed; this client drives the endpoints with an authenticated ``requests.Session`` instead.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
NULL = "#N/A"
UNCHANGED = ""
"""An empty cell: Salesforce keeps the field as it is (its default on insert), unlike NULL."""
TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")
RETRY_STATUSES = (500, 502, 503, 504)


class BulkApiError(Exception):
    """Salesforce refused a Bulk request (HTTP status, errorCode, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class SessionExpiredError(BulkApiError):
    """401 INVALID_SESSION_ID and no way (or no luck) refreshing the session."""


class RequestLimitExceededError(BulkApiError):
    """403 REQUEST_LIMIT_EXCEEDED: the org's daily API budget is spent; stop and alert."""


@dataclass(frozen=True)
class JobSummary:
    """One ingest job as Salesforce last reported it."""

    id: str
    state: str
    records_processed: int
    records_failed: int
    error_message: str | None = None


@dataclass
class IngestResult:
    """Per-record outcome of an ingest: every input row is in exactly one of the three lists."""

    jobs: list[JobSummary] = field(default_factory=list)
    successful: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    unprocessed: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unprocessed

    @property
    def total(self) -> int:
        return len(self.successful) + len(self.failed) + len(self.unprocessed)


def error_code(failed_row: Mapping[str, str]) -> str:
    """The errorCode of a failed row's ``sf__Error`` (``CODE:message:fields --``)."""
    return failed_row.get("sf__Error", "").split(":", 1)[0]


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


def csv_parts(
    rows: Iterable[Mapping[str, Any]],
    columns: list[str] | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> Iterator[bytes]:
    """Encode rows as UTF-8 CSV documents (header + rows) of at most ``max_bytes`` each.

    Keys missing from a row are sent as empty cells, which Salesforce leaves unchanged.
    """
    for data, _ in counted_csv_parts(rows, columns, max_bytes):
        yield data


def counted_csv_parts(
    rows: Iterable[Mapping[str, Any]],
    columns: list[str] | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> Iterator[tuple[bytes, int]]:
    """`csv_parts`, each document with the number of rows in it."""
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return
    header = columns or list(first.keys())
    head = _encode_row(header)
    part, size = [head], len(head)
    for row in _chain(first, iterator):
        unknown = set(row) - set(header)
        if unknown:
            raise ValueError(f"row has columns not in the header: {sorted(unknown)}")
        line = _encode_row([csv_value(row[c]) if c in row else "" for c in header])
        if size + len(line) > max_bytes and len(part) > 1:
            yield b"".join(part), len(part) - 1
            part, size = [head], len(head)
        if len(head) + len(line) > max_bytes:
            raise ValueError("a single row is larger than the upload limit")
        part.append(line)
        size += len(line)
    if len(part) > 1:
        yield b"".join(part), len(part) - 1


def csv_row_count(data: bytes) -> int:
    """Records in a CSV document with a header line (quoted newlines stay inside a record)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    return max(0, sum(1 for row in reader if row) - 1)


def _chain(first: Mapping[str, Any], rest: Iterator[Mapping[str, Any]]) -> Iterator[Mapping]:
    yield first
    yield from rest


def _encode_row(values: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


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
    ) -> None:
        self.session = session
        self.base = f"{instance_url.rstrip('/')}/services/data/v{api_version}/jobs"
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout
        self.max_upload_bytes = max_upload_bytes
        self.retries = retries

    # -- ingest --------------------------------------------------------------------------
    def ingest(
        self,
        object_name: str,
        operation: str,
        rows_or_csv_chunks: Iterable[Mapping[str, Any]] | Iterable[bytes | str],
        external_id_field: str | None = None,
        columns: list[str] | None = None,
        keep_successful: Sequence[str] | None = None,
    ) -> IngestResult:
        """Load rows (dicts) or ready CSV documents; one job per upload part of at most 100 MB.

        Successful result rows echo every column sent; with `keep_successful` only those
        columns of them are kept (failed and unprocessed rows always keep the full payload).
        Results are parsed as they stream in, never held as one document.
        """
        result = IngestResult()
        for part, rows in self._parts(rows_or_csv_chunks, columns):
            self._ingest_part(
                object_name, operation, part, rows, external_id_field, result, keep_successful
            )
        return result

    def _parts(
        self, items: Iterable[Any], columns: list[str] | None
    ) -> Iterator[tuple[bytes, int]]:
        iterator = iter(items)
        first = next(iterator, None)
        if first is None:
            return
        if isinstance(first, bytes | str):
            for chunk in _chain(first, iterator):
                data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
                if len(data) > self.max_upload_bytes:
                    raise ValueError("a CSV chunk is larger than the 100 MB upload limit")
                yield data, csv_row_count(data)
            return
        yield from counted_csv_parts(_chain(first, iterator), columns, self.max_upload_bytes)

    def _ingest_part(
        self,
        object_name: str,
        operation: str,
        data: bytes,
        rows: int,
        ext: str | None,
        result: IngestResult,
        keep_successful: Sequence[str] | None = None,
    ) -> None:
        """One job: create, upload, close, wait, then fetch only the results that hold rows."""
        job_id = self._open_job(object_name, operation, ext)
        try:
            self._call("PUT", f"/ingest/{job_id}/batches", data=data, content_type="text/csv")
            self._call("PATCH", f"/ingest/{job_id}", json={"state": "UploadComplete"})
        except BulkApiError:
            self._abort_quietly(f"/ingest/{job_id}")
            raise
        job = self._job_summary(job_id, self._wait(f"/ingest/{job_id}"))
        result.jobs.append(job)
        if job.records_processed > job.records_failed:
            result.successful += self._results(job_id, "successfulResults", keep_successful)
        if job.records_failed:
            result.failed += self._results(job_id, "failedResults")
        if job.records_processed < rows:
            result.unprocessed += self._results(job_id, "unprocessedrecords")
        log.info(
            "Bulk job %s %s %s: %s; %d rows, %d ok, %d failed, %d unprocessed",
            job_id,
            operation,
            object_name,
            job.state,
            rows,
            job.records_processed - job.records_failed,
            job.records_failed,
            max(0, rows - job.records_processed),
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

    def _results(
        self, job_id: str, kind: str, keep: Sequence[str] | None = None
    ) -> list[dict[str, str]]:
        """A result CSV, parsed as it streams in; rows cut to the `keep` columns if given."""
        response = self._call("GET", f"/ingest/{job_id}/{kind}", accept="text/csv", stream=True)
        with response:
            response.raw.decode_content = True
            response.raw.auto_close = False  # the CSV reader reads on past the last byte
            text = io.TextIOWrapper(response.raw, encoding="utf-8", newline="")
            reader = csv.DictReader(text)
            if keep is None:
                return list(reader)
            return [{name: row[name] for name in keep if name in row} for row in reader]

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
        if info["state"] != "JobComplete":
            raise BulkApiError(400, info["state"], info.get("errorMessage") or "query job failed")
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
    def _wait(self, path: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        delay = self.poll_interval  # a short first delay: a job polled at once is never done
        while True:
            time.sleep(delay)
            info = self._call("GET", path).json()
            if info["state"] in TERMINAL_STATES:
                return info
            if time.monotonic() > deadline:
                raise BulkApiError(
                    408, "TIMEOUT", f"job still {info['state']} after {self.timeout}s"
                )
            delay = min(delay * 1.5, self.max_poll_interval)

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
        refreshed = False
        attempt = 0
        while True:
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
            if response.status_code < 300:
                return response
            code, message = _error_of(response)
            if response.status_code == 401 and self.refresh_token and not refreshed:
                self.access_token = self.refresh_token()
                refreshed = True
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                attempt += 1
                time.sleep(min(self.poll_interval * 2**attempt, self.max_poll_interval))
                continue
            raise _exception(response.status_code, code, message)


def _error_of(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "UNKNOWN", response.text[:200]
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, dict):
        return str(first.get("errorCode", "UNKNOWN")), str(first.get("message", ""))
    return "UNKNOWN", str(body)[:200]


def _exception(status: int, code: str, message: str) -> BulkApiError:
    if status == 401:
        return SessionExpiredError(status, code, message)
    if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
        return RequestLimitExceededError(status, code, message)
    return BulkApiError(status, code, message)
