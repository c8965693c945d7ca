"""Bulk API 2.0 on the emulator: simple-salesforce's bulk2 and the project's BulkClient."""

from __future__ import annotations

import csv
import io
import time

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from talklog.salesforce.bulk import error_code

JAPANESE = (
    'こんにちは、山田です。明日の打ち合わせ🍣は10時で大丈夫でしょうか？\n改行も,カンマも"引用"も'
)


def test_simple_salesforce_bulk2_upsert_with_japanese_and_emoji(sf):
    records = [
        {"TalkLogKey__c": f"room-1/{i}", "Name": f"ログ {i}", "Transcript__c": JAPANESE}
        for i in range(50)
    ]
    results = sf.bulk2.TalkLog__c.upsert(
        records=records, external_id_field="TalkLogKey__c", wait=0.05
    )
    assert results[0]["numberRecordsProcessed"] == 50 and results[0]["numberRecordsFailed"] == 0
    successful = list(
        csv.DictReader(
            io.StringIO(sf.bulk2.TalkLog__c.get_successful_records(results[0]["job_id"]))
        )
    )
    assert len(successful) == 50 and successful[0]["sf__Created"] == "true"
    assert successful[0]["Transcript__c"] == JAPANESE
    stored = sf.query("SELECT Transcript__c FROM TalkLog__c WHERE TalkLogKey__c = 'room-1/7'")
    assert stored["records"][0]["Transcript__c"] == JAPANESE
    again = sf.bulk2.TalkLog__c.upsert(
        records=records[:10], external_id_field="TalkLogKey__c", wait=0.05
    )
    successful = list(
        csv.DictReader(io.StringIO(sf.bulk2.TalkLog__c.get_successful_records(again[0]["job_id"])))
    )
    assert {row["sf__Created"] for row in successful} == {"false"}


def test_100k_upsert_in_several_jobs_accounts_for_every_row(sf_emulator, bulk):
    sf_emulator.set_faults(lock_failure_rate=0.001, lock_seed=7)
    rows = [
        {
            "TalkLogKey__c": f"key-{i}",
            "Name": f"トーク {i}",
            "RoomId__c": "x" * 65 if i % 997 == 0 else f"room-{i % 50}",  # 65 > 64: too long
            "MessageCount__c": i % 30,
            "WindowStart__c": "2024-01-09T00:00:00+09:00",
        }
        for i in range(100_000)
    ]
    bulk.max_upload_bytes = 1536 * 1024
    calls: list[tuple[str, str]] = []
    bulk.session.hooks["response"].append(
        lambda r, *_, **__: calls.append((r.request.method, r.url))
    )
    started = time.perf_counter()
    result = bulk.ingest("TalkLog__c", "upsert", rows, external_id_field="TalkLogKey__c")
    elapsed = time.perf_counter() - started
    assert len(result.jobs) >= 3
    assert result.sent == 100_000
    assert sum(j.records_processed for j in result.jobs) == 100_000
    codes = {error_code(row) for row in result.failed}
    assert codes == {"STRING_TOO_LONG", "UNABLE_TO_LOCK_ROW"}
    too_long = [r for r in result.failed if error_code(r) == "STRING_TOO_LONG"]
    assert len(too_long) == len(range(0, 100_000, 997))
    assert too_long[0]["sf__Error"].endswith(":RoomId__c --")
    assert result.succeeded == len(result.succeeded_keys) == 100_000 - len(result.failed)
    keys = set(result.succeeded_keys) | {r["TalkLogKey__c"] for r in result.failed}
    assert len(keys) == 100_000
    assert sf_emulator.stats()["records"]["TalkLog__c"] == result.succeeded
    downloads = [url.rsplit("/", 1)[1] for _, url in calls if url.endswith(("Results", "records"))]
    assert downloads == ["failedResults"] * len(result.jobs)  # never successfulResults
    closes = [n for n, (method, _) in enumerate(calls) if method == "PATCH"]
    first_poll = next(n for n, (method, _) in enumerate(calls) if method == "GET")
    assert len(closes) == len(result.jobs) and closes[-1] < first_poll  # all submitted first
    assert elapsed < 60, f"100k-row upsert took {elapsed:.1f}s"


def test_aborted_and_failed_jobs_return_unprocessed_rows(sf_emulator, bulk, sf):
    bad_header = [{"Name": "A", "NoSuchField__c": 1}, {"Name": "B", "NoSuchField__c": 2}]
    result = bulk.ingest("TalkLog__c", "insert", bad_header)
    assert result.jobs[0].state == "Failed"
    assert "NoSuchField__c" in (result.jobs[0].error_message or "")
    assert [r["Name"] for r in result.unprocessed] == ["A", "B"]
    handler = sf.bulk2.TalkLog__c._client
    job = handler.create_job("insert")
    handler.upload_job_data(job["id"], "Name\nX\nY\n")
    handler.abort_job(job["id"], False)
    unprocessed = sf.bulk2.TalkLog__c.get_unprocessed_records(job["id"])
    assert unprocessed.splitlines() == ["Name", "X", "Y"]


def test_second_upload_to_a_job_is_refused_as_salesforce_does(sf):
    handler = sf.bulk2.Lead._client
    job = handler.create_job("insert")
    handler.upload_job_data(job["id"], "LastName,Company\nA,B\n")
    with pytest.raises(SalesforceMalformedRequest) as exc:
        handler.upload_job_data(job["id"], "LastName,Company\nC,D\n")
    assert exc.value.content[0]["errorCode"] == "BULK_API_ERROR"


def test_bulk_query_pages_with_locators(sf_emulator, bulk, sf):
    rows = [{"LastName": f"山田{i}", "Company": "ACME 🍣"} for i in range(2_500)]
    assert bulk.ingest("Lead", "insert", rows).ok
    queried = list(bulk.query("SELECT Id, LastName, Company, Owner.Name FROM Lead", page_size=1000))
    assert len(queried) == 2_500
    assert queried[0]["Company"] == "ACME 🍣" and queried[0]["Owner.Name"] == "Integration"
    pages = list(sf.bulk2.Lead.query("SELECT LastName FROM Lead", max_records=1000, wait=0.05))
    assert len(pages) == 3
    assert sum(len(p.splitlines()) - 1 for p in pages) == 2_500


def test_slow_jobs_stay_in_progress(sf_emulator, sf):
    sf_emulator.set_faults(bulk_polls_in_progress=3)
    handler = sf.bulk2.Lead._client
    job = handler.create_job("insert")
    handler.upload_job_data(job["id"], "LastName,Company\nA,B\n")
    handler.close_job(job["id"])
    states = [handler.get_job(job["id"], False)["state"] for _ in range(4)]
    assert states == ["InProgress", "InProgress", "InProgress", "JobComplete"]


def test_update_and_delete_jobs(sf_emulator, bulk):
    inserted = bulk.ingest("Contact", "insert", [{"LastName": f"c{i}"} for i in range(10)])
    assert inserted.ok and inserted.succeeded == 10 and inserted.succeeded_keys == []
    ids = sorted(r["Id"] for r in bulk.query("SELECT Id FROM Contact"))
    rows = [{"Id": i, "FirstName": "太郎"} for i in ids]
    updated = bulk.ingest("Contact", "update", rows, key_field="Id")
    assert updated.ok and updated.succeeded_keys == ids
    assert {r["FirstName"] for r in bulk.query("SELECT FirstName FROM Contact")} == {"太郎"}
    gone = [{"Id": i} for i in [*ids[:5], "003Em0000000zzz"]]
    deleted = bulk.ingest("Contact", "delete", gone, key_field="Id")
    assert deleted.succeeded_keys == ids[:5] and len(deleted.failed) == 1
    assert sf_emulator.stats()["records"]["Contact"] == 5
