"""The Bulk CSV spool and its upload parts, the patience of a run's SOQL queries, and what
the loader counts: rows sent and resent, attempts of dead letters, deletions by key."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from talklog import deadletters
from talklog.deadletters import DELETE
from talklog.loading import KEYS_PER_QUERY, BulkLoader, patient_queries, record_ids
from talklog.salesforce.bulk import (
    UNCHANGED,
    CsvSpool,
    IngestResult,
    JobSummary,
    RequestLimitExceededError,
    csv_record,
    spool_rows,
    succeeded_keys,
)
from talklog.salesforce.failures import ROW_RETRY, Backoff
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade

URL = "https://127.0.0.1/services/data/v66.0/query"


def _records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_parts_know_their_rows_and_keys_even_with_newlines_inside_values():
    rows = [{"Key__c": f"k{i}", "Text__c": f"一行目\n二行目 {i}" * (i % 5)} for i in range(200)]
    with spool_rows(rows, ["Key__c"]) as spool:
        parts = list(spool.parts(max_bytes=1_000, key_field="Key__c"))
    assert len(parts) > 1 and all(len(part.data) <= 1_000 for part in parts)
    assert all(part.data.startswith(b"Key__c,Text__c\n") for part in parts)
    assert [part.rows for part in parts] == [len(_records(part.data)) - 1 for part in parts]
    assert [key for part in parts for key in part.keys] == [row["Key__c"] for row in rows]
    assert [record for part in parts for record in _records(part.data)[1:]] == [
        [row["Key__c"], row["Text__c"]] for row in rows
    ]


def test_spool_encodes_values_as_bulk_csv_and_refuses_unknown_columns():
    with CsvSpool(["TalkLogKey__c"]) as spool:
        assert list(spool.parts()) == [] and spool.keys("TalkLogKey__c") == []
        spool.add(
            {
                "TalkLogKey__c": "a",
                "Name": None,
                "Flag__c": True,
                "Owner": UNCHANGED,
                "At__c": dt.datetime(2024, 1, 9, 10, 0),
                "N__c": 3,
            }
        )
        spool.add({"TalkLogKey__c": "b", "Flag__c": False})
        with pytest.raises(ValueError, match="not in the header: \\['Other'\\]"):
            spool.add({"TalkLogKey__c": "c", "Other": 1})
        (part,) = spool.parts()
        assert part.data == (
            b"TalkLogKey__c,Name,Flag__c,Owner,At__c,N__c\n"
            b"a,#N/A,true,,2024-01-09T10:00:00+00:00,3\n"
            b"b,,false,,,\n"
        )
        assert part.rows == 2 and len(spool) == 2 and spool.keys("TalkLogKey__c") == ["a", "b"]
        with pytest.raises(ValueError, match="keeps no Name keys"):
            spool.keys("Name")
        with pytest.raises(ValueError, match="larger than the upload limit"):
            list(spool.parts(max_bytes=60))


def test_spool_copy_grows_apart():
    with CsvSpool(["Id"]) as spool:
        spool.add({"Id": "1"})
        with spool.copy() as twin:
            twin.add({"Id": "2"})
            assert [part.data for part in twin.parts(key_field="Id")] == [b"Id\n1\n2\n"]
            assert twin.keys("Id") == ["1", "2"]
        spool.add({"Id": "3"})
        assert [part.data for part in spool.parts()] == [b"Id\n1\n3\n"]


@settings(max_examples=200)
@given(st.lists(st.lists(st.text(), min_size=1, max_size=4).map(tuple), min_size=1, max_size=5))
def test_csv_records_read_back_as_written(records):
    width = len(records[0])
    records = [(*record, *[""] * width)[:width] for record in records]
    data = b"".join(csv_record(record) for record in records)
    assert [tuple(r) for r in _records(data)] == [tuple(r) for r in records]


def test_succeeded_keys_are_the_sent_keys_less_one_per_returned_row():
    sent = ["a", "b", "a", "c"]
    assert succeeded_keys(sent, "K") == sent
    assert succeeded_keys(sent, "K", [{"K": "a"}], [{"K": "c"}]) == ["b", "a"]


def _failing(*errors: SalesforceError):
    """A query function that raises `errors` in turn, then answers one record."""
    pending = list(errors)
    calls: list[str] = []

    def query_all(soql: str):
        calls.append(soql)
        if pending:
            raise pending.pop(0)
        yield {"Id": "001000000000001AAA"}

    return query_all, calls


def _error(kind: type[SalesforceError], status: int, code: str) -> SalesforceError:
    return kind(URL, status, "query", [{"errorCode": code, "message": f"{code} happened"}])


def test_5xx_answers_are_retried_with_a_backoff():
    query_all, calls = _failing(
        _error(SalesforceGeneralError, 503, "SERVER_UNAVAILABLE"),
        _error(SalesforceGeneralError, 500, "UNKNOWN_EXCEPTION"),
    )
    slept: list[float] = []
    patient = patient_queries(query_all, backoff=Backoff(4, 0.5), sleep=slept.append)
    assert list(patient("SELECT Id FROM Account")) == [{"Id": "001000000000001AAA"}]
    assert len(calls) == 3 and slept == [0.5, 1.0]


def test_a_lasting_outage_is_raised_after_the_retries():
    outage = [_error(SalesforceGeneralError, 503, "SERVER_UNAVAILABLE") for _ in range(4)]
    query_all, calls = _failing(*outage)
    with pytest.raises(SalesforceGeneralError):
        patient_queries(query_all, backoff=Backoff(4, 0.5), sleep=lambda _: None)(
            "SELECT Id FROM Lead"
        )
    assert len(calls) == 4


def test_spent_budget_becomes_request_limit_exceeded_at_once():
    query_all, calls = _failing(_error(SalesforceRefusedRequest, 403, "REQUEST_LIMIT_EXCEEDED"))
    with pytest.raises(RequestLimitExceededError, match="REQUEST_LIMIT_EXCEEDED happened"):
        patient_queries(query_all, sleep=lambda _: None)("SELECT Id FROM Lead")
    assert len(calls) == 1


def test_other_errors_pass_unchanged():
    query_all, _ = _failing(_error(SalesforceMalformedRequest, 400, "MALFORMED_QUERY"))
    with pytest.raises(SalesforceMalformedRequest):
        patient_queries(query_all, sleep=lambda _: None)("SELECT")


def test_record_ids_ask_one_query_per_chunk_with_every_key_quoted():
    keys = [f"k{n}|w|rec|1" for n in range(KEYS_PER_QUERY + 1)] + ["o'brien\\|1"]
    asked: list[str] = []

    def query_all(soql: str):
        asked.append(soql)
        yield {"Id": f"a0{len(asked)}", "TalkLogKey__c": "k1|w|rec|1"}

    ids = record_ids(query_all, "TalkLog__c", "TalkLogKey__c", [*keys, keys[0]])
    assert len(asked) == 2 and ids == {"a01": "k1|w|rec|1", "a02": "k1|w|rec|1"}
    assert asked[0].startswith("SELECT Id, TalkLogKey__c FROM TalkLog__c WHERE TalkLogKey__c IN (")
    assert "'o\\'brien\\\\|1'" in "".join(asked)


class LockingBulk:
    """Answers UNABLE_TO_LOCK_ROW for each key the number of times `locks` says, per
    operation; records every row sent (as `(operation, key or Id)`)."""

    def __init__(self, locks: dict[str, int]) -> None:
        self.locks, self.sent = dict(locks), Counter()

    def ingest_many(self, requests):
        return [
            self.ingest(r.object_name, r.operation, r.rows, r.external_id_field, key_field=r.key)
            for r in requests
        ]

    def ingest(self, object_name, operation, spool, external_id_field=None, *, key_field=None):
        key_field = key_field or external_id_field
        rows = [r for p in spool.parts() for r in csv.DictReader(io.StringIO(p.data.decode()))]
        result = IngestResult(
            key_field, [JobSummary("750", "JobComplete", len(rows), 0)], len(rows)
        )
        for row in rows:
            key = row[key_field]
            self.sent[operation, key] += 1
            if self.locks.get(key, 0) > 0:
                self.locks[key] -= 1
                error = "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access:--"
                result.failed.append({"sf__Id": "", "sf__Error": error, **row})
            else:
                result.succeeded_keys.append(key)
        return result


@pytest.mark.parametrize("locks", [{}, {"b": 1}, {"a": 2, "c": 3}, {"a": 9, "b": 4, "c": 1}])
def test_sent_counts_rows_resent_counts_retries_and_attempts_count_every_send(sqlite_url, locks):
    upgrade(sqlite_url)
    bulk = LockingBulk(locks)
    loader = BulkLoader(bulk, make_session_factory(sqlite_url), sleep=lambda _: None)
    outcome = loader.upsert("Task", "K__c", [{"K__c": key, "N__c": 1} for key in "abc"])
    sends = {key: n for (_, key), n in bulk.sent.items()}
    assert outcome.sent == 3 and outcome.resent == sum(sends.values()) - 3
    assert outcome.summary()["sent"] == 3 and outcome.summary()["resent"] == outcome.resent
    with loader.sessions() as session:
        letters = deadletters.open_letters(session, retryable_only=False)
    assert {x.record_key: x.attempts for x in letters} == {
        key: sends[key] for key, n in locks.items() if n >= ROW_RETRY.attempts
    }
    again = loader.upsert("Task", "K__c", [])  # the letters ride along, once more each
    assert again.sent == again.retried_letters == len(letters)


def test_deletions_find_ids_by_key_and_their_refusals_become_deletion_letters(sqlite_url):
    upgrade(sqlite_url)
    bulk = LockingBulk({"001b": 9})
    loader = BulkLoader(bulk, make_session_factory(sqlite_url), sleep=lambda _: None)
    records = {"001a": "a|1", "001b": "b|1"}

    def query_all(soql: str):
        return [{"Id": i, "K__c": k} for i, k in records.items() if f"'{k}'" in soql]

    outcome = loader.delete("Task", "K__c", ["a|1", "b|1", "gone|1"], query_all)
    assert outcome.deleted == 1 and outcome.sent == 2 and outcome.resent == 3
    assert outcome.accepted_keys == {"a|1", "gone|1"}  # gone: nothing was left to delete
    assert outcome.summary()["rejected_by_code"] == {"UNABLE_TO_LOCK_ROW": 1}
    with loader.sessions() as session:
        assert deadletters.open_letters(session, retryable_only=False) == []  # no upserts
        (letter,) = deadletters.open_letters(session, retryable_only=True, operation=DELETE)
    assert (letter.record_key, letter.attempts) == ("b|1", 4)
    assert letter.payload == {"_operation": "delete", "K__c": "b|1", "Id": "001b"}
    bulk.locks.clear()
    later = loader.delete("Task", "K__c", [], query_all)  # rides along
    assert later.retried_letters == 1 and later.deleted == 1 and not later.rejected
    merged = outcome.merged(later).summary()
    assert (merged["sent"], merged["resent"], merged["deleted"]) == (3, 3, 2)
