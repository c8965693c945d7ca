"""Record store rules and Bulk CSV handling, in process."""

from __future__ import annotations

import pytest

from talklog.salesforce.bulk import csv_value, spool_rows
from talklog_dev.emulator.bulk import BulkEngine, BulkError
from talklog_dev.emulator.records import MultipleMatches, RecordError, RecordStore
from talklog_dev.emulator.schema import build_schema


@pytest.fixture(scope="module")
def schema():
    return build_schema()


@pytest.fixture
def store(schema) -> RecordStore:
    return RecordStore(schema)


def _code(exc: pytest.ExceptionInfo[RecordError]) -> str:
    return exc.value.error.code


def test_upsert_created_updated_and_multiple_matches(store):
    assert store.upsert("Task", "LineWorksKey__c", "k", {"Subject": "s"}, None)[1] is True
    assert store.upsert("Task", "LineWorksKey__c", "k", {"Subject": "t"}, None)[1] is False
    # LineWorksKey__c is unique and case-sensitive: another case is another record.
    assert store.upsert("Task", "LineWorksKey__c", "K", {"Subject": "u"}, None)[1] is True
    for _ in range(2):
        store.insert("Task", {"Subject": "dup"}, None)
    from talklog_dev.emulator.schema import Field

    field = Field("Subject", "string", "Subject", 255, external_id=True)
    store.schema.objects["Task"].add(field)
    try:
        with pytest.raises(MultipleMatches):
            store.upsert("Task", "Subject", "dup", {}, None)
    finally:
        store.schema.objects["Task"].add(Field("Subject", "combobox", "Subject", 255))


def test_rollback_restores_everything(store):
    kept = store.insert("Account", {"Name": "kept"}, None)
    store.begin()
    store.insert("Account", {"Name": "new"}, None)
    store.update("Account", kept, {"Name": "changed"}, None)
    store.delete("Account", kept)
    store.rollback()
    assert [r["Name"] for r in store.scan("Account")] == ["kept"]


def test_person_account_gets_a_person_contact(store):
    account = store.insert("Account", {"FirstName": "花子", "LastName": "佐藤"}, None)
    record = store.get("Account", account)
    assert record["IsPersonAccount"] and record["Name"] == "花子 佐藤"
    contact = store.get("Contact", record["PersonContactId"])
    assert contact["AccountId"] == account and contact["IsPersonAccount"]


def test_sqlite_state_survives_a_restart(schema, tmp_path):
    path = str(tmp_path / "org.db")
    first = RecordStore(schema, path)
    record_id = first.insert("Lead", {"LastName": "永続", "Company": "C"}, None)
    first.close()
    second = RecordStore(schema, path)
    assert second.get("Lead", record_id)["LastName"] == "永続"
    assert second.insert("Lead", {"LastName": "n", "Company": "c"}, None) > record_id


def _job(engine: BulkEngine, data: bytes, **body) -> object:
    job = engine.create_ingest({"object": "Lead", "operation": "insert", **body}, "005", "66.0")
    engine.upload(job.id, data)
    engine.polls_in_progress = 0
    engine.set_state(job.id, "UploadComplete")
    return engine.poll(job.id)


def test_bulk_csv_utf8_bom_crlf_quotes_and_null_marker(store):
    engine = BulkEngine(store)
    engine.polls_in_progress = 0
    data = '\ufeffLastName,Company,Email\r\n"山田, 太郎","改行\r\nあり",#N/A\r\n'.encode()
    job = _job(engine, data, lineEnding="CRLF")
    assert job.state == "JobComplete" and len(job.successful) == 1
    lead = store.scan("Lead")[0]
    assert lead["LastName"] == "山田, 太郎" and lead["Company"] == "改行\r\nあり"
    text = engine.results_csv(job, "successfulResults")
    assert text.startswith("sf__Id,sf__Created,LastName,Company,Email\r\n")


def test_bulk_line_ending_mismatch_fails_the_job(store):
    engine = BulkEngine(store)
    job = _job(engine, b"LastName,Company\r\nA,B\r\n")  # job says LF
    assert job.state == "Failed" and "LineEnding" in job.error_message


def test_bulk_upsert_duplicate_keys_in_one_batch(store):
    engine = BulkEngine(store)
    job = engine.create_ingest(
        {"object": "LineWorks__c", "operation": "upsert", "externalIdFieldName": "LinkKey__c"},
        "005",
        "66.0",
    )
    engine.upload(job.id, b"LinkKey__c,Nickname__c\nk,a\nk,b\nK,c\nz,d\n")
    engine.polls_in_progress = 0
    engine.set_state(job.id, "UploadComplete")
    engine.poll(job.id)
    assert [r[1].split(":")[0] for r in job.failed] == ["DUPLICATE_EXTERNAL_ID"] * 2
    # LinkKey__c is case-sensitive: "K" is not a duplicate of "k".
    assert [r[2] for r in job.successful] == ["K", "z"]


def test_bulk_rejects_bad_jobs(store):
    engine = BulkEngine(store)
    with pytest.raises(BulkError):
        engine.create_ingest({"object": "Nope", "operation": "insert"}, "005", "66.0")
    with pytest.raises(BulkError):
        engine.create_ingest(
            {"object": "Lead", "operation": "upsert", "externalIdFieldName": "Company"},
            "005",
            "66.0",
        )


def test_client_csv_parts_split_by_size_and_encode_values():
    rows = [{"Name": f"名前{i}", "Flag__c": i % 2 == 0, "Gone__c": None} for i in range(100)]
    with spool_rows(rows) as spool:
        parts = [part.data for part in spool.parts(max_bytes=400)]
    assert len(parts) > 1
    assert all(p.startswith(b"Name,Flag__c,Gone__c\n") for p in parts)
    assert sum(p.count(b"\n") - 1 for p in parts) == 100
    assert csv_value(None) == "#N/A" and csv_value(True) == "true"
