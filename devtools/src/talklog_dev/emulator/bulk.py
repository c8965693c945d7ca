"""Bulk API 2.0: ingest jobs (CSV in, per-row results out) and query jobs with locator paging.

Ingest jobs can take a real org's time (`BulkPace`): a closed job waits in the queue, then is
processed at a rate that grows with its records and bytes, and its state moves with the clock
whichever endpoint looks at it (job info, the job list, results).
"""

from __future__ import annotations

import base64
import csv
import io
import math
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from talklog_dev.emulator.records import MultipleMatches, RecordError, RecordStore, SfError
from talklog_dev.emulator.schema import Field, SObject
from talklog_dev.emulator.soql import Evaluator, parse
from talklog_dev.emulator.values import format_datetime, to_csv_text, utcnow

if TYPE_CHECKING:
    from talklog_dev.emulator.faults import Faults

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
INTERNAL_BATCH = 10_000
CHUNK = 200
"""Records per transaction inside a batch (Bulk API: "each chunk of 200 records is processed
as a separate transaction" when DML runs through the Bulk API)."""
MIB = 1024 * 1024
JOB_LIST_PAGE = 1_000
"""Jobs per page of ``GET /jobs/ingest`` (the reference: "up to 1000 result rows per request")."""
LIST_FIELDS = (
    "id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
    "externalIdFieldName", "concurrencyMode", "contentType", "apiVersion", "jobType",
    "contentUrl", "lineEnding", "columnDelimiter",
)  # fmt: skip
"""The JobInfo of Get All Jobs: the reference lists no record counts or errorMessage there."""
JOB_TYPES = ("BigObjectIngest", "Classic", "V2Ingest")
NULL_MARKER = "#N/A"
DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
TERMINAL = ("JobComplete", "Failed", "Aborted")
# Python's csv module refuses fields over 131,072 characters by default; Salesforce reads any
# cell of an upload and fails the row when the value is longer than its field.
csv.field_size_limit(MAX_UPLOAD_BYTES)


@dataclass(frozen=True)
class BulkPace:
    """How long an org takes over an ingest job, in emulated seconds.

    Salesforce splits a job's data into a batch per 10,000 records, processes the batches in
    parallel and each batch in chunks of 200 records, one transaction each (Bulk API 2.0
    Developer Guide, "How Requests Are Processed" and "Limits"); a batch that takes over 5
    minutes fails and is retried. How fast a chunk goes depends on the org (triggers, flows,
    sharing, field sizes) and is not documented: the rates here are assumptions, one second
    per chunk and 2 MiB a second per batch, 5 batches at once, after `queue_s` in the queue.
    """

    queue_s: float
    seconds_per_chunk: float = 1.0
    seconds_per_mib: float = 0.5
    parallel_batches: int = 5

    def seconds(self, rows: int, size: int) -> float:
        """Queue plus processing of a job of `rows` records and `size` bytes."""
        batches = max(1, math.ceil(rows / INTERNAL_BATCH))
        waves = math.ceil(batches / max(1, self.parallel_batches))
        chunks = math.ceil(min(rows, INTERNAL_BATCH) / CHUNK)
        per_batch = chunks * self.seconds_per_chunk + size / batches / MIB * self.seconds_per_mib
        return self.queue_s + waves * per_batch

    @classmethod
    def of(cls, faults: Faults) -> BulkPace | None:
        """The pace the faults set (None: every job is done at its first look)."""
        if faults.bulk_queue_s is None:
            return None
        return cls(
            faults.bulk_queue_s,
            faults.bulk_seconds_per_chunk,
            faults.bulk_seconds_per_mib,
            faults.bulk_parallel_batches,
        )


PACES: dict[str, dict[str, Any]] = {
    "instant": {"bulk_queue_s": None},
    "30s": {"bulk_queue_s": 28.0},  # a 1,000-message window's job: ~29 s
    "120s": {"bulk_queue_s": 60.0},  # a 1M window's 100 MB job: ~125 s (a 1k one: ~61 s)
}
"""Named paces (``--bulk-pace``): the fault fields each sets, with the default rates."""


class BulkError(Exception):
    """A Bulk request Salesforce would refuse: HTTP status and REST error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = SfError(code, message)


@dataclass
class IngestJob:
    """One Bulk API 2.0 ingest job and, once processed, its per-row results."""

    id: str
    operation: str
    object: str
    created_by: str
    api_version: str
    external_id_field: str | None = None
    line_ending: str = "LF"
    column_delimiter: str = "COMMA"
    state: str = "Open"
    created_date: str = field(default_factory=lambda: format_datetime(utcnow()))
    modstamp: str = ""
    data: bytes | None = None
    polls_left: int = 0
    closed_at: float = 0.0
    """`time.monotonic()` when the upload was completed (paced jobs count from there)."""
    due_s: float = 0.0
    """Emulated seconds from closing until the job is processed (its pace)."""
    parsed: tuple[list[str], list[list[str]]] | BulkError | None = None
    """The upload read when the job was closed (or why it cannot be read)."""
    header: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    processing_ms: int = 0
    error_message: str | None = None
    seq: int = 0
    """Number of the job since the last reset: with the lock seed it fixes which rows lock."""

    def info(self) -> dict[str, Any]:
        """The job info JSON, field for field as Salesforce answers."""
        processed = len(self.successful) + len(self.failed)
        info: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created_date,
            "systemModstamp": self.modstamp or self.created_date,
            "state": self.state,
            "externalIdFieldName": self.external_id_field,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Ingest",
            "contentUrl": f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": processed,
            "numberRecordsFailed": len(self.failed),
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
            "apiActiveProcessingTime": self.processing_ms,
            "apexProcessingTime": 0,
        }
        if self.error_message:
            info["errorMessage"] = self.error_message
        if self.external_id_field is None:
            del info["externalIdFieldName"]
        return info

    def list_info(self) -> dict[str, Any]:
        """The job as a record of the job list: no counts, no error message."""
        info = self.info()
        return {name: info[name] for name in LIST_FIELDS if name in info}


@dataclass
class QueryJob:
    """One Bulk API 2.0 query job; its rows are fixed when it completes."""

    id: str
    operation: str
    query: str
    created_by: str
    api_version: str
    line_ending: str = "LF"
    column_delimiter: str = "COMMA"
    state: str = "UploadComplete"
    created_date: str = field(default_factory=lambda: format_datetime(utcnow()))
    polls_left: int = 0
    columns: tuple[str, ...] = ()
    rows: list[list[str]] = field(default_factory=list)
    processing_ms: int = 0

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "object": self.query.split()[self.query.lower().split().index("from") + 1],
            "createdById": self.created_by,
            "createdDate": self.created_date,
            "systemModstamp": self.created_date,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": len(self.rows),
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
        }


class BulkEngine:
    """Creates, advances and processes Bulk jobs against the record store."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store
        self.ingest_jobs: dict[str, IngestJob] = {}
        self.query_jobs: dict[str, QueryJob] = {}
        self.lock_failure_rate = 0.0
        self.lock_seed = 0
        self.polls_in_progress = 1
        self.pace: BulkPace | None = None
        self.time_scale = 1.0
        """Emulated seconds per wall-clock second for paced jobs (100: a 30 s job in 0.3 s)."""
        self.work_seconds = 0.0
        """Wall time spent reading and applying job data since the last reset."""
        self._ingest_seq = 0

    def configure(self, faults: Faults) -> None:
        """Take the pace and time scale from the faults."""
        self.pace = BulkPace.of(faults)
        self.time_scale = faults.time_scale

    # -- ingest --------------------------------------------------------------------------
    def create_ingest(self, body: dict[str, Any], user_id: str, api_version: str) -> IngestJob:
        operation = body.get("operation")
        if operation not in INGEST_OPERATIONS:
            raise BulkError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        obj = self.store.schema.get(str(body.get("object", "")))
        if obj is None:
            raise BulkError(400, "INVALIDJOB", f"Unable to find object: {body.get('object')}")
        ext = body.get("externalIdFieldName")
        if operation == "upsert":
            field_ = obj.field(ext or "")
            if field_ is None or not (field_.external_id or field_.name == "Id"):
                raise BulkError(
                    400,
                    "INVALIDJOB",
                    f"InvalidJob : Field name provided, {ext} is not an External "
                    f"ID or indexed field for {obj.name}",
                )
            ext = field_.name
        elif ext:
            raise BulkError(400, "INVALIDJOB", "externalIdFieldName is only valid for upsert")
        line_ending = body.get("lineEnding") or "LF"
        delimiter = body.get("columnDelimiter") or "COMMA"
        if line_ending not in LINE_ENDINGS or delimiter not in DELIMITERS:
            raise BulkError(400, "INVALIDJOB", "Invalid lineEnding or columnDelimiter")
        if (body.get("contentType") or "CSV") != "CSV":
            raise BulkError(400, "INVALIDJOB", "Only CSV contentType is supported")
        job = IngestJob(
            id=self.store.ids.new_id("750"),
            operation=operation,
            object=obj.name,
            created_by=user_id,
            api_version=api_version,
            external_id_field=ext,
            line_ending=line_ending,
            column_delimiter=delimiter,
            seq=self._ingest_seq,
        )
        self._ingest_seq += 1
        self.ingest_jobs[job.id] = job
        return job

    def ingest_job(self, job_id: str) -> IngestJob:
        job = self.ingest_jobs.get(job_id)
        if job is None:
            raise BulkError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def upload(self, job_id: str, data: bytes) -> None:
        """PUT batches: one upload per job, as Salesforce allows."""
        job = self.ingest_job(job_id)
        if job.state != "Open":
            raise BulkError(
                409, "INCORRECTSTATE", f"Job {job.id} is not in the Open state: {job.state}"
            )
        if job.data is not None:
            raise BulkError(
                400,
                "BULK_API_ERROR",
                f"Found multiple contents for job: <{job.id}>, please 'Close' / 'Abort' / 'Delete' "
                "the current Job then create a new Job and make sure the content is only uploaded "
                "once",
            )
        if len(data) > MAX_UPLOAD_BYTES:
            raise BulkError(400, "BULK_API_ERROR", "Exceeded max size limit of 100 MB per upload")
        job.data = data

    def set_state(self, job_id: str, state: str) -> IngestJob:
        """PATCH UploadComplete or Aborted."""
        job = self.ingest_job(job_id)
        if state == "UploadComplete":
            if job.state != "Open":
                raise BulkError(409, "INCORRECTSTATE", f"Job is {job.state}, not Open")
            job.state = "UploadComplete"
            job.polls_left = self.polls_in_progress
            self._close(job)
        elif state == "Aborted":
            if job.state in TERMINAL:
                raise BulkError(409, "INCORRECTSTATE", f"Job is already {job.state}")
            job.state = "Aborted"
            job.unprocessed = self._all_rows(job)
        else:
            raise BulkError(400, "INVALIDJOBSTATE", f"Invalid state: {state}")
        job.modstamp = format_datetime(utcnow())
        return job

    def poll(self, job_id: str) -> IngestJob:
        """GET job info: InProgress for the configured number of polls, then as paced."""
        job = self.ingest_job(job_id)
        self._advance(job, look=True)
        return job

    def results_job(self, job_id: str) -> IngestJob:
        """The job whose results are asked for, moved on with the clock first."""
        job = self.ingest_job(job_id)
        self._advance(job, look=False)
        return job

    def list_ingest(
        self,
        version: str,
        job_type: str | None = None,
        locator: str | None = None,
        pk_chunking: bool | None = None,
        concurrency_mode: str | None = None,
    ) -> dict[str, Any]:
        """``GET /jobs/ingest``: a page of jobs (each looked at, so moved on with the clock)
        and the ``nextRecordsUrl`` of the next page."""
        if job_type is not None and job_type not in JOB_TYPES:
            raise BulkError(400, "INVALIDJOB", f"Invalid jobType: {job_type}")
        jobs = list(self.ingest_jobs.values())
        if pk_chunking or job_type not in (None, "V2Ingest"):
            jobs = []  # PK chunking is Bulk API 1.0's; every job here is V2Ingest
        if concurrency_mode is not None and concurrency_mode.lower() != "parallel":
            jobs = []
        start = _decode_locator(locator) if locator else 0
        page = jobs[start : start + JOB_LIST_PAGE]
        for job in page:
            self._advance(job, look=True)
        end = start + len(page)
        done = end >= len(jobs)
        url = (
            None
            if done
            else f"/services/data/v{version}/jobs/ingest?queryLocator={_encode_locator(end)}"
        )
        return {"done": done, "records": [job.list_info() for job in page], "nextRecordsUrl": url}

    def delete_job(self, job_id: str) -> None:
        job = self.ingest_job(job_id)
        if job.state not in (*TERMINAL, "UploadComplete"):
            raise BulkError(409, "INCORRECTSTATE", "Only closed jobs can be deleted")
        del self.ingest_jobs[job_id]

    def results_csv(self, job: IngestJob, kind: str) -> str:
        """successfulResults, failedResults or unprocessedrecords as CSV text."""
        header = {
            "successfulResults": ["sf__Id", "sf__Created", *job.header],
            "failedResults": ["sf__Id", "sf__Error", *job.header],
            "unprocessedrecords": list(job.header),
        }[kind]
        rows = {
            "successfulResults": job.successful,
            "failedResults": job.failed,
            "unprocessedrecords": job.unprocessed,
        }[kind]
        return _write_csv(header, rows, job.column_delimiter, job.line_ending)

    def _all_rows(self, job: IngestJob) -> list[list[str]]:
        if job.data is None:
            return []
        try:
            header, rows = _read_csv(job)
        except BulkError:
            return []
        job.header = header
        return rows

    def _close(self, job: IngestJob) -> None:
        """Read the upload (Salesforce splits it into batches now) and fix the job's pace."""
        started = time.perf_counter()
        try:
            job.parsed = _read_csv(job) if job.data is not None else ([], [])
        except BulkError as exc:
            job.parsed = exc
        rows = len(job.parsed[1]) if isinstance(job.parsed, tuple) else 0
        job.due_s = self.pace.seconds(rows, len(job.data or b"")) if self.pace else 0.0
        job.closed_at = time.monotonic()
        self.work_seconds += time.perf_counter() - started

    def _advance(self, job: IngestJob, *, look: bool) -> None:
        """Move an open job on: InProgress while polls of the slow-jobs fault are left (a
        `look` spends one), then queued, in progress and processed as its pace says."""
        if job.state not in ("UploadComplete", "InProgress"):
            return
        if job.polls_left > 0:
            if look:
                job.polls_left -= 1
                job.state = "InProgress"
                job.modstamp = format_datetime(utcnow())
            return
        elapsed = (time.monotonic() - job.closed_at) * self.time_scale
        if self.pace is None or elapsed >= job.due_s:
            self._process(job)
        elif elapsed >= self.pace.queue_s and job.state != "InProgress":
            job.state = "InProgress"
        else:
            return
        job.modstamp = format_datetime(utcnow())

    def _process(self, job: IngestJob) -> None:
        started = time.perf_counter()
        try:
            parsed = job.parsed if job.parsed is not None else _read_csv(job)
            if isinstance(parsed, BulkError):
                raise parsed
            header, rows = parsed
            job.header = header
            # An empty upload (zero bytes) completes with nothing processed, as in Salesforce.
            plan = self._plan_columns(job, header) if header else []
        except BulkError as exc:
            job.state = "Failed"
            job.error_message = exc.error.message
            job.unprocessed = self._all_rows(job) if job.data else []
            self.work_seconds += time.perf_counter() - started
            return
        rng = random.Random(f"{self.lock_seed}:{job.seq}")
        for start in range(0, len(rows), INTERNAL_BATCH):
            self._run_batch(job, plan, rows[start : start + INTERNAL_BATCH], rng)
        self.store.flush()
        job.state = "JobComplete"
        job.parsed = None
        worked = time.perf_counter() - started
        self.work_seconds += worked
        paced = job.due_s - self.pace.queue_s if self.pace else 0.0
        job.processing_ms = int((paced or worked) * 1000)

    def _plan_columns(self, job: IngestJob, header: list[str]) -> list[tuple[Field, Field | None]]:
        """For each column: the field written and, for ``Rel__r.ExtId__c``, the parent's ext id."""
        obj = self.store.schema.objects[job.object]
        plan: list[tuple[Field, Field | None]] = []
        for name in header:
            plan.append(self._column(obj, name))
        names = {f.name for f, _ in plan}
        if job.operation in ("update", "delete", "hardDelete") and "Id" not in names:
            raise BulkError(400, "INVALIDBATCH", "InvalidBatch : Field name not found : Id")
        if job.operation in ("delete", "hardDelete") and names != {"Id"}:
            raise BulkError(
                400, "INVALIDBATCH", "InvalidBatch : Delete only supports the Id column"
            )
        if job.operation == "upsert" and job.external_id_field not in names:
            raise BulkError(
                400,
                "INVALIDBATCH",
                f"InvalidBatch : Field name not found : {job.external_id_field}",
            )
        return plan

    def _column(self, obj: SObject, name: str) -> tuple[Field, Field | None]:
        rel, dot, ext_name = name.partition(".")
        if not dot:
            found = obj.field(name)
            if found is None:
                raise BulkError(
                    400, "INVALIDBATCH", f"InvalidBatch : Field name not found : {name}"
                )
            return found, None
        ref = obj.relationship(rel)
        parent = self.store.schema.get(ref.reference_to[0]) if ref and ref.reference_to else None
        ext = parent.field(ext_name) if parent else None
        if ref is None or ext is None or not (ext.external_id or ext.name == "Id"):
            raise BulkError(400, "INVALIDBATCH", f"InvalidBatch : Field name not found : {name}")
        return ref, ext

    def _run_batch(
        self,
        job: IngestJob,
        plan: list[tuple[Field, Field | None]],
        rows: list[list[str]],
        rng: random.Random,
    ) -> None:
        duplicates = self._duplicate_keys(job, plan, rows)
        for row in rows:
            values = self._row_values(plan, row)
            record_id = "" if isinstance(values, SfError) else str(values.get("Id") or "")
            if self.lock_failure_rate and rng.random() < self.lock_failure_rate:
                locked = record_id or self.store.default_user_id
                error = SfError(
                    "UNABLE_TO_LOCK_ROW",
                    f"unable to obtain exclusive access to this record or 1 records: {locked}",
                )
                job.failed.append([record_id, error.bulk(), *row])
                continue
            try:
                if isinstance(values, SfError):
                    raise RecordError(values)
                record_id, created = self._apply(job, values, duplicates)
            except RecordError as exc:
                job.failed.append([record_id, exc.error.bulk(), *row])
                continue
            job.successful.append([record_id, "true" if created else "false", *row])

    def _row_values(self, plan: list[tuple[Field, Field | None]], row: list[str]) -> Any:
        values: dict[str, Any] = {}
        for (target, parent_ext), text in zip(plan, row, strict=False):
            if text == "":
                continue
            value: Any = None if text == NULL_MARKER else text
            if parent_ext is not None and value is not None:
                parent_obj = self.store.schema.get(target.reference_to[0])
                assert parent_obj is not None
                matches = self.store.find_external(parent_obj.name, parent_ext, value)
                if len(matches) != 1:
                    return SfError(
                        "INVALID_FIELD",
                        f"Foreign key external ID: {value} not found for field "
                        f"{parent_ext.name} in entity {parent_obj.name}",
                        (target.name,),
                    )
                value = matches[0]
            values[target.name] = value
        return values

    def _duplicate_keys(
        self, job: IngestJob, plan: list[tuple[Field, Field | None]], rows: list[list[str]]
    ) -> set[object]:
        if job.operation != "upsert":
            return set()
        index, ext = next(
            (i, f) for i, (f, p) in enumerate(plan) if f.name == job.external_id_field and not p
        )
        seen: dict[object, int] = {}
        for row in rows:
            key = ext.key(row[index]) if index < len(row) else ""
            seen[key] = seen.get(key, 0) + 1
        return {key for key, n in seen.items() if n > 1 and key}

    def _apply(
        self, job: IngestJob, values: dict[str, Any], dupes: set[object]
    ) -> tuple[str, bool]:
        store, user = self.store, job.created_by
        if job.operation == "insert":
            if "Id" in values:
                raise RecordError(
                    SfError("INVALID_FIELD_FOR_INSERT_UPDATE", "Id not allowed", ("Id",))
                )
            return store.insert(job.object, values, user), True
        if job.operation == "update":
            record_id = str(values.pop("Id", "") or "")
            store.update(job.object, record_id, values, user)
            return store.lookup(record_id)[1]["Id"], False  # type: ignore[index]
        if job.operation in ("delete", "hardDelete"):
            record_id = str(values.get("Id") or "")
            found = store.lookup(record_id)
            store.delete(job.object, record_id, hard=job.operation == "hardDelete")
            return found[1]["Id"] if found else record_id, False
        ext = str(job.external_id_field)
        key = values.get(ext)
        ext_field = self.store.schema.objects[job.object].field(ext)
        if isinstance(key, str) and ext_field is not None and ext_field.key(key) in dupes:
            raise RecordError(
                SfError("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {key}", (ext,))
            )
        try:
            return store.upsert(job.object, ext, key, values, user)
        except MultipleMatches as exc:
            raise RecordError(
                SfError(
                    "DUPLICATE_EXTERNAL_ID",
                    f"{ext}: more than one record found for external id field: {exc.ids}",
                    (ext,),
                )
            ) from None

    # -- query ---------------------------------------------------------------------------
    def create_query(self, body: dict[str, Any], user_id: str, api_version: str) -> QueryJob:
        operation = body.get("operation") or "query"
        if operation not in ("query", "queryAll"):
            raise BulkError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        text = str(body.get("query") or "")
        Evaluator(self.store.schema, self.store, api_version).validate(parse(text))
        job = QueryJob(
            id=self.store.ids.new_id("750"),
            operation=operation,
            query=text,
            created_by=user_id,
            api_version=api_version,
            line_ending=body.get("lineEnding") or "LF",
            column_delimiter=body.get("columnDelimiter") or "COMMA",
            polls_left=self.polls_in_progress,
        )
        self.query_jobs[job.id] = job
        return job

    def query_job(self, job_id: str) -> QueryJob:
        job = self.query_jobs.get(job_id)
        if job is None:
            raise BulkError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def poll_query(self, job_id: str) -> QueryJob:
        job = self.query_job(job_id)
        if job.state in ("UploadComplete", "InProgress"):
            if job.polls_left > 0:
                job.polls_left -= 1
                job.state = "InProgress"
            else:
                self._run_query(job)
        return job

    def abort_query(self, job_id: str) -> QueryJob:
        job = self.query_job(job_id)
        if job.state in TERMINAL:
            raise BulkError(409, "INCORRECTSTATE", f"Job is already {job.state}")
        job.state = "Aborted"
        return job

    def _run_query(self, job: QueryJob) -> None:
        started = time.perf_counter()
        evaluator = Evaluator(self.store.schema, self.store, job.api_version)
        result = evaluator.run(parse(job.query))
        job.columns = result.columns
        job.rows = [[to_csv_text(_flat(r, c)) for c in result.columns] for r in result.records]
        job.state = "JobComplete"
        job.processing_ms = int((time.perf_counter() - started) * 1000)

    def query_page(
        self, job: QueryJob, locator: str | None, max_records: int | None
    ) -> tuple[str, str, int]:
        """(csv text, next locator or "null", number of records) for one results page."""
        if job.state != "JobComplete":
            raise BulkError(400, "INVALIDJOBSTATE", f"Job is {job.state}; results not available")
        start = _decode_locator(locator) if locator else 0
        size = max_records or 50_000
        page = job.rows[start : start + size]
        end = start + len(page)
        next_locator = _encode_locator(end) if end < len(job.rows) else "null"
        text = _write_csv(list(job.columns), page, job.column_delimiter, job.line_ending, True)
        return text, next_locator, len(page)

    def reset(self) -> None:
        self._ingest_seq = 0
        self.work_seconds = 0.0
        self.ingest_jobs.clear()
        self.query_jobs.clear()


def _flat(record: dict[str, Any], column: str) -> Any:
    value: Any = record
    for part in column.split("."):
        if not isinstance(value, dict):
            return None
        value = next((v for k, v in value.items() if k.lower() == part.lower()), None)
    return value


def _encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(locator: str) -> int:
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.b64decode(padded).decode())
    except (ValueError, UnicodeDecodeError):
        raise BulkError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None


def _read_csv(job: IngestJob) -> tuple[list[str], list[list[str]]]:
    """Decode the uploaded CSV (UTF-8, BOM allowed) into a header and rows."""
    assert job.data is not None
    try:
        text = job.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BulkError(
            400, "INVALIDBATCH", f"InvalidBatch : Invalid UTF-8 at byte {exc.start}"
        ) from None
    if not text.strip():
        return [], []
    first_line = text.split("\n", 1)[0]
    if "\n" in text and first_line.endswith("\r") != (job.line_ending == "CRLF"):
        raise BulkError(
            400,
            "INVALIDBATCH",
            "InvalidBatch : LineEnding is invalid on user data. Current LineEnding setting is "
            f"{job.line_ending}",
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.column_delimiter])
    try:
        header = next(reader)
        rows = [row for row in reader if row]
    except StopIteration:
        return [], []
    except csv.Error as exc:
        raise BulkError(400, "INVALIDBATCH", f"InvalidBatch : Failed to parse CSV: {exc}") from None
    width = len(header)
    for number, row in enumerate(rows, start=2):
        if len(row) != width:
            raise BulkError(
                400,
                "INVALIDBATCH",
                f"InvalidBatch : Record {number} has {len(row)} columns, the header has {width}",
            )
    return header, rows


def _write_csv(
    header: list[str],
    rows: list[list[str]],
    delimiter: str,
    line_ending: str,
    quote_all: bool = False,
) -> str:
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=DELIMITERS[delimiter],
        lineterminator=LINE_ENDINGS[line_ending],
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
