"""The client's rules that need no server: the assertion, times, periods, file checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from talklog.lineworks import (
    LineWorksAuthError,
    PeriodError,
    ServiceAccount,
    TalkDownloadError,
    assertion,
    check_period,
    check_talk_file,
    format_time,
)
from talklog.lineworks.errors import redact
from talklog.lineworks.talk_files import language_of_header
from talklog.lineworks.times import query_string, slices

JST = dt.timezone(dt.timedelta(hours=9))
EST = dt.timezone(-dt.timedelta(hours=5))
T0 = dt.datetime(2025, 5, 1, 0, 0, 0, tzinfo=JST)
JA_HEADER = "日時,送信者,受信者,チャンネルID,トーク"
ROW = "2025-05-30T18:24:53+09:00,鈴木 一郎(suzuki@example.co.jp),山田 太郎,ch-1,こんにちは"


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def _account(private_key: str) -> ServiceAccount:
    return ServiceAccount("client-1", "s3cret-value", "abc.serviceaccount@example", private_key)


def test_the_assertion_is_rs256_with_the_claims_lineworks_checks(key_pair):
    private, public = key_pair
    token = assertion(_account(private), T0, dt.timedelta(minutes=60))
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, public, algorithms=["RS256"], options={"verify_exp": False})
    assert claims == {
        "iss": "client-1",
        "sub": "abc.serviceaccount@example",
        "iat": int(T0.timestamp()),
        "exp": int(T0.timestamp()) + 3600,
    }


@pytest.mark.parametrize("minutes", [0, -1, 61, 24 * 60])
def test_an_assertion_lifetime_outside_60_minutes_is_refused(key_pair, minutes):
    with pytest.raises(ValueError, match="60 minutes"):
        assertion(_account(key_pair[0]), T0, dt.timedelta(minutes=minutes))


@pytest.mark.parametrize("key", ["", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END"])
def test_an_unusable_private_key_is_a_clear_error_without_the_key(key):
    with pytest.raises(LineWorksAuthError, match="RSA private key in PEM") as caught:
        assertion(_account(key), T0)
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_account_repr_hides_its_secrets(key_pair):
    text = repr(_account(key_pair[0]))
    assert "s3cret" not in text and "PRIVATE" not in text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (T0, "2025-05-01T00:00:00+09:00"),
        (dt.datetime(2025, 5, 31, 23, 59, 59, 999_999, tzinfo=JST), "2025-05-31T23:59:59+09:00"),
        (dt.datetime(2025, 1, 9, 1, 2, 3, tzinfo=dt.UTC), "2025-01-09T01:02:03+00:00"),
        (
            dt.datetime(2025, 1, 9, tzinfo=dt.timezone(-dt.timedelta(hours=5))),
            "2025-01-09T00:00:00-05:00",
        ),
    ],
)
def test_times_are_yyyy_mm_ddthh_mm_ss_tzd(value, text):
    assert format_time(value) == text


def test_milliseconds_for_the_contacts_api():
    value = dt.datetime(2021, 6, 3, 10, 0, 0, 123_456, tzinfo=JST)
    assert format_time(value, milliseconds=True) == "2021-06-03T10:00:00.123+09:00"


def test_a_naive_time_is_refused():
    with pytest.raises(PeriodError, match="timezone-aware"):
        format_time(dt.datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("params", "query"),
    [
        ({"startTime": "2025-05-01T00:00:00+09:00"}, "startTime=2025-05-01T00:00:00%2B09:00"),
        ({"endTime": "2025-05-01T00:00:00-05:00"}, "endTime=2025-05-01T00:00:00-05:00"),
        ({"cursor": "a+b/c=="}, "cursor=a%2Bb%2Fc%3D%3D"),
        ({"count": 100, "cursor": None}, "count=100"),
        ({"language": "ja_JP", "domainId": 10000001}, "language=ja_JP&domainId=10000001"),
    ],
)
def test_the_query_sends_plus_as_percent_2b_and_encodes_cursors(params, query):
    assert query_string(params) == query


@pytest.mark.parametrize(
    "end",
    [T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=31), T0 + dt.timedelta(seconds=1)],
)
def test_periods_up_to_31_days_pass(end):
    check_period(T0, end)


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        (T0, T0 + dt.timedelta(days=31, seconds=1), "at most 31 days"),
        (T0, T0 + dt.timedelta(days=90), "at most 31 days"),
        (T0, T0, "end after it starts"),
        (T0, T0 - dt.timedelta(hours=1), "end after it starts"),
        (T0.replace(tzinfo=None), T0 + dt.timedelta(days=1), "timezone-aware"),
        (T0, (T0 + dt.timedelta(days=1)).replace(tzinfo=None), "timezone-aware"),
    ],
)
def test_periods_lineworks_would_refuse_are_refused_before_sending(start, end, match):
    with pytest.raises(PeriodError, match=match):
        check_period(start, end)


def test_slices_cover_the_period_without_gaps():
    parts = list(slices(T0, T0 + dt.timedelta(days=16), dt.timedelta(days=7)))
    assert [b - a for a, b in parts] == [dt.timedelta(days=7)] * 2 + [dt.timedelta(days=2)]
    assert all(parts[n][1] == parts[n + 1][0] for n in range(len(parts) - 1))


def test_secrets_are_redacted_from_server_text():
    assert redact("bad secret s3cret-value here", ["s3cret-value", None, ""]) == (
        "bad secret [redacted] here"
    )


# -- the downloaded file ---------------------------------------------------------------------
def _file(tmp_path: Path, text: str, bom: bool = False) -> Path:
    path = tmp_path / "talks.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (JA_HEADER, "ja_JP"),
        ("日時,送信者,受信者,トークルームID,トーク", "ja_JP"),
        (" 日時 , 送信者,受信者,チャンネルID,トーク ", "ja_JP"),
        ("Date,Sender,Receiver,Channel ID,Talk", "en_US"),
        ("date,sender,receiver,channel id,talk", "en_US"),
    ],
)
def test_known_headers_are_recognised(tmp_path, header, language):
    checked = check_talk_file(_file(tmp_path, f"{header}\r\n{ROW}\r\n{ROW}\r\n", bom=True))
    assert (checked.language, checked.records) == (language, 2)


@pytest.mark.parametrize(
    "header",
    [
        "Date,From,To,Room,Body",
        "日時,送信者,受信者,チャンネルID",
        "日時,送信者,受信者,チャンネルID,トーク,添付",
        "送信者,日時,受信者,チャンネルID,トーク",
        "일시,발신자,수신자,채널ID,대화",
        ROW,
    ],
)
def test_an_unknown_header_is_refused_naming_it_and_the_expected_ones(tmp_path, header):
    with pytest.raises(TalkDownloadError) as caught:
        check_talk_file(_file(tmp_path, f"{header}\n{ROW}\n"))
    message = str(caught.value)
    assert "unknown header" in message and JA_HEADER in message
    assert "トークルームID" in message and "Date,Sender,Receiver,Channel ID,Talk" in message
    assert "こんにちは" not in message  # a file without header: its first talk is not quoted


def test_a_header_of_the_other_language_is_refused(tmp_path):
    path = _file(tmp_path, f"Date,Sender,Receiver,Channel ID,Talk\n{ROW}\n")
    with pytest.raises(TalkDownloadError, match="unknown header"):
        check_talk_file(path, "ja_JP")


def test_language_of_header_is_none_for_unknown_headers():
    assert language_of_header(["a", "b"]) is None


@pytest.mark.parametrize(
    "trailer",
    [
        "downloadLogs error",
        "downloadLogs error : internal error",
        '"downloadLogs error, timeout",,,,',
        "DOWNLOADLOGS ERROR occurred",
    ],
)
def test_a_download_error_trailer_fails_the_file(tmp_path, trailer):
    with pytest.raises(TalkDownloadError, match="downloadLogs error line at line 3") as caught:
        check_talk_file(_file(tmp_path, f"{JA_HEADER}\n{ROW}\n{trailer}\n"))
    assert "こんにちは" not in str(caught.value)


def test_a_talk_that_mentions_the_trailer_text_is_not_a_trailer(tmp_path):
    row = "2025-05-30T18:24:53+09:00,a(a@b),c,ch-1,downloadLogs error って何ですか"
    assert check_talk_file(_file(tmp_path, f"{JA_HEADER}\n{row}\n")).records == 1


@pytest.mark.parametrize(
    "text",
    [
        f"{JA_HEADER}\n{ROW}\n{ROW[:40]}",  # cut inside a record
        f"{JA_HEADER}\n{ROW}",  # last record without its line end
        f'{JA_HEADER}\n{ROW}\n2025-05-30T18:25:00+09:00,a,b,ch-1,"複数行の\n',  # open quote
        f"{JA_HEADER}",
    ],
)
def test_a_truncated_file_fails(tmp_path, text):
    with pytest.raises(TalkDownloadError, match="truncated") as caught:
        check_talk_file(_file(tmp_path, text))
    assert "こんにちは" not in str(caught.value) and "複数行" not in str(caught.value)


@pytest.mark.parametrize("data", [b"", b"\xff\xfe\x00\n"])
def test_an_empty_or_non_utf8_file_fails(tmp_path, data):
    path = tmp_path / "talks.csv"
    path.write_bytes(data)
    with pytest.raises(TalkDownloadError):
        check_talk_file(path)


def test_a_header_only_file_is_a_period_without_talk(tmp_path):
    assert check_talk_file(_file(tmp_path, f"{JA_HEADER}\r\n")).records == 0
