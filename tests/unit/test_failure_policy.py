"""The failure policy: every answer the emulator can give maps to one class, and the one retry
helper (and its users: `BulkClient._call`, `patient_queries`, the in-load row retries) obeys it."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

import talklog_dev.emulator
from talklog import deadletters
from talklog.loading import BulkLoader
from talklog.salesforce.bulk import BulkClient, CsvSpool, IngestRequest, IngestResult, JobSummary
from talklog.salesforce.failures import (
    Backoff,
    BulkApiError,
    Failure,
    RequestLimitExceededError,
    SessionExpiredError,
    call_with_policy,
    error_of_body,
    error_of_exception,
    error_of_response,
    job_error,
    row_error,
)
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade

NOW, NEXT, PERSON, STOP = (
    Failure.RETRY_NOW,
    Failure.RETRY_NEXT_RUN,
    Failure.NEEDS_A_PERSON,
    Failure.STOP_THE_RUN,
)
URL = "https://127.0.0.1/services/data/v66.0/query"


def rest(status: int, code: str, message: str = "m", fields: list[str] | None = None) -> Any:
    return ("rest", status, [{"message": message, "errorCode": code, "fields": fields or []}])


def oauth(status: int, code: str) -> Any:
    return ("rest", status, {"error": code, "error_description": "d"})


def row(code: str, message: str = "m", fields: str = "") -> Any:
    return ("row", f"{code}:{message}:{fields} --")


def job(state: str, message: str | None) -> Any:
    return ("job", state, message)


# One case per answer the emulator can give (app.py, bulk.py, records.py, values.py, soql.py,
# convert.py), plus what real Salesforce adds; `test_the_table_covers_every_emulator_code`
# keeps it complete.
ANSWERS = {
    # request level: auth, budget, injected faults
    "401 INVALID_SESSION_ID (after the refresh)": (rest(401, "INVALID_SESSION_ID"), STOP),
    "403 REQUEST_LIMIT_EXCEEDED": (rest(403, "REQUEST_LIMIT_EXCEEDED"), STOP),
    "503 SERVER_UNAVAILABLE": (rest(503, "SERVER_UNAVAILABLE"), NOW),
    "500 UNKNOWN_EXCEPTION": (rest(500, "UNKNOWN_EXCEPTION"), NOW),
    "502 UNKNOWN_EXCEPTION": (rest(502, "UNKNOWN_EXCEPTION"), NOW),
    "504 UNKNOWN_EXCEPTION": (rest(504, "UNKNOWN_EXCEPTION"), NOW),
    "503 API_TEMPORARILY_UNAVAILABLE": (rest(503, "API_TEMPORARILY_UNAVAILABLE"), NOW),
    "503 proxy page (no JSON)": (("rest", 503, "<html>Service Unavailable</html>"), NOW),
    "403 FORBIDDEN (admin API)": (rest(403, "FORBIDDEN"), PERSON),
    # OAuth token endpoint
    "400 invalid_client": (oauth(400, "invalid_client"), STOP),
    "400 invalid_client_id": (oauth(400, "invalid_client_id"), STOP),
    "400 invalid_grant": (oauth(400, "invalid_grant"), STOP),
    "400 unsupported_grant_type": (oauth(400, "unsupported_grant_type"), STOP),
    "503 from the token endpoint": (("rest", 503, {"error": "unknown_error"}), NOW),
    # REST and SOQL
    "404 NOT_FOUND": (rest(404, "NOT_FOUND"), PERSON),
    "400 JSON_PARSER_ERROR": (rest(400, "JSON_PARSER_ERROR"), PERSON),
    "400 INVALID_FIELD": (rest(400, "INVALID_FIELD", "No such column 'X__c'"), PERSON),
    "400 INVALID_QUERY_LOCATOR": (rest(400, "INVALID_QUERY_LOCATOR"), PERSON),
    "400 EXCEEDED_ID_LIMIT": (rest(400, "EXCEEDED_ID_LIMIT"), PERSON),
    "400 MALFORMED_QUERY": (
        ("rest", 400, [{"message": "m", "errorCode": "MALFORMED_QUERY"}]),
        PERSON,
    ),
    "400 INVALID_TYPE": (rest(400, "INVALID_TYPE"), PERSON),
    "400 INVALID_QUERY_FILTER_OPERATOR": (rest(400, "INVALID_QUERY_FILTER_OPERATOR"), PERSON),
    "300 multiple matches": (("rest", 300, ["/services/data/v66.0/sobjects/Lead/00Q1"]), PERSON),
    "400 UNABLE_TO_LOCK_ROW (REST write)": (rest(400, "UNABLE_TO_LOCK_ROW"), NOW),
    "400 MISSING_ARGUMENT": (rest(400, "MISSING_ARGUMENT"), PERSON),
    "400 INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": (
        rest(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", fields=["Status"]),
        PERSON,
    ),
    "400 NUMBER_OUTSIDE_VALID_RANGE": (rest(400, "NUMBER_OUTSIDE_VALID_RANGE"), PERSON),
    "400 MALFORMED_ID": (rest(400, "MALFORMED_ID", fields=["Id"]), PERSON),
    "400 ENTITY_IS_DELETED": (rest(400, "ENTITY_IS_DELETED"), PERSON),
    "400 INVALID_CROSS_REFERENCE_KEY": (rest(400, "INVALID_CROSS_REFERENCE_KEY"), PERSON),
    "400 FIELD_INTEGRITY_EXCEPTION": (rest(400, "FIELD_INTEGRITY_EXCEPTION"), PERSON),
    "400 CANNOT_UPDATE_CONVERTED_LEAD": (rest(400, "CANNOT_UPDATE_CONVERTED_LEAD"), PERSON),
    "400 DUPLICATE_VALUE": (rest(400, "DUPLICATE_VALUE"), PERSON),
    "400 INACTIVE_OWNER_OR_USER (REST write)": (rest(400, "INACTIVE_OWNER_OR_USER"), PERSON),
    "collection ALL_OR_NONE_OPERATION_ROLLED_BACK": (
        ("rest", 400, [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "m"}]),
        NEXT,
    ),
    # Bulk API 2.0 requests
    "400 INVALIDJOB": (rest(400, "INVALIDJOB"), PERSON),
    "409 INCORRECTSTATE": (rest(409, "INCORRECTSTATE"), PERSON),
    "400 BULK_API_ERROR": (rest(400, "BULK_API_ERROR"), PERSON),
    "400 INVALIDJOBSTATE": (rest(400, "INVALIDJOBSTATE"), PERSON),
    "400 INVALIDBATCH": (rest(400, "INVALIDBATCH"), PERSON),
    "400 INVALIDLOCATOR": (rest(400, "INVALIDLOCATOR"), PERSON),
    "400 INVALIDCONTENTTYPE": (rest(400, "INVALIDCONTENTTYPE"), PERSON),
    # Bulk jobs that ended without processing their rows
    "job Failed InvalidBatch": (
        job("Failed", "InvalidBatch : Field name not found : X__c"),
        PERSON,
    ),
    "job Failed ClientInputError": (
        job("Failed", "ClientInputError : LineEnding is invalid"),
        PERSON,
    ),
    "job Failed, no input error": (job("Failed", "Max retry for batch reached"), NEXT),
    "job Aborted": (job("Aborted", None), NEXT),
    # Bulk rows (sf__Error)
    "row UNABLE_TO_LOCK_ROW": (row("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access"), NOW),
    "row SERVER_UNAVAILABLE": (row("SERVER_UNAVAILABLE"), NOW),
    "row API_TEMPORARILY_UNAVAILABLE": (row("API_TEMPORARILY_UNAVAILABLE"), NOW),
    "row lookup target not synced yet": (
        row("INVALID_FIELD", "Foreign key external ID: k1 not found for field K in entity L", "R"),
        NEXT,
    ),
    "row UNPROCESSED": (row("UNPROCESSED", "the Bulk job ended before this row"), NEXT),
    "row INVALID_SESSION_ID": (row("INVALID_SESSION_ID"), NEXT),
    "row REQUEST_LIMIT_EXCEEDED": (row("REQUEST_LIMIT_EXCEEDED"), NEXT),
    "row REQUEST_RUNNING_TOO_LONG": (row("REQUEST_RUNNING_TOO_LONG"), NEXT),
    "row QUERY_TIMEOUT": (row("QUERY_TIMEOUT"), NEXT),
    "row INVALID_FIELD": (row("INVALID_FIELD", "No such column 'X'", "X"), PERSON),
    "row INVALID_FIELD_FOR_INSERT_UPDATE": (
        row("INVALID_FIELD_FOR_INSERT_UPDATE", "", "Id"),
        PERSON,
    ),
    "row DUPLICATE_EXTERNAL_ID": (row("DUPLICATE_EXTERNAL_ID", "Duplicate", "K"), PERSON),
    "row DUPLICATE_VALUE": (row("DUPLICATE_VALUE"), PERSON),
    "row STRING_TOO_LONG": (row("STRING_TOO_LONG", "Subject: data value too large", "S"), PERSON),
    "row INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": (
        row("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Status: bad value", "Status"),
        PERSON,
    ),
    "row NUMBER_OUTSIDE_VALID_RANGE": (
        row("NUMBER_OUTSIDE_VALID_RANGE", "Count: value outside of valid range", "Count__c"),
        PERSON,
    ),
    "row INVALID_TYPE_ON_FIELD_IN_RECORD": (row("INVALID_TYPE_ON_FIELD_IN_RECORD"), PERSON),
    "row REQUIRED_FIELD_MISSING": (
        row("REQUIRED_FIELD_MISSING", "Required: [Name]", "Name"),
        PERSON,
    ),
    "row FIELD_CUSTOM_VALIDATION_EXCEPTION": (row("FIELD_CUSTOM_VALIDATION_EXCEPTION"), PERSON),
    "row CANNOT_UPDATE_CONVERTED_LEAD": (row("CANNOT_UPDATE_CONVERTED_LEAD", "", "WhoId"), PERSON),
    "row ENTITY_IS_DELETED": (row("ENTITY_IS_DELETED"), PERSON),
    "row INVALID_CROSS_REFERENCE_KEY": (row("INVALID_CROSS_REFERENCE_KEY", "", "WhoId"), PERSON),
    "row MALFORMED_ID": (row("MALFORMED_ID", "id value of incorrect type", "WhatId"), PERSON),
    "row FIELD_INTEGRITY_EXCEPTION": (row("FIELD_INTEGRITY_EXCEPTION"), PERSON),
    "row INACTIVE_OWNER_OR_USER (resent once without OwnerId first)": (
        row("INACTIVE_OWNER_OR_USER", "operation performed with inactive user [005x] as owner"),
        PERSON,
    ),
    "row MISSING_ARGUMENT": (row("MISSING_ARGUMENT"), PERSON),
    "row NOT_FOUND": (row("NOT_FOUND"), PERSON),
    "row UNKNOWN_EXCEPTION": (row("UNKNOWN_EXCEPTION"), PERSON),
    # exceptions of the clients
    "requests ConnectionError": (("exc", requests.ConnectionError("reset")), NOW),
    "requests ReadTimeout": (("exc", requests.ReadTimeout("slow")), NOW),
    "requests ChunkedEncodingError": (("exc", requests.exceptions.ChunkedEncodingError()), NOW),
    "requests SSLError": (("exc", requests.exceptions.SSLError("verify failed")), PERSON),
    "simple-salesforce 503": (("exc", SalesforceGeneralError(URL, 503, "q", "busy")), NOW),
    "simple-salesforce 401": (
        ("exc", SalesforceExpiredSession(URL, 401, "q", [{"errorCode": "INVALID_SESSION_ID"}])),
        STOP,
    ),
    "simple-salesforce 403 budget": (
        ("exc", SalesforceRefusedRequest(URL, 403, "q", [{"errorCode": "REQUEST_LIMIT_EXCEEDED"}])),
        STOP,
    ),
    "simple-salesforce 400": (
        ("exc", SalesforceMalformedRequest(URL, 400, "q", [{"errorCode": "MALFORMED_QUERY"}])),
        PERSON,
    ),
}


def _classify(answer: Any) -> Failure:
    kind, *args = answer
    if kind == "rest":
        return error_of_body(*args).failure
    if kind == "row":
        return row_error(*args).failure
    if kind == "job":
        error = job_error(*args)
        assert error is not None
        return error.failure
    error = error_of_exception(args[0])
    assert error is not None
    return error.failure


@pytest.mark.parametrize(("answer", "expected"), ANSWERS.values(), ids=ANSWERS.keys())
def test_every_answer_has_one_class(answer, expected):
    assert _classify(answer) is expected


def test_the_table_covers_every_emulator_code():
    source = Path(talklog_dev.emulator.__file__).parent
    emitted: set[str] = set()
    for path in source.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        call = (
            r'(?:fail|_error|BulkError|SfError|SoqlError|FieldValueError)\(\s*(?:\w+,\s*)?"(\w+)"'
        )
        emitted |= set(re.findall(call, text)) | set(re.findall(r'"error": "(\w+)"', text))
    covered = {word for name in ANSWERS for word in re.findall(r"\w+", name)}
    assert emitted and emitted <= covered, sorted(emitted - covered)


def test_parsers_keep_what_salesforce_said():
    error = error_of_body(400, rest(400, "MALFORMED_ID", "bad id", ["WhoId", "WhatId"])[2])
    assert (error.status, error.code, error.message) == (400, "MALFORMED_ID", "bad id")
    assert error.fields == ("WhoId", "WhatId") and error.fields_text == "WhoId,WhatId"
    locked = row_error("UNABLE_TO_LOCK_ROW:unable to obtain access to: 005000000000001AAA:--")
    assert locked.message == "unable to obtain access to: 005000000000001AAA"
    assert locked.status is None and locked.fields == ()
    assert row_error("NOT_FOUND:gone --").message == "gone"
    assert job_error("JobComplete", None) is None
    failed = job_error("Failed", "InvalidBatch : Field name not found : X__c")
    assert failed is not None and (failed.code, failed.message) == (
        "INVALIDBATCH",
        "Field name not found : X__c",
    )
    response = requests.Response()
    response.status_code, response._content = 400, b'{"error": "invalid_grant"}'
    assert error_of_response(response).code == "invalid_grant"
    assert error_of_exception(ValueError("a bug")) is None


def test_dead_letters_are_retryable_by_the_same_policy():
    for name, (answer, expected) in ANSWERS.items():
        if answer[0] == "row":
            error = row_error(answer[1])
            rejection = deadletters.Rejection(
                "Task", "k", error.code, error.message, error.fields_text, {}
            )
            assert rejection.retryable == expected.retryable, name


# -- the retry helper --------------------------------------------------------------------------
class Answers:
    """A call that raises `errors` in turn, then returns "ok"; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.pending, self.calls = list(errors), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.pending:
            raise self.pending.pop(0)
        return "ok"


def _unavailable() -> BulkApiError:
    return BulkApiError(503, "SERVER_UNAVAILABLE", "busy")


def test_retry_now_answers_are_retried_with_the_backoff_then_succeed():
    call, slept = Answers(_unavailable(), requests.ConnectionError(), _unavailable()), []
    backoff = Backoff(attempts=4, first_s=0.1, max_s=0.3)
    assert call_with_policy(call, backoff=backoff, sleep=slept.append) == "ok"
    assert call.calls == 4 and slept == [0.1, 0.2, 0.3]


def test_the_helper_gives_up_after_the_last_attempt_with_the_last_error():
    call = Answers(*[_unavailable() for _ in range(5)])
    with pytest.raises(BulkApiError, match="503 SERVER_UNAVAILABLE"):
        call_with_policy(call, backoff=Backoff(3, 0.01), sleep=lambda _: None)
    assert call.calls == 3


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (BulkApiError(403, "REQUEST_LIMIT_EXCEEDED", "spent"), RequestLimitExceededError),
        (BulkApiError(400, "INVALIDBATCH", "bad header"), BulkApiError),
        (
            SalesforceRefusedRequest(URL, 403, "q", [{"errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
            RequestLimitExceededError,
        ),
        (
            SalesforceExpiredSession(URL, 401, "q", [{"errorCode": "INVALID_SESSION_ID"}]),
            SessionExpiredError,
        ),
        (
            SalesforceMalformedRequest(URL, 400, "q", [{"errorCode": "MALFORMED_QUERY"}]),
            SalesforceMalformedRequest,
        ),
        (requests.exceptions.SSLError("verify failed"), requests.exceptions.SSLError),
        (KeyError("a bug"), KeyError),
    ],
    ids=lambda value: getattr(value, "__name__", type(value).__name__),
)
def test_stop_the_run_and_needs_a_person_are_never_retried(error, raised):
    call, slept = Answers(error), []
    with pytest.raises(raised):
        call_with_policy(call, backoff=Backoff(4, 0.01), sleep=slept.append)
    assert call.calls == 1 and slept == []


def test_a_401_refreshes_the_session_once():
    refreshed: list[bool] = []
    expired = SessionExpiredError(401, "INVALID_SESSION_ID", "expired")
    call = Answers(expired)
    assert call_with_policy(call, refresh=lambda: refreshed.append(True)) == "ok"
    assert call.calls == 2 and refreshed == [True]
    call = Answers(expired, SessionExpiredError(401, "INVALID_SESSION_ID", "still expired"))
    with pytest.raises(SessionExpiredError, match="still expired"):
        call_with_policy(call, refresh=lambda: refreshed.append(True), sleep=lambda _: None)
    assert call.calls == 2 and len(refreshed) == 2


# -- its users ---------------------------------------------------------------------------------
class FakeSession:
    """Answers (status, body) in turn, the last one for good."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers, self.tokens = list(answers), []

    def request(self, method: str, url: str, *, headers: dict[str, str], **_: Any):
        self.tokens.append(headers["Authorization"])
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        response = requests.Response()
        response.status_code, response._content = status, requests.compat.json.dumps(body).encode()
        return response


def _client(session: FakeSession, **options: Any) -> tuple[BulkClient, list[float]]:
    slept: list[float] = []
    client = BulkClient(
        session, "https://sf", "old", poll_interval=0.01, sleep=slept.append, **options
    )
    return client, slept


def test_bulk_calls_retry_5xx_and_refresh_once_on_401():
    session = FakeSession(
        (503, rest(503, "SERVER_UNAVAILABLE")[2]),
        (401, rest(401, "INVALID_SESSION_ID")[2]),
        (200, {"id": "750"}),
    )
    client, slept = _client(session, refresh_token=lambda: "new")
    assert client._call("POST", "/ingest").json() == {"id": "750"}
    assert session.tokens == ["Bearer old", "Bearer old", "Bearer new"] and slept == [0.02]
    stuck, _ = _client(
        FakeSession((401, rest(401, "INVALID_SESSION_ID")[2])), refresh_token=lambda: "new"
    )
    with pytest.raises(SessionExpiredError):
        stuck._call("GET", "/ingest/750")
    budget, slept = _client(FakeSession((403, rest(403, "REQUEST_LIMIT_EXCEEDED")[2])))
    with pytest.raises(RequestLimitExceededError):
        budget._call("GET", "/ingest/750")
    assert slept == []


class FakeBulk:
    """Fails the rows whose key is in `errors` (key -> sf__Error texts, one per attempt)."""

    def __init__(self, errors: dict[str, list[str]], unprocessed: set[str] = frozenset()) -> None:
        self.errors, self.unprocessed, self.sent = errors, unprocessed, []

    def ingest_many(self, requests: list[IngestRequest]) -> list[IngestResult]:
        return [self.ingest(r.object_name, r.operation, r.rows, r.key) for r in requests]

    def ingest(self, object_name: str, operation: str, spool: CsvSpool, external_id_field: str):
        rows = [
            r for part in spool.parts() for r in csv.DictReader(io.StringIO(part.data.decode()))
        ]
        self.sent.append([r["K__c"] for r in rows])
        result = IngestResult("K__c", [JobSummary("750", "JobComplete", len(rows), 0)], len(rows))
        for r in rows:
            texts = self.errors.get(r["K__c"]) or []
            if r["K__c"] in self.unprocessed:
                result.unprocessed.append(r)
            elif texts:
                result.failed.append({"sf__Id": "", "sf__Error": texts.pop(0), **r})
            else:
                result.succeeded_keys.append(r["K__c"])
        return result


def test_in_load_retries_resend_only_retry_now_rows_with_the_policy_backoff(sqlite_url):
    upgrade(sqlite_url)
    lock = "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access:--"
    bulk = FakeBulk(
        {"a": [lock], "b": [lock] * 9, "c": ["REQUIRED_FIELD_MISSING:Required:Name --"]},
        unprocessed={"d"},
    )
    slept: list[float] = []
    loader = BulkLoader(
        bulk, make_session_factory(sqlite_url), sleep=slept.append, row_retry=Backoff(3, 0.5)
    )
    outcome = loader.upsert("Task", "K__c", [{"K__c": key} for key in "abcde"])
    assert bulk.sent == [list("abcde"), ["a", "b"], ["b"]] and slept == [0.5, 1.0]
    assert outcome.accepted_keys == {"a", "e"}
    codes = {key: (r.error_code, r.retryable) for key, r in outcome.rejected.items()}
    assert codes == {
        "b": ("UNABLE_TO_LOCK_ROW", True),  # still locked after the in-load retries: next run
        "c": ("REQUIRED_FIELD_MISSING", False),
        "d": ("UNPROCESSED", True),  # rides along with the next run, not resent now
    }
    with loader.sessions() as session:
        riding = deadletters.open_letters(session, retryable_only=True, object_name="Task")
    assert sorted(letter.record_key for letter in riding) == ["b", "d"]
