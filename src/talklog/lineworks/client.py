"""The LINE WORKS API 2.0 client: staff, contacts and the message-content download.

Plain Python on a `requests.Session` the caller passes (its TLS trust, proxies, adapters).
Every call carries ``Authorization: Bearer <token>`` from a cached service-account token,
renewed once on 401. 429 and 5xx answers, a refused concurrent download and a lost
connection are retried with the project's backoff (`Backoff`, on tenacity like
`talklog.salesforce.failures.call_with_policy`); anything else raises a `LineWorksError` at
once, with a message that names the API, the status and what to check.

The download follows LINE WORKS' 302 itself (requests would drop the Authorization header on
another host, or send it on a downgrade to http): the ``Location`` is fetched with the token
over HTTPS only, streamed to ``<to_path>.part`` in 64 KiB chunks, checked
(`talklog.lineworks.talk_files`) and only then renamed to `to_path`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import tenacity

from talklog.lineworks.auth import AUTH_URL, ServiceAccount, TokenSource
from talklog.lineworks.directory import Contact, StaffUser
from talklog.lineworks.errors import (
    LineWorksError,
    LineWorksRetryableError,
    LineWorksScopeError,
    PeriodError,
    TalkDownloadError,
    answer_of,
    redact,
    retryable,
)
from talklog.lineworks.talk_files import LANGUAGES, TalkFile, check_talk_file
from talklog.lineworks.times import (
    MAX_CONTACTS_PERIOD,
    check_period,
    format_time,
    query_string,
    slices,
)
from talklog.salesforce.failures import Backoff, Failure

BASE_URL = "https://www.worksapis.com/v1.0"
DOWNLOAD_PATH = "/monitoring/message-contents/download"
SCOPES = {"/users": "directory.read", "/contacts": "contact.read", DOWNLOAD_PATH: "monitoring.read"}
"""The scope each API needs."""
API_RETRY = Backoff(attempts=6, first_s=5.0, max_s=60.0)
"""5, 10, 20, 40, 60 s: past the minute in which LINE WORKS resets its rate limit."""
BOT_FILTERS = ("include", "exclude", "only")
SEARCH_DATE_TYPES = ("CREATED_TIME", "MODIFIED_TIME")
CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)
T = TypeVar("T")
log = logging.getLogger(__name__)


class LineWorksClient:
    """One service account's view of LINE WORKS (see the module docstring)."""

    def __init__(
        self,
        session: requests.Session,
        account: ServiceAccount,
        *,
        base_url: str = BASE_URL,
        auth_url: str = AUTH_URL,
        backoff: Backoff = API_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.tokens = TokenSource(session, account, auth_url, clock=clock, timeout=timeout)
        self.backoff = backoff
        self.sleep = sleep
        self.timeout = timeout
        self.api_calls = 0
        """HTTP requests sent to the APIs (token requests not counted)."""

    # -- the APIs ------------------------------------------------------------------------------
    def token(self) -> str:
        """A valid access token (cached; fetched with the backoff on 429/5xx)."""
        return self._retrying("POST token", self.tokens.token)

    def users(self, *, domain_id: int | None = None, count: int = 100) -> Iterator[StaffUser]:
        """Every member, page by page (``responseMetaData.nextCursor``)."""
        for item in self._pages("/users", "users", {"domainId": domain_id, "count": count}):
            yield StaffUser.of(item)

    def contacts(
        self,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        search_date_type: str = "MODIFIED_TIME",
        *,
        count: int = 100,
    ) -> Iterator[Contact]:
        """Every contact, or those created/modified in [start, end] (read in 7-day periods,
        the longest the API takes; a contact is yielded once)."""
        if search_date_type not in SEARCH_DATE_TYPES:
            raise ValueError(f"search_date_type must be one of {', '.join(SEARCH_DATE_TYPES)}")
        if (start is None) != (end is None):
            raise PeriodError("give both start and end, or neither")
        periods: Iterable[tuple[dt.datetime, dt.datetime] | None] = [None]
        if start is not None and end is not None:
            periods = slices(start, end, MAX_CONTACTS_PERIOD)
        seen: set[str] = set()
        for period in periods:
            params: dict[str, Any] = {"count": count}
            if period is not None:
                params["searchDateType"] = search_date_type
                params["startDateTime"] = format_time(period[0], milliseconds=True)
                params["endDateTime"] = format_time(period[1], milliseconds=True)
            for item in self._pages("/contacts", "contacts", params):
                contact = Contact.of(item)
                if contact.contact_id not in seen:
                    seen.add(contact.contact_id)
                    yield contact

    def download_talks(
        self,
        start: dt.datetime,
        end: dt.datetime,
        to_path: str | Path,
        *,
        language: str = "ja_JP",
        bot_filter: str = "include",
        domain_id: int | None = None,
    ) -> TalkFile:
        """Download the talks of [start, end] (at most 31 days) to `to_path`, checked.

        Raises `PeriodError`/`ValueError` before sending anything for a period or option
        LINE WORKS would refuse, `TalkDownloadError` for a file that must not be loaded (no
        file is left at `to_path` then), `LineWorksError` for a refused request."""
        check_period(start, end)
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)} (known headers)")
        if bot_filter not in BOT_FILTERS:
            raise ValueError(f"bot_filter must be one of {', '.join(BOT_FILTERS)}")
        params = {
            "startTime": format_time(start),
            "endTime": format_time(end),
            "language": language,
            "botMessageFilterType": bot_filter,
            "domainId": domain_id,
        }
        target = Path(to_path)
        part = target.with_name(target.name + ".part")
        try:
            self._retrying(f"GET {DOWNLOAD_PATH}", lambda: self._download_once(params, part))
            checked = check_talk_file(part, language)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(target)
        log.info("LINE WORKS talks downloaded: %d records, %d bytes", checked.records, checked.size)
        return dataclasses.replace(checked, path=target)

    # -- one request ---------------------------------------------------------------------------
    def _call(
        self,
        path_or_url: str,
        params: Mapping[str, Any] | None = None,
        *,
        expect: tuple[int, ...] = (200,),
        stream: bool = False,
        scope: str | None = None,
    ) -> requests.Response:
        """One GET with the token; a 401 renews the token once and sends it again."""
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        if params:
            url = f"{url}?{query_string(params)}"
        renewed = False
        while True:
            headers = {"Authorization": f"Bearer {self.tokens.token()}"}
            self.api_calls += 1
            response = self.session.get(
                url, headers=headers, allow_redirects=False, stream=stream, timeout=self.timeout
            )
            if response.status_code in expect:
                return response
            if response.status_code == 401 and not renewed:
                response.close()
                renewed = True
                self.tokens.renew()
                continue
            raise self._refusal(path_or_url, response, scope)

    def _refusal(
        self, path_or_url: str, response: requests.Response, scope: str | None
    ) -> LineWorksError:
        code, description = answer_of(response)
        response.close()
        status = response.status_code
        api = urlsplit(path_or_url).path if "://" in path_or_url else path_or_url
        detail = redact(f"{code}: {description}".strip(": "), self.tokens.secrets())
        what = f"LINE WORKS answered GET {api} with HTTP {status} {detail}".rstrip()
        needed = scope or SCOPES.get(api)
        if status == 403:
            return LineWorksScopeError(
                f"{what}: the token lacks the scope {needed} (or the service account lacks the"
                f" permission): add {needed} to the app's scopes in the Developer Console and to"
                " the connection's scopes",
                status=status,
                code=code or None,
            )
        if status == 409:
            return LineWorksRetryableError(
                f"{what}: another download is still running (LINE WORKS refuses concurrent"
                " downloads; run them one at a time)",
                status=status,
                code=code,
            )
        if status == 429 or status >= 500:
            return LineWorksRetryableError(what, status=status, code=code)
        if status == 401:
            return LineWorksError(
                f"{what}: LINE WORKS refused a newly issued token too",
                status=status,
                code=code or None,
                failure=Failure.STOP_THE_RUN,
            )
        return LineWorksError(what, status=status, code=code or None)

    # -- paging, downloading, retrying ---------------------------------------------------------
    def _pages(self, path: str, key: str, params: Mapping[str, Any]) -> Iterator[Any]:
        cursor: str | None = None
        while True:
            query = {**params, "cursor": cursor}
            page = self._retrying(f"GET {path}", functools.partial(self._page, path, query))
            yield from page.get(key) or ()
            cursor = (page.get("responseMetaData") or {}).get("nextCursor")
            if not cursor:
                return

    def _page(self, path: str, query: Mapping[str, Any]) -> Any:
        return self._call(path, query).json()

    def _download_once(self, params: Mapping[str, Any], part: Path) -> int:
        """Ask for the file URL (302), then fetch it with the token (a new URL each try)."""
        scope = SCOPES[DOWNLOAD_PATH]
        response = self._call(DOWNLOAD_PATH, params, expect=(200, *_REDIRECTS), scope=scope)
        for _ in range(MAX_REDIRECTS):
            if response.status_code == 200:
                return _save(response, part)
            location = self._location(response)
            response = self._call(location, expect=(200, *_REDIRECTS), stream=True, scope=scope)
        raise LineWorksError(f"GET {DOWNLOAD_PATH}: more than {MAX_REDIRECTS} redirects")

    def _location(self, response: requests.Response) -> str:
        location = response.headers.get("Location")
        response.close()
        if not location:
            raise LineWorksError(f"GET {DOWNLOAD_PATH}: LINE WORKS redirected without a Location")
        url = urljoin(response.url, location)
        allowed = {"https", urlsplit(self.base_url).scheme}
        if urlsplit(url).scheme not in allowed:
            raise LineWorksError(
                f"GET {DOWNLOAD_PATH}: LINE WORKS redirected the download to a"
                f" {urlsplit(url).scheme} URL; refused (the token must not travel unencrypted)"
            )
        return url

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.backoff.attempts),
            wait=lambda state: self.backoff.delay(state.attempt_number),
            retry=tenacity.retry_if_exception(retryable),
            sleep=self.sleep,
            before_sleep=self._log_retry(what),
            reraise=True,
        )
        try:
            return retrying(call)
        except requests.exceptions.SSLError as exc:
            raise LineWorksError(
                f"{what}: the TLS connection to LINE WORKS failed ({type(exc).__name__}):"
                " check the CA bundle or proxy"
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise LineWorksRetryableError(
                f"{what}: LINE WORKS did not answer ({type(exc).__name__}) in"
                f" {self.backoff.attempts} tries"
            ) from exc

    def _log_retry(self, what: str) -> Callable[[tenacity.RetryCallState], None]:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            status = getattr(exc, "status", None)
            code = getattr(exc, "code", None) or type(exc).__name__
            log.warning(
                "%s: LINE WORKS answered %s %s; retry %d of %d in %.2f s",
                what,
                status,
                code,
                state.attempt_number,
                self.backoff.attempts - 1,
                state.upcoming_sleep,
            )

        return before_sleep


def _save(response: requests.Response, part: Path) -> int:
    """Stream the body to `part` in chunks; a body shorter than its Content-Length (or a
    connection cut half way) is a truncated download."""
    declared = response.headers.get("Content-Length")
    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
    written = 0
    try:
        with part.open("wb") as handle:
            for chunk in response.iter_content(CHUNK_BYTES):
                handle.write(chunk)
                written += len(chunk)
    except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError):
        raise TalkDownloadError(
            f"the talk download is truncated: the connection ended after {written} bytes of"
            f" {declared or 'an unknown length'}; download the period again"
        ) from None
    finally:
        response.close()
    if declared is not None and not encoded and int(declared) != written:
        raise TalkDownloadError(
            f"the talk download is truncated: {written} bytes received, Content-Length"
            f" {declared}; download the period again"
        )
    return written
