"""The Bulk CSV spool and its upload parts, and the patience of a run's SOQL queries."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from talklog.loading import patient_queries
from talklog.salesforce.bulk import (
    UNCHANGED,
    CsvSpool,
    RequestLimitExceededError,
    csv_record,
    spool_rows,
    succeeded_keys,
)
from talklog.salesforce.failures import Backoff

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
