"""Row counts of Bulk upload parts, and the patience of a run's SOQL queries."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from talklog.loading import patient_queries
from talklog.salesforce.bulk import (
    RequestLimitExceededError,
    counted_csv_parts,
    csv_parts,
    csv_row_count,
)

URL = "https://127.0.0.1/services/data/v66.0/query"


def test_counted_parts_know_their_rows_even_with_newlines_inside_values():
    rows = [{"Key__c": f"k{i}", "Text__c": f"一行目\n二行目 {i}" * (i % 5)} for i in range(200)]
    counted = list(counted_csv_parts(rows, max_bytes=1_000))
    assert len(counted) > 1 and [data for data, _ in counted] == list(csv_parts(rows, None, 1_000))
    assert [n for _, n in counted] == [csv_row_count(data) for data, _ in counted]
    assert sum(n for _, n in counted) == 200
    assert csv_row_count(b"Name\n") == 0 and csv_row_count(b'Name\n"a\nb"\nc\n') == 2


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
    patient = patient_queries(query_all, backoff_s=0.5, sleep=slept.append)
    assert list(patient("SELECT Id FROM Account")) == [{"Id": "001000000000001AAA"}]
    assert len(calls) == 3 and slept == [0.5, 1.0]


def test_a_lasting_outage_is_raised_after_the_retries():
    outage = [_error(SalesforceGeneralError, 503, "SERVER_UNAVAILABLE") for _ in range(4)]
    query_all, calls = _failing(*outage)
    with pytest.raises(SalesforceGeneralError):
        patient_queries(query_all, retries=3, sleep=lambda _: None)("SELECT Id FROM Lead")
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
