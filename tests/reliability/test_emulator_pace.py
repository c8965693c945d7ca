"""Issue 20: the emulator's Bulk ingest jobs take a real org's time, whichever endpoint looks.

Before, every job was done at its first job-info poll and the job list never moved a job, so
a client could not be measured against an org that takes 30-120 s over a job. Now a closed
job is queued (UploadComplete), then InProgress, then processed once its pace (queue plus
time per 200-record chunk and per MiB) has passed on the emulator's clock, scaled down by
`time_scale` for the tests; the job GET, the job list and the result downloads all move it.
The job list pages at 1,000 jobs with `nextRecordsUrl` and carries no record counts.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from talklog_dev.emulator.bulk import JOB_LIST_PAGE, BulkEngine, BulkPace
from talklog_dev.emulator.records import RecordStore
from talklog_dev.emulator.schema import build_schema

pytestmark = pytest.mark.reliability

SCALE = 20.0  # emulated seconds per wall second: the 30 s queue takes 1.5 s
FAST = 200.0
QUEUE_S = 30.0
ENDPOINTS = ("job", "list", "results")


class Bulk:
    """Raw Bulk API 2.0 calls on the emulator."""

    def __init__(self, emulator: Any) -> None:
        self.http = emulator.session()
        self.http.headers["Authorization"] = f"Bearer {emulator.token()}"
        self.base = f"{emulator.instance_url}/services/data/v66.0/jobs/ingest"

    def closed_job(self, rows: int, text: str = "x") -> tuple[str, int]:
        """A closed insert job of `rows` Leads: its id and the bytes uploaded."""
        body = {"object": "Lead", "operation": "insert", "lineEnding": "LF"}
        job_id = self.http.post(self.base, json=body, timeout=30).json()["id"]
        data = ("LastName,Company\n" + "".join(f"{text}{n},C\n" for n in range(rows))).encode()
        headers = {"Content-Type": "text/csv"}
        put = self.http.put(f"{self.base}/{job_id}/batches", data=data, headers=headers)
        assert put.status_code == 201, put.text
        closed = self.http.patch(f"{self.base}/{job_id}", json={"state": "UploadComplete"})
        assert closed.json()["state"] == "UploadComplete"
        return job_id, len(data)

    def info(self, job_id: str) -> dict[str, Any]:
        return self.http.get(f"{self.base}/{job_id}", timeout=30).json()

    def listed(self, job_id: str) -> dict[str, Any]:
        page = self.http.get(self.base, params={"jobType": "V2Ingest"}, timeout=30).json()
        return next(job for job in page["records"] if job["id"] == job_id)

    def state(self, job_id: str, endpoint: str) -> str:
        if endpoint == "job":
            return self.info(job_id)["state"]
        return self.listed(job_id)["state"]

    def succeeded(self, job_id: str) -> int:
        """Rows of the job's successfulResults (the call itself moves the job on)."""
        text = self.http.get(f"{self.base}/{job_id}/successfulResults", timeout=30).text
        return len(text.splitlines()) - 1


def _pace(emulator: Any, scale: float) -> Bulk:
    emulator.set_faults(bulk_queue_s=QUEUE_S, time_scale=scale)
    return Bulk(emulator)


def _wait_emulated(seconds: float, scale: float = SCALE) -> None:
    time.sleep(seconds / scale)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_closed_job_waits_its_pace_then_completes(sf_emulator, endpoint):
    bulk = _pace(sf_emulator, SCALE)
    job_id, _ = bulk.closed_job(rows=2_000)  # 30 s queued, then 10 chunks of 200: 10 s
    if endpoint == "results":
        assert bulk.succeeded(job_id) == 0
        _wait_emulated(QUEUE_S + 12)
        assert bulk.succeeded(job_id) == 2_000  # processed by the results call itself
        return
    assert bulk.state(job_id, endpoint) == "UploadComplete"
    _wait_emulated(QUEUE_S + 2)
    assert bulk.state(job_id, endpoint) == "InProgress"
    _wait_emulated(10)
    assert bulk.state(job_id, endpoint) == "JobComplete"
    info = bulk.info(job_id)
    assert info["numberRecordsProcessed"] == 2_000 and info["numberRecordsFailed"] == 0


@pytest.mark.parametrize(
    ("rows", "text"),
    [(400, "x"), (10, "x" * 200_000), (25_000, "x")],
    ids=["two chunks", "2 MB in one chunk", "three batches in parallel"],
)
def test_processing_time_grows_with_records_and_bytes(sf_emulator, rows, text):
    bulk = _pace(sf_emulator, FAST)
    (small, small_size), (large, size) = bulk.closed_job(10), bulk.closed_job(rows, text)
    deadline = time.monotonic() + 10
    while bulk.state(large, "list") != "JobComplete" and time.monotonic() < deadline:
        time.sleep(0.02)
    took = {job: bulk.info(job)["totalProcessingTime"] for job in (small, large)}
    model = BulkPace(QUEUE_S)
    assert took[small] == int((model.seconds(10, small_size) - QUEUE_S) * 1000)
    assert took[large] == int((model.seconds(rows, size) - QUEUE_S) * 1000) > took[small]


def test_the_job_list_has_no_counts_and_filters_by_job_type(sf_emulator):
    bulk = Bulk(sf_emulator)
    job_id, _ = bulk.closed_job(rows=3)
    listed = bulk.listed(job_id)
    assert listed["state"] == "JobComplete" and listed["jobType"] == "V2Ingest"
    assert not {"numberRecordsProcessed", "numberRecordsFailed", "errorMessage"} & set(listed)
    for params in ({"jobType": "Classic"}, {"isPkChunkingEnabled": "true"}):
        page = bulk.http.get(bulk.base, params=params, timeout=30).json()
        assert page["records"] == [] and page["done"]
    refused = bulk.http.get(bulk.base, params={"jobType": "Nope"}, timeout=30)
    assert refused.status_code == 400


@pytest.mark.parametrize("jobs", [JOB_LIST_PAGE, JOB_LIST_PAGE + 1, 2 * JOB_LIST_PAGE + 5])
def test_the_job_list_pages_at_1000_jobs(jobs):
    engine = BulkEngine(RecordStore(build_schema(), None))
    for _ in range(jobs):
        engine.create_ingest({"object": "Lead", "operation": "insert"}, "005", "66.0")
    seen, page, pages = [], engine.list_ingest("66.0"), 1
    seen += page["records"]
    while not page["done"]:
        locator = page["nextRecordsUrl"].split("queryLocator=")[1]
        assert page["nextRecordsUrl"].startswith("/services/data/v66.0/jobs/ingest?")
        page, pages = engine.list_ingest("66.0", locator=locator), pages + 1
        seen += page["records"]
    assert len({job["id"] for job in seen}) == jobs
    assert pages == -(-jobs // JOB_LIST_PAGE)


@pytest.mark.parametrize(
    ("rows", "size", "expected"),
    [
        (27, 150_000, 30 + 1 + 150_000 / 2**20 * 0.5),
        (10_000, 0, 30 + 50),
        (60_000, 0, 30 + 2 * 50),  # 6 batches, 5 at once: two waves
    ],
)
def test_the_pace_model(rows, size, expected):
    assert BulkPace(QUEUE_S).seconds(rows, size) == pytest.approx(expected)


def test_the_named_paces_reach_the_emulator(sf_emulator):
    sf_emulator.set_pace("120s", time_scale=50)
    faults = sf_emulator.faults()
    assert faults["bulk_queue_s"] == pytest.approx(60) and faults["time_scale"] == 50
    sf_emulator.reset()
    assert sf_emulator.faults()["bulk_queue_s"] is None
