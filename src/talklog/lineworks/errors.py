"""What can go wrong talking to LINE WORKS, and what the job does about it.

Every failure carries a `Failure` class of the project's one policy
(`talklog.salesforce.failures.Failure`): ``RETRY_NOW`` (429, 5xx, a connection cut: retried
with a backoff), ``NEEDS_A_PERSON`` (a wrong key, a missing scope, a refused parameter, a file
that is not a complete talk export) or ``STOP_THE_RUN`` (a token LINE WORKS keeps refusing).
Messages name the API, the HTTP status and LINE WORKS' code; they never quote a secret, a
token or a talk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import requests

from talklog.salesforce.failures import Failure

MAX_DESCRIPTION = 200
REDACTED = "[redacted]"


class LineWorksError(Exception):
    """LINE WORKS refused a request or sent something unusable; `failure` says what to do."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        failure: Failure = Failure.NEEDS_A_PERSON,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.failure = failure


class LineWorksAuthError(LineWorksError):
    """The token endpoint refused the service account (client id/secret, key, scopes)."""


class LineWorksScopeError(LineWorksError):
    """The token lacks the scope an API needs (403)."""


class LineWorksRetryableError(LineWorksError):
    """A transient answer (429, 5xx, the connection cut, a concurrent download refused)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message, status=status, code=code, failure=Failure.RETRY_NOW)


class TalkDownloadError(LineWorksError):
    """A talk download that must not be loaded: error trailer, truncated, unknown header."""


class PeriodError(ValueError):
    """A time range LINE WORKS would refuse (naive times, reversed, too long)."""


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced (a server may echo what it was sent)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def answer_of(response: requests.Response) -> tuple[str, str]:
    """(code, description) of an error answer: ``{"code", "description"}`` of the APIs, or
    ``{"error", "error_description"}`` of the token endpoint; ("", "") for anything else (a
    body that is neither might echo the request, so nothing of it is kept)."""
    try:
        body: Any = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    code = body.get("code") or body.get("error") or ""
    description = body.get("description") or body.get("error_description") or ""
    if not isinstance(description, str):
        description = json.dumps(description, ensure_ascii=False)
    return str(code)[:80], description[:MAX_DESCRIPTION]


def failure_of_status(status: int) -> Failure:
    """The class of an API answer by its status (the token endpoint has its own rules)."""
    if status == 429 or status >= 500:
        return Failure.RETRY_NOW
    if status == 401:
        return Failure.STOP_THE_RUN
    return Failure.NEEDS_A_PERSON


def retryable(exc: BaseException) -> bool:
    """Whether `exc` is worth another try after a pause."""
    if isinstance(exc, LineWorksError):
        return exc.failure is Failure.RETRY_NOW
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not pass by itself
    return isinstance(exc, requests.ConnectionError | requests.Timeout)
