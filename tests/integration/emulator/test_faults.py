"""Every injectable fault, seen by simple-salesforce as Salesforce would present it."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)

from talklog.salesforce.bulk import BulkClient, error_code


@pytest.fixture
def sf(sf_emulator):
    return sf_emulator.salesforce()


def test_http_503_then_recovery(sf_emulator, sf):
    sf_emulator.set_faults(http_5xx_count=2, http_5xx_status=503)
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as exc:
            sf.query("SELECT Id FROM Account")
        assert exc.value.status == 503
        assert exc.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0


def test_http_500_body(sf_emulator, sf):
    sf_emulator.set_faults(http_5xx_count=1, http_5xx_status=500)
    with pytest.raises(SalesforceGeneralError) as exc:
        sf.Account.create({"Name": "x"})
    assert exc.value.status == 500 and exc.value.content[0]["errorCode"] == "UNKNOWN_EXCEPTION"


def test_session_expires_after_n_calls_and_a_new_token_works(sf_emulator, sf):
    sf_emulator.set_faults(session_expire_after_calls=3)
    for _ in range(3):
        sf.query("SELECT Id FROM Account")
    with pytest.raises(SalesforceExpiredSession) as exc:
        sf.query("SELECT Id FROM Account")
    assert exc.value.status == 401
    assert exc.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}
    ]
    assert sf_emulator.salesforce().query("SELECT Id FROM Account")["totalSize"] == 0


def test_daily_budget_answers_403_request_limit_exceeded(sf_emulator, sf):
    sf_emulator.set_faults(daily_api_budget=3)
    for _ in range(3):
        sf.query("SELECT Id FROM Account")
    assert sf.api_usage["api-usage"].used == 3 and sf.api_usage["api-usage"].total == 3
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.query("SELECT Id FROM Account")
    assert exc.value.status == 403
    assert exc.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert exc.value.content[0]["message"] == "TotalRequests Limit exceeded."
    with pytest.raises(SalesforceRefusedRequest):
        sf_emulator.salesforce().limits()  # a new session does not help


def test_lock_failures_are_deterministic_per_seed(sf_emulator):
    def run() -> list[str]:
        sf_emulator.reset()
        sf_emulator.set_faults(lock_failure_rate=0.2, lock_seed=42)
        client = BulkClient(
            sf_emulator.session(), sf_emulator.instance_url, sf_emulator.token(), poll_interval=0.01
        )
        rows = [{"LastName": f"L{i}", "Company": "C"} for i in range(200)]
        result = client.ingest("Lead", "insert", rows)
        assert {error_code(r) for r in result.failed} == {"UNABLE_TO_LOCK_ROW"}
        assert result.failed[0]["sf__Error"].startswith(
            "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records: "
        )
        return sorted(r["LastName"] for r in result.failed)

    first = run()
    assert 10 < len(first) < 80
    assert run() == first


def test_fault_settings_and_call_counter_on_admin_endpoint(sf_emulator, sf):
    assert sf_emulator.faults()["lock_failure_rate"] == pytest.approx(0.0)
    sf.query("SELECT Id FROM Account")
    sf.Account.create({"Name": "x"})
    stats = sf_emulator.stats()
    assert stats["api_calls"] == {
        "GET /services/data/v{version}/query": 1,
        "POST /services/data/v{version}/sobjects/{sobject}": 1,
    }
    assert stats["records"]["Account"] == 1
    with pytest.raises(Exception, match="400"):
        sf_emulator.set_faults(no_such_fault=1)
