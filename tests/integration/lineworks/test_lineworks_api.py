"""The LINE WORKS client through the real hook and an Airflow connection, against the emulator."""

from __future__ import annotations

import datetime as dt
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from talklog.lineworks import (
    LineWorksAuthError,
    LineWorksError,
    LineWorksRetryableError,
    LineWorksScopeError,
    PeriodError,
    TalkDownloadError,
)
from talklog.salesforce.failures import Backoff, Failure
from talklog_airflow.hooks.lineworks import LineWorksHook

JST = dt.timezone(dt.timedelta(hours=9))
START = dt.datetime(2025, 1, 9, tzinfo=JST)
END = dt.datetime(2025, 1, 11, tzinfo=JST)
QUICK = Backoff(attempts=3, first_s=0.01, max_s=0.05)


def _hook(**kwargs) -> LineWorksHook:
    return LineWorksHook(backoff=kwargs.pop("backoff", QUICK), **kwargs)


def _other_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _set_conn(monkeypatch, emulator, **extra) -> None:
    for name, value in emulator.airflow_conn_env(**extra).items():
        monkeypatch.setenv(name, value)


def _secrets(emulator) -> list[str]:
    key_lines = [line for line in emulator.private_key().splitlines() if "-----" not in line]
    return [emulator.client_secret, *key_lines[:3]]


# -- tokens ----------------------------------------------------------------------------------
def test_test_connection_gets_a_token_and_reads_one_page_of_users(lineworks_conn):
    assert _hook().test_connection() == (
        True,
        "Connection successfully tested: token issued, users readable",
    )
    assert lineworks_conn.stats()["calls"] == {"token": 1, "users": 1}


def test_a_wrong_private_key_is_refused_clearly_without_secrets(lw_emulator, monkeypatch):
    _set_conn(monkeypatch, lw_emulator, private_key=_other_key())
    hook = _hook()
    with pytest.raises(LineWorksAuthError) as caught:
        list(hook.client.users())
    message = str(caught.value)
    assert "HTTP 400 invalid_grant" in message and "private key" in message
    assert caught.value.failure is Failure.NEEDS_A_PERSON
    assert not [secret for secret in _secrets(lw_emulator) if secret in message]
    ok, text = _hook().test_connection()
    assert not ok and "invalid_grant" in text


def test_a_wrong_client_secret_is_refused(lw_emulator, monkeypatch):
    connection = lw_emulator.airflow_connection()
    connection["password"] = "not-the-secret"
    monkeypatch.setenv("AIRFLOW_CONN_LINEWORKS_DEFAULT", json.dumps(connection))
    with pytest.raises(LineWorksAuthError, match="HTTP 401 invalid_client") as caught:
        _hook().client.token()
    assert "not-the-secret" not in str(caught.value)


def test_a_scope_the_app_may_not_ask_for_is_refused_at_the_token(lw_emulator, monkeypatch):
    _set_conn(monkeypatch, lw_emulator, scopes="directory.read bot")
    with pytest.raises(LineWorksAuthError, match=r"invalid_scope.*bot"):
        _hook().client.token()


@pytest.mark.parametrize(
    ("scopes", "call", "missing"),
    [
        (
            "directory.read",
            lambda c: c.download_talks(START, END, "/nonexistent/x"),
            "monitoring.read",
        ),
        ("monitoring.read contact.read", lambda c: list(c.users()), "directory.read"),
        ("monitoring.read directory.read", lambda c: list(c.contacts()), "contact.read"),
    ],
)
def test_a_token_without_the_api_scope_fails_naming_the_scope(
    lw_emulator, monkeypatch, tmp_path, scopes, call, missing
):
    _set_conn(monkeypatch, lw_emulator, scopes=scopes)
    with pytest.raises(LineWorksScopeError) as caught:
        call(_hook().client)
    assert f"lacks the scope {missing}" in str(caught.value)
    assert caught.value.failure is Failure.NEEDS_A_PERSON


def test_an_expired_token_is_renewed_once_and_the_call_goes_through(lineworks_conn):
    client = _hook().client
    assert len(list(client.users())) == 5
    lineworks_conn.expire_tokens()
    assert len(list(client.users())) == 5
    stats = lineworks_conn.stats()
    assert stats["calls"]["token"] == 2 and stats["refused"] == {"users 401": 1}


def test_the_token_is_cached_across_calls(lineworks_conn):
    client = _hook().client
    list(client.users())
    list(client.contacts())
    assert lineworks_conn.stats()["calls"]["token"] == 1


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"iat": -7200, "exp": -3600}, "expired"),
        ({"iat": 0, "exp": 7200}, "within 60 minutes"),
        ({"iss": "someone-else"}, "does not match"),
        ({"sub": "other.serviceaccount@x"}, "does not match"),
    ],
)
def test_the_token_endpoint_checks_the_assertion(lw_emulator, claims, error):
    now = int(time.time())
    body = {"iss": lw_emulator.client_id, "sub": lw_emulator.service_account_id}
    body |= {"iat": now, "exp": now + 600}
    body |= {k: (now + v if isinstance(v, int) else v) for k, v in claims.items()}
    form = {
        "assertion": jwt.encode(body, lw_emulator.private_key(), algorithm="RS256"),
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "client_id": lw_emulator.client_id,
        "client_secret": lw_emulator.client_secret,
        "scope": "directory.read",
    }
    response = lw_emulator.session().post(lw_emulator.auth_url, data=form, timeout=10)
    assert response.status_code == 400
    assert (
        response.json()["error"] == "invalid_grant"
        and error in response.json()["error_description"]
    )


# -- paging ----------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [1, 2, 100])
def test_users_are_read_page_by_page(lineworks_conn, count):
    users = list(_hook().client.users(count=count))
    assert len(users) == len({u.user_id for u in users}) == 5
    assert all(
        u.email and u.email.endswith("@example-sales.co.jp") and u.display_name for u in users
    )
    assert lineworks_conn.stats()["calls"]["users"] == -(-5 // count)


@pytest.mark.parametrize("count", [1, 3, 500])
def test_contacts_are_read_page_by_page_and_by_period(lineworks_conn, count):
    client = _hook().client
    every = list(client.contacts(count=count))
    assert len(every) == len({c.contact_id for c in every})
    line_users = [c for c in every if c.is_line_user]
    assert len(line_users) == len(every) - 2 and all(c.master_user_id for c in line_users)
    assert len({c.external_user_id for c in line_users}) < len(
        line_users
    )  # one LINE user, two books
    start = min(c.modified_time for c in every) - dt.timedelta(seconds=1)
    end = max(c.modified_time for c in every) + dt.timedelta(seconds=1)
    windowed = list(client.contacts(start, end, "MODIFIED_TIME", count=count))
    assert {c.contact_id for c in windowed} == {c.contact_id for c in every}  # in 7-day periods


# -- the download ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("language", "bots"),
    [("ja_JP", "include"), ("en_US", "include"), ("ja_JP", "exclude"), ("ja_JP", "only")],
)
def test_the_302_download_lands_a_checked_file(lineworks_conn, tmp_path, language, bots):
    target = tmp_path / "talks.csv"
    checked = _hook().client.download_talks(START, END, target, language=language, bot_filter=bots)
    assert checked.path == target and target.stat().st_size == checked.size
    assert checked.language == language and not (tmp_path / "talks.csv.part").exists()
    text = target.read_text(encoding="utf-8-sig")
    assert ("[Bot]" in text) == (bots != "exclude")
    if bots == "include":
        assert checked.records >= 120 and "(file)" in text and "stickershop" in text
        assert "(写真) image_" in text if language == "ja_JP" else "(Photo) image_" in text
    assert lineworks_conn.stats()["calls"] == {"token": 1, "download": 1, "files": 1}


def test_the_file_url_needs_the_token_and_is_on_another_host(lineworks_conn, tmp_path):
    hook = _hook()
    session = lineworks_conn.session()
    query = "startTime=2025-01-09T00:00:00%2B09:00&endTime=2025-01-10T00:00:00%2B09:00"
    url = f"{lineworks_conn.base_url}/monitoring/message-contents/download?{query}"
    auth = {"Authorization": f"Bearer {hook.client.token()}"}
    redirect = session.get(url, headers=auth, allow_redirects=False, timeout=10)
    assert redirect.status_code == 302 and "//localhost:" in redirect.headers["Location"]
    assert session.get(redirect.headers["Location"], timeout=10).status_code == 401
    assert session.get(redirect.headers["Location"], headers=auth, timeout=10).status_code == 200


def test_a_plus_sent_unencoded_is_refused_by_the_emulator(lineworks_conn):
    token = _hook().client.token()
    url = (
        f"{lineworks_conn.base_url}/monitoring/message-contents/download"
        "?startTime=2025-01-09T00:00:00+09:00&endTime=2025-01-10T00:00:00+09:00"
    )
    response = lineworks_conn.session().get(
        url, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False, timeout=10
    )
    assert response.status_code == 400 and response.json()["code"] == "INVALID_PARAMETER"


@pytest.mark.parametrize(
    ("faults", "match"),
    [
        ({"download_error": True}, "downloadLogs error"),
        ({"truncate": "record"}, "truncated"),
        ({"truncate": "length"}, "truncated"),
        ({"header": "Date,From,To,Room,Body"}, "unknown header 'Date,From,To,Room,Body'"),
        (
            {"header": "日時,送信者,受信者,チャンネルID"},
            "expected 日時,送信者,受信者,チャンネルID,トーク",
        ),
    ],
)
def test_every_faulty_download_fails_clearly_and_leaves_no_file(
    lineworks_conn, tmp_path, faults, match
):
    lineworks_conn.set_faults(**faults)
    target = tmp_path / "talks.csv"
    with pytest.raises(TalkDownloadError, match=match) as caught:
        _hook().client.download_talks(START, END, target)
    assert list(tmp_path.iterdir()) == []
    assert caught.value.failure is Failure.NEEDS_A_PERSON
    assert "お世話" not in str(caught.value)  # no talk quoted
    lineworks_conn.set_faults(download_error=False, truncate="", header=None)
    assert _hook().client.download_talks(START, END, target).records > 0  # a re-run passes


@pytest.mark.parametrize("api", ["users", "contacts", "download"])
def test_429_and_5xx_are_retried_with_the_backoff_and_then_succeed(lineworks_conn, tmp_path, api):
    pauses: list[float] = []
    hook = _hook(backoff=Backoff(attempts=5, first_s=0.01, max_s=0.02), sleep=pauses.append)
    hook.client.token()
    lineworks_conn.set_faults(throttle_next=2, fail_next=1)
    if api == "download":
        assert hook.client.download_talks(START, END, tmp_path / "t.csv").records > 0
    else:
        assert list(getattr(hook.client, api)())
    assert len(pauses) == 3
    assert lineworks_conn.stats()["refused"] == {f"{api} 429": 2, f"{api} 500": 1}


def test_a_lasting_rate_limit_fails_as_retryable_after_the_tries(lineworks_conn):
    lineworks_conn.set_faults(throttle_next=10)
    with pytest.raises(LineWorksRetryableError, match="429 TOO_MANY_REQUESTS"):
        list(_hook(sleep=lambda _: None).client.users())
    assert lineworks_conn.stats()["refused"] == {"users 429": QUICK.attempts}


def test_a_concurrent_download_is_refused(lineworks_conn, tmp_path):
    hook = _hook(sleep=lambda _: None)
    session = lineworks_conn.session()
    query = "startTime=2025-01-09T00:00:00%2B09:00&endTime=2025-01-10T00:00:00%2B09:00"
    auth = {"Authorization": f"Bearer {hook.client.token()}"}
    running = session.get(
        f"{lineworks_conn.base_url}/monitoring/message-contents/download?{query}",
        headers=auth, allow_redirects=False, timeout=10,
    )  # fmt: skip
    with pytest.raises(LineWorksRetryableError, match="another download is still running"):
        hook.client.download_talks(START, END, tmp_path / "t.csv")
    assert lineworks_conn.stats()["refused"] == {"download 409": QUICK.attempts}
    assert session.get(running.headers["Location"], headers=auth, timeout=10).ok  # it ends
    assert hook.client.download_talks(START, END, tmp_path / "t.csv").records > 0


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (START, START + dt.timedelta(days=32)),
        (START, START),
        (START.replace(tzinfo=None), END),
    ],
)
def test_a_period_lineworks_would_refuse_is_refused_before_sending(
    lineworks_conn, tmp_path, start, end
):
    with pytest.raises(PeriodError):
        _hook().client.download_talks(start, end, tmp_path / "t.csv")
    assert "download" not in lineworks_conn.stats()["calls"]


def test_an_unknown_route_answers_the_lineworks_error_shape(lineworks_conn):
    response = lineworks_conn.session().get(f"{lineworks_conn.base_url}/nothing", timeout=10)
    assert response.status_code == 404 and set(response.json()) == {"code", "description"}
    assert issubclass(LineWorksScopeError, LineWorksError)
