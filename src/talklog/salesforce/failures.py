"""The one failure policy for Salesforce: every answer is classified into one of four classes.

``RETRY_NOW``: transient; retried in the same call (or, for rows, in the same load) with an
exponential backoff. ``RETRY_NEXT_RUN``: a retryable dead letter that rides along with the
next run (also what a ``RETRY_NOW`` row becomes once the in-load retries are spent).
``NEEDS_A_PERSON``: a dead letter (or an error raised) that waits for a fix and a replay.
``STOP_THE_RUN``: nothing else this run does can succeed (daily API budget, credentials).

This module holds the only parser of Salesforce error bodies (REST error arrays, OAuth
errors, Bulk ``sf__Error`` texts, Bulk job error messages), the only lists of codes that
decide retries, and the only retry helper (`call_with_policy`, built on tenacity).
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import tenacity

log = logging.getLogger(__name__)
T = TypeVar("T")


class Failure(enum.Enum):
    """What the policy does with a Salesforce answer."""

    RETRY_NOW = "retry now"
    RETRY_NEXT_RUN = "retry next run"
    NEEDS_A_PERSON = "needs a person"
    STOP_THE_RUN = "stop the run"

    @property
    def retryable(self) -> bool:
        """Whether a dead letter of this class is retried automatically by later runs."""
        return self in (Failure.RETRY_NOW, Failure.RETRY_NEXT_RUN)


RETRY_NOW_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE", "SERVER_UNAVAILABLE"}
)
"""Transient at any HTTP status, and for rows: retried at once after a backoff."""
RETRY_NEXT_RUN_CODES = frozenset(
    {
        "UNPROCESSED",  # the Bulk job ended before the row was processed
        "JOB_ABORTED",  # the Bulk job was aborted (rows unprocessed)
        "JOB_FAILED",  # the Bulk job failed without an input error (rows unprocessed)
        "REQUEST_RUNNING_TOO_LONG",
        "QUERY_TIMEOUT",
        "TIMEOUT",  # a Bulk job still running after the client's timeout
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",  # undone for another record's error
    }
)
"""Errors that pass by themselves, but not within seconds: the next run tries again."""
STOP_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "INVALID_SESSION_ID"})
"""A request answered so stops the run; a row's error of this kind passes by the next run."""
NOT_SYNCED_YET = "Foreign key external ID"
"""In a row's message: the lookup target is not in Salesforce yet (a later sync brings it)."""
OWNER_REFUSED_CODES = frozenset({"INACTIVE_OWNER_OR_USER"})
"""A row refused for its OwnerId (a user deactivated after the run checked its owners): sent
again once in the same load without OwnerId, so the default owner (the integration user) owns
it; refused again, it needs a person."""
JOB_ENDS = ("Failed", "Aborted")


@dataclass(frozen=True)
class SfError:
    """One Salesforce error and its class. `status` is None for a row's (or a job's) error."""

    status: int | None
    code: str
    message: str
    fields: tuple[str, ...] = ()
    failure: Failure = Failure.NEEDS_A_PERSON

    @property
    def fields_text(self) -> str | None:
        """The fields comma-separated (as ``sf__Error`` has them), None when there are none."""
        return ",".join(self.fields) or None


def classify(status: int | None, code: str, message: str = "") -> Failure:
    """The class of an answer: an HTTP status + errorCode, or (status None) a row's error."""
    if code in RETRY_NOW_CODES or (status is not None and status >= 500):
        return Failure.RETRY_NOW
    if code in STOP_CODES or status == 401:
        return Failure.RETRY_NEXT_RUN if status is None else Failure.STOP_THE_RUN
    if code in RETRY_NEXT_RUN_CODES or NOT_SYNCED_YET in message:
        return Failure.RETRY_NEXT_RUN
    return Failure.NEEDS_A_PERSON


def sf_error(status: int | None, code: str, message: str, fields: tuple[str, ...] = ()) -> SfError:
    """An `SfError` classified by `classify`."""
    return SfError(status, code, message, fields, classify(status, code, message))


# -- the parser --------------------------------------------------------------------------------
def error_of_body(status: int | None, body: Any) -> SfError:
    """An error response's body: a REST error array, an OAuth error, or anything else."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except ValueError:
            return sf_error(status, "UNKNOWN", str(body)[:200])
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, Mapping) and ("errorCode" in first or "statusCode" in first):
        code = str(first.get("errorCode") or first.get("statusCode"))  # collections: statusCode
        fields = tuple(str(name) for name in first.get("fields") or ())
        return sf_error(status, code, str(first.get("message", "")), fields)
    if isinstance(first, Mapping) and "error" in first:
        return _oauth_error(status, first)
    return sf_error(status, "UNKNOWN", str(body)[:200])


def _oauth_error(status: int | None, body: Mapping[str, Any]) -> SfError:
    """``{"error", "error_description"}`` of the token endpoint: a refused login stops the run."""
    server_side = status is not None and status >= 500
    failure = Failure.RETRY_NOW if server_side else Failure.STOP_THE_RUN
    code, message = str(body["error"]), str(body.get("error_description", ""))
    return SfError(status, code, message, (), failure)


def error_of_response(response: requests.Response) -> SfError:
    """The error a failed `requests` response carries."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return error_of_body(response.status_code, body)


def row_error(text: str) -> SfError:
    """A Bulk API 2.0 row's ``sf__Error`` (``CODE:message:fields --``)."""
    code, _, rest = text.partition(":")
    message, sep, fields = rest.rpartition(":")
    if not sep:  # no fields part
        message, fields = rest.strip().removesuffix("--"), ""
    names = (name.strip() for name in fields.strip().removesuffix("--").split(","))
    return sf_error(None, code.strip(), message.strip(), tuple(name for name in names if name))


def job_error(state: str, error_message: str | None) -> SfError | None:
    """Why a Bulk job that ended Failed or Aborted left its rows (None for other states).

    ``InvalidBatch : Field name not found : X`` gives code INVALIDBATCH (an input error: a
    person must fix it); a job that ended without such a reason is JOB_FAILED or JOB_ABORTED.
    """
    if state not in JOB_ENDS:
        return None
    text = (error_message or "").strip()
    prefix, sep, rest = text.partition(" : ")
    if sep and prefix.isalnum():
        return sf_error(None, prefix.upper(), rest.strip())
    return sf_error(None, f"JOB_{state.upper()}", text or f"the Bulk job ended {state}")


UNPROCESSED = sf_error(None, "UNPROCESSED", "the Bulk job ended before this row")


def without_refused_owner(error: SfError, row: Mapping[str, Any]) -> dict[str, Any] | None:
    """`row` to send again without its OwnerId (the default owner) when Salesforce refused
    it for its owner; None when the policy does not resend it (other errors, no owner sent)."""
    if error.code not in OWNER_REFUSED_CODES or not row.get("OwnerId"):
        return None
    return {**row, "OwnerId": ""}  # an empty Bulk cell: the default owner on insert


def error_of_exception(exc: BaseException) -> SfError | None:
    """The Salesforce error an exception carries: ours, a `requests` connection failure, or
    one with the HTTP `status` and REST `content` (simple-salesforce's); None for others."""
    if isinstance(exc, BulkApiError):
        return exc.error
    if isinstance(exc, requests.exceptions.SSLError):  # a certificate problem does not pass
        return SfError(None, "SSL_ERROR", type(exc).__name__, (), Failure.NEEDS_A_PERSON)
    if isinstance(exc, requests.Timeout):
        return SfError(None, "TIMED_OUT", type(exc).__name__, (), Failure.RETRY_NOW)
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return SfError(None, "CONNECTION_ERROR", type(exc).__name__, (), Failure.RETRY_NOW)
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "content"):
        return error_of_body(status, exc.content)
    return None


# -- exceptions ------------------------------------------------------------------------------
class BulkApiError(Exception):
    """Salesforce refused a request (HTTP status, errorCode, message); `error` has its class."""

    def __init__(
        self, status: int | None, code: str, message: str, error: SfError | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.error = error or sf_error(status, code, message)


class SessionExpiredError(BulkApiError):
    """401 INVALID_SESSION_ID and no way (or no luck) refreshing the session."""


class RequestLimitExceededError(BulkApiError):
    """403 REQUEST_LIMIT_EXCEEDED: the org's daily API budget is spent; stop and alert."""


def exception_for(error: SfError) -> BulkApiError:
    """The exception that reports `error`."""
    kind = BulkApiError
    if error.status == 401:
        kind = SessionExpiredError
    elif error.code == "REQUEST_LIMIT_EXCEEDED":
        kind = RequestLimitExceededError
    return kind(error.status, error.code, error.message, error)


# -- the retry helper ------------------------------------------------------------------------
@dataclass(frozen=True)
class Backoff:
    """`attempts` tries in all; the pause before retry n is ``first_s * 2**(n-1)``, at most
    `max_s`."""

    attempts: int
    first_s: float
    max_s: float = 60.0

    def delay(self, retry: int) -> float:
        return min(self.first_s * 2 ** (retry - 1), self.max_s)


QUERY_RETRY = Backoff(attempts=4, first_s=1.0)
"""A run's SOQL queries: 1, 2, 4 s."""
ROW_RETRY = Backoff(attempts=4, first_s=2.0)
"""Rows answered RETRY_NOW in a Bulk load, sent again as a new job: 2, 4, 8 s."""


def call_with_policy(
    call: Callable[[], T],
    *,
    backoff: Backoff = QUERY_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    refresh: Callable[[], object] | None = None,
) -> T:
    """`call()`, retried while it raises a RETRY_NOW answer (at most `backoff.attempts` tries).

    A 401 calls `refresh` (a new session) once and tries again at once. A STOP_THE_RUN answer
    raises `RequestLimitExceededError` / `SessionExpiredError` / `BulkApiError`; any other
    exception (a lasting outage after the last try included) is raised unchanged.
    """
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(backoff.attempts),
        wait=lambda state: backoff.delay(state.attempt_number),
        retry=tenacity.retry_if_exception(_retry_now),
        sleep=sleep,
        before_sleep=_log_retry(backoff),
        reraise=True,
    )
    try:
        return retrying(_refreshing(call, refresh))
    except Exception as exc:
        error = error_of_exception(exc)
        if error is None or error.failure is not Failure.STOP_THE_RUN:
            raise
        stop = exception_for(error)
        if type(exc) is type(stop):
            raise
        raise stop from exc


def _refreshing(call: Callable[[], T], refresh: Callable[[], object] | None) -> Callable[[], T]:
    """`call` that, on its first 401, renews the session through `refresh` and calls again."""
    refreshed = False

    def attempt() -> T:
        nonlocal refreshed
        try:
            return call()
        except Exception as exc:
            error = error_of_exception(exc)
            if refresh is None or refreshed or error is None or error.status != 401:
                raise
            refreshed = True
            refresh()
            return call()

    return attempt


def _retry_now(exc: BaseException) -> bool:
    error = error_of_exception(exc)
    return error is not None and error.failure is Failure.RETRY_NOW


def _log_retry(backoff: Backoff) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        error = error_of_exception(exc) if exc else None
        log.warning(
            "Salesforce answered %s %s; retry %d of %d in %.2f s",
            error.status if error else None,
            error.code if error else type(exc).__name__,
            state.attempt_number,
            backoff.attempts - 1,
            state.upcoming_sleep,
        )

    return before_sleep
