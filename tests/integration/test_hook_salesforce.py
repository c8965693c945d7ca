"""TalkLogSalesforceHook against the emulator through an Airflow connection (env var form)."""

from __future__ import annotations

import json

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceRefusedRequest

from talklog.salesforce.bulk import RequestLimitExceededError
from talklog_airflow.hooks.salesforce import SalesforceAuthError, TalkLogSalesforceHook


@pytest.fixture
def hook(salesforce_conn_env) -> TalkLogSalesforceHook:
    return TalkLogSalesforceHook()


def test_hook_queries_through_the_airflow_connection(hook, salesforce_conn_env, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert hook.conn_type == "talklog_salesforce" and hook.default_conn_name == "salesforce_default"
    assert hook.api_version == "66.0"
    hook.get_conn().Account.create({"Name": "ACME"})
    result = hook.make_query("SELECT Id, Name FROM Account")
    assert result["totalSize"] == 1 and result["records"][0]["Name"] == "ACME"
    assert "Name" in hook.get_available_fields("Account")
    assert hook.test_connection() == (True, "Connection successfully tested")
    assert hook.get_conn() is hook.get_conn()  # cached


def test_wrong_secret_fails_without_leaking_it(salesforce_conn_env, monkeypatch):
    conn = salesforce_conn_env.airflow_connection()
    conn["password"] = "definitely-wrong-secret"
    monkeypatch.setenv("AIRFLOW_CONN_SF_BAD", json.dumps(conn))
    with pytest.raises(SalesforceAuthError) as exc:
        TalkLogSalesforceHook("sf_bad").get_conn()
    assert "definitely-wrong-secret" not in str(exc.value)
    assert "invalid_client" in str(exc.value)


def test_password_flow_with_consumer_key(salesforce_conn_env, monkeypatch):
    emulator = salesforce_conn_env
    conn = emulator.airflow_connection(
        consumer_key=emulator.client_id, consumer_secret=emulator.client_secret
    )
    conn.update(login=emulator.username, password=emulator.password)
    monkeypatch.setenv("AIRFLOW_CONN_SF_PASSWORD", json.dumps(conn))
    hook = TalkLogSalesforceHook("sf_password")
    assert hook.make_query("SELECT Id, Username FROM User")["records"][0]["Username"] == (
        emulator.username
    )


def test_direct_session_the_provider_way(salesforce_conn_env, monkeypatch):
    emulator = salesforce_conn_env
    conn = {
        "conn_type": "salesforce",
        "extra": {"instance_url": emulator.instance_url, "ca_bundle": emulator.ca_bundle},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SF_DIRECT", json.dumps(conn))
    hook = TalkLogSalesforceHook("sf_direct", session_id=emulator.token())
    assert not hook.uses_instance_token()
    assert hook.make_query("SELECT Id FROM Account")["totalSize"] == 0


def test_expired_session_is_renewed(hook, salesforce_conn_env):
    salesforce_conn_env.set_faults(session_expire_after_calls=2)
    for _ in range(5):  # simple-salesforce re-logs in through the hook on INVALID_SESSION_ID
        assert hook.make_query("SELECT Id FROM Account")["totalSize"] == 0
    salesforce_conn_env.set_faults(session_expire_after_calls=None)
    salesforce_conn_env.admin("POST", "sessions/expire")
    with pytest.raises(SalesforceExpiredSession) as exc:
        _client_without_relogin(hook).query("SELECT Id FROM Account")
    assert exc.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    hook.refresh_session()
    assert hook.conn.Account.create({"Name": "after refresh"})["success"]


def _client_without_relogin(hook: TalkLogSalesforceHook) -> Salesforce:
    """A client on the hook's current session that cannot log in again by itself."""
    return Salesforce(
        session_id=hook.conn.session_id,
        instance_url=hook.instance_url,
        session=hook.http_session,
        version=hook.api_version,
    )


def test_bulk_client_from_hook_refreshes_and_stops_on_budget(hook, salesforce_conn_env):
    emulator = salesforce_conn_env
    bulk = hook.bulk_client(poll_interval=0.01)
    emulator.set_faults(session_expire_after_calls=3)
    result = bulk.ingest(
        "Lead", "insert", [{"LastName": f"L{i}", "Company": "C"} for i in range(20)]
    )
    assert result.ok and result.succeeded == 20
    emulator.set_faults(session_expire_after_calls=None, http_5xx_count=2, http_5xx_status=503)
    assert len(list(bulk.query("SELECT Id FROM Lead"))) == 20  # 503s are retried
    used = emulator.stats()["daily_api_requests"]["used"]
    emulator.set_faults(daily_api_budget=used + 1)
    hook.make_query("SELECT Id FROM Lead")
    with pytest.raises(SalesforceRefusedRequest) as exc:
        hook.make_query("SELECT Id FROM Lead")
    assert exc.value.content[0] == {
        "message": "TotalRequests Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED",
        "fields": [],
    }
    with pytest.raises(RequestLimitExceededError):
        bulk.ingest("Lead", "insert", [{"LastName": "x", "Company": "y"}])
    assert hook.conn.limits  # the client object is still usable once the budget is back
