"""Service-account tokens: a JWT assertion signed RS256 with the app's private key, exchanged
at ``https://auth.worksmobile.com/oauth2/v2.0/token``, cached until shortly before expiry."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
import requests

from talklog.lineworks.errors import (
    LineWorksAuthError,
    LineWorksRetryableError,
    answer_of,
    redact,
)

AUTH_URL = "https://auth.worksmobile.com/oauth2/v2.0/token"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_SCOPES = ("monitoring.read", "directory.read", "contact.read")
MAX_ASSERTION_LIFETIME = dt.timedelta(minutes=60)
ASSERTION_LIFETIME = dt.timedelta(minutes=30)
RENEW_BEFORE_S = 300.0
"""A cached token is renewed this long before LINE WORKS says it expires."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceAccount:
    """The app and its service account (Developer Console); secrets stay out of `repr`."""

    client_id: str
    client_secret: str = field(repr=False)
    service_account_id: str = ""
    private_key: str = field(repr=False, default="")
    scopes: tuple[str, ...] = DEFAULT_SCOPES

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message."""
        return (self.client_secret, self.private_key)


def assertion(
    account: ServiceAccount, now: dt.datetime, lifetime: dt.timedelta = ASSERTION_LIFETIME
) -> str:
    """The signed JWT: iss = client id, sub = service account id, iat = now, exp = now +
    `lifetime` (at most 60 minutes)."""
    if not dt.timedelta(0) < lifetime <= MAX_ASSERTION_LIFETIME:
        raise ValueError(f"the assertion lifetime must be within 60 minutes, got {lifetime}")
    if not account.service_account_id:
        raise LineWorksAuthError("the connection has no service account id")
    issued = int(now.timestamp())
    claims = {
        "iss": account.client_id,
        "sub": account.service_account_id,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
    }
    try:
        return jwt.encode(claims, account.private_key, algorithm="RS256")
    except (ValueError, TypeError, jwt.exceptions.PyJWTError):
        raise LineWorksAuthError(
            "the connection's private key is not an RSA private key in PEM form"
            " (the key file the Developer Console issued for the service account)"
        ) from None


@dataclass
class _Token:
    value: str = field(repr=False)
    renew_at: float


class TokenSource:
    """Access tokens of one service account, fetched once and reused until shortly before
    they expire; `renew` forces a new one (after a 401)."""

    def __init__(
        self,
        session: requests.Session,
        account: ServiceAccount,
        auth_url: str = AUTH_URL,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.account = account
        self.auth_url = auth_url
        self.clock = clock
        self.timeout = timeout
        self._token: _Token | None = None
        self.fetched = 0

    def token(self) -> str:
        """A valid access token (cached)."""
        if self._token is None or self.clock() >= self._token.renew_at:
            self._token = self._fetch()
        return self._token.value

    def renew(self) -> str:
        """Drop the cached token and fetch a new one."""
        self._token = None
        return self.token()

    def secrets(self) -> tuple[str, ...]:
        current = (self._token.value,) if self._token else ()
        return (*self.account.secrets(), *current)

    def _fetch(self) -> _Token:
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        form = {
            "assertion": assertion(self.account, now),
            "grant_type": GRANT_TYPE,
            "client_id": self.account.client_id,
            "client_secret": self.account.client_secret,
            "scope": " ".join(self.account.scopes),
        }
        response = self.session.post(self.auth_url, data=form, timeout=self.timeout)
        if response.status_code != 200:
            raise self._refusal(response)
        body = response.json()
        self.fetched += 1
        lifetime = float(body.get("expires_in") or 3600)  # LINE WORKS sends it as text or int
        log.info("LINE WORKS token fetched (valid %d s, scope %s)", lifetime, body.get("scope"))
        renew_at = self.clock() + max(lifetime - RENEW_BEFORE_S, lifetime / 2)
        return _Token(str(body["access_token"]), renew_at)

    def _refusal(self, response: requests.Response) -> Exception:
        code, description = answer_of(response)
        detail = redact(f"{code}: {description}".strip(": "), self.account.secrets())
        status = response.status_code
        where = f"the LINE WORKS token endpoint {self.auth_url} answered HTTP {status}"
        if status == 429 or status >= 500:
            return LineWorksRetryableError(f"{where} {detail}".rstrip(), status=status, code=code)
        return LineWorksAuthError(
            f"{where} {detail}; check the connection's client id and secret, service account"
            f" id, private key and scopes ({' '.join(self.account.scopes)}) against the app in"
            " the Developer Console",
            status=status,
            code=code or None,
        )
