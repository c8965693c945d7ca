"""Emulator answers that must match a real org's, driven through plain HTTP (requests)."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest

from talklog_dev.emulator.process import API_VERSION

LONG_TEXT_MAX = 131_072


def _read_csv(text: str) -> list[dict[str, str]]:
    """Result rows; failedResults may echo a cell longer than csv's default field limit."""
    limit = csv.field_size_limit(10 * LONG_TEXT_MAX)
    try:
        return list(csv.DictReader(io.StringIO(text)))
    finally:
        csv.field_size_limit(limit)


@pytest.fixture
def api(sf_emulator):
    """(session with the bearer token, base URL of /services/data/vXX.X)."""
    session = sf_emulator.session()
    session.headers["Authorization"] = f"Bearer {sf_emulator.token()}"
    return session, f"{sf_emulator.instance_url}/services/data/v{API_VERSION}"


def _ingest(api, body: dict[str, Any], data: bytes) -> tuple[str, dict[str, Any]]:
    """Create a job, upload ``data``, close it and poll until it ends: (job id, job info)."""
    session, base = api
    job = session.post(f"{base}/jobs/ingest", json=body, timeout=10)
    assert job.status_code == 200, job.text
    job_id = job.json()["id"]
    upload = session.put(
        f"{base}/jobs/ingest/{job_id}/batches",
        data=data,
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert upload.status_code == 201, upload.text
    closed = session.patch(
        f"{base}/jobs/ingest/{job_id}", json={"state": "UploadComplete"}, timeout=10
    )
    assert closed.status_code == 200, closed.text
    for _ in range(50):
        info = session.get(f"{base}/jobs/ingest/{job_id}", timeout=30)
        assert info.status_code == 200, info.text
        if info.json()["state"] in ("JobComplete", "Failed", "Aborted"):
            return job_id, info.json()
        time.sleep(0.01)
    raise AssertionError("job did not end")


def _results(api, job_id: str, kind: str) -> list[dict[str, str]]:
    session, base = api
    response = session.get(f"{base}/jobs/ingest/{job_id}/{kind}", timeout=30)
    assert response.status_code == 200, response.text
    return _read_csv(response.text)


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"Name,TalkLogKey__c\n"])
def test_empty_upload_completes_with_nothing_processed(api, data):
    body = {"object": "TalkLog__c", "operation": "upsert", "externalIdFieldName": "TalkLogKey__c"}
    job_id, info = _ingest(api, body, data)
    assert info["state"] == "JobComplete", info
    assert info["numberRecordsProcessed"] == 0 and info["numberRecordsFailed"] == 0
    assert _results(api, job_id, "failedResults") == []


def test_cell_over_long_text_max_fails_the_row_and_the_job_completes(api, sf_emulator):
    too_long = "あ" * (LONG_TEXT_MAX + 1)
    rows = [["room/1", "ok", "short"], ["room/2", "too long", too_long]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([["TalkLogKey__c", "Name", "Transcript__c"], *rows])
    body = {"object": "TalkLog__c", "operation": "upsert", "externalIdFieldName": "TalkLogKey__c"}
    job_id, info = _ingest(api, body, buffer.getvalue().encode("utf-8"))
    assert info["state"] == "JobComplete", info
    assert info["numberRecordsProcessed"] == 2 and info["numberRecordsFailed"] == 1
    failed = _results(api, job_id, "failedResults")
    assert [row["TalkLogKey__c"] for row in failed] == ["room/2"]
    assert failed[0]["sf__Error"].startswith("STRING_TOO_LONG:")
    assert failed[0]["sf__Error"].endswith(":Transcript__c --")
    assert [r["TalkLogKey__c"] for r in sf_emulator.records("TalkLog__c")] == ["room/1"]
    # The job stays readable: polls keep answering.
    session, base = api
    assert session.get(f"{base}/jobs/ingest/{job_id}", timeout=10).status_code == 200


def test_value_over_metadata_length_fails_the_row(api):
    body = {"object": "Lead", "operation": "insert"}
    data = f"LastName,Company\nok,Acme\n{'x' * 81},Acme\n".encode()
    job_id, info = _ingest(api, body, data)
    assert info["state"] == "JobComplete"
    failed = _results(api, job_id, "failedResults")
    assert len(failed) == 1 and failed[0]["sf__Error"].startswith("STRING_TOO_LONG:")
    assert "max length=80" in failed[0]["sf__Error"]


def test_unknown_route_and_method_answer_salesforce_errors(api):
    session, base = api
    missing = session.get(f"{base}/no/such/resource", timeout=10)
    assert missing.status_code == 404
    assert missing.json() == [
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    ]
    outside = session.get(f"{base.rsplit('/services', 1)[0]}/nothing-here", timeout=10)
    assert outside.status_code == 404 and outside.json()[0]["errorCode"] == "NOT_FOUND"
    wrong_method = session.put(f"{base}/limits", json={}, timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"
    assert "detail" not in wrong_method.text


def test_result_urls_with_a_trailing_slash_answer_without_redirect(api):
    body = {"object": "Lead", "operation": "insert"}
    job_id, _ = _ingest(api, body, b"LastName,Company\nA,B\n")
    session, base = api
    for kind in ("successfulResults", "failedResults", "unprocessedrecords"):
        response = session.get(
            f"{base}/jobs/ingest/{job_id}/{kind}/", allow_redirects=False, timeout=10
        )
        assert response.status_code == 200, (kind, response.status_code)
    info = session.get(f"{base}/jobs/ingest/{job_id}/", allow_redirects=False, timeout=10)
    assert info.status_code == 200 and info.json()["id"] == job_id


def test_bulk_upsert_on_id_creates_rows_with_a_blank_id(api, sf_emulator):
    existing = sf_emulator.create_record("Lead", LastName="Old", Company="Acme")
    body = {"object": "Lead", "operation": "upsert", "externalIdFieldName": "Id"}
    data = f"Id,LastName,Company\n{existing},Renamed,Acme\n,New,Acme\n".encode()
    job_id, info = _ingest(api, body, data)
    assert info["state"] == "JobComplete" and info["numberRecordsFailed"] == 0, info
    successful = _results(api, job_id, "successfulResults")
    assert [(r["LastName"], r["sf__Created"]) for r in successful] == [
        ("Renamed", "false"),
        ("New", "true"),
    ]
    assert successful[0]["sf__Id"] == existing and successful[1]["sf__Id"].startswith("00Q")
    names = sorted(r["LastName"] for r in sf_emulator.records("Lead"))
    assert names == ["New", "Renamed"]


def test_collection_retrieve_by_post(api, sf_emulator):
    first = sf_emulator.create_record("Lead", LastName="A", Company="X")
    second = sf_emulator.create_record("Lead", LastName="B", Company="Y")
    session, base = api
    response = session.post(
        f"{base}/composite/sobjects/Lead",
        json={"ids": [first, second, "00QEm0000009999"], "fields": ["Id", "LastName"]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    records = response.json()
    assert [r["LastName"] if r else None for r in records] == ["A", "B", None]
    assert records[0]["attributes"]["type"] == "Lead" and set(records[0]) == {
        "attributes",
        "Id",
        "LastName",
    }
    bad = session.post(
        f"{base}/composite/sobjects/Lead",
        json={"ids": [first], "fields": ["NoSuchField__c"]},
        timeout=10,
    )
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"


def test_collection_upsert_failed_rows_carry_created_false(api):
    session, base = api
    response = session.patch(
        f"{base}/composite/sobjects/TalkLog__c/TalkLogKey__c",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "TalkLog__c"}, "TalkLogKey__c": "k/1", "Name": "ok"},
                {
                    "attributes": {"type": "TalkLog__c"},
                    "TalkLogKey__c": "k/2",
                    "NoSuchField__c": 1,
                },
            ],
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    ok, failed = response.json()
    assert ok["success"] is True and ok["created"] is True
    assert failed["success"] is False and failed["created"] is False
    assert failed["id"] is None and failed["errors"][0]["statusCode"] == "INVALID_FIELD"


def test_collection_upsert_rolled_back_rows_carry_created_false(api):
    session, base = api
    response = session.patch(
        f"{base}/composite/sobjects/TalkLog__c/TalkLogKey__c",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "TalkLog__c"}, "TalkLogKey__c": "k/3", "Name": "ok"},
                {"attributes": {"type": "TalkLog__c"}, "TalkLogKey__c": "k/4", "Nope__c": 1},
            ],
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    results = response.json()
    assert [(r["success"], r["created"]) for r in results] == [(False, False), (False, False)]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
