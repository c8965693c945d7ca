"""What the LINE WORKS emulator knows: the app, its tokens, downloads, faults and counters."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from talklog_dev.lineworks_emulator.talks import Additions
from talklog_dev.synth.lineworks import LineWorksWorld

ALL_SCOPES = ("monitoring.read", "directory.read", "contact.read")
MAX_ASSERTION_S = 3600
CLOCK_SKEW_S = 60
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class AppConfig:
    """The app and service account as the Developer Console shows them."""

    client_id: str
    client_secret: str
    service_account_id: str
    public_key_pem: str
    scopes: tuple[str, ...] = ALL_SCOPES
    token_lifetime_s: int = 86_400
    file_url_lifetime_s: int = 300
    rate_per_minute: int = 240


@dataclass
class Faults:
    """Switchable faults (``PUT /__emulator__/faults``)."""

    download_error: bool = False  # the file ends with a downloadLogs error line half way
    truncate: str = ""  # "record": the last record cut; "length": fewer bytes than declared
    header: str | None = None  # this header line instead of the language's
    throttle_next: int = 0  # the next N API calls answer 429
    fail_next: int = 0  # the next N API calls answer 500

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown faults: {', '.join(sorted(unknown))}")
        if changes.get("truncate", "") not in ("", "record", "length", None):
            raise ValueError("truncate is one of '', 'record', 'length'")
        for name, value in changes.items():
            setattr(self, name, value if value is not None else getattr(Faults(), name))


@dataclass
class Token:
    scopes: frozenset[str]
    expires_at: float


@dataclass
class Download:
    """A prepared file behind an expiring URL."""

    path: Path
    size: int
    send_bytes: int
    expires_at: float
    done: bool = False


class AssertionRefused(Exception):
    """The token request is refused: (HTTP status, OAuth error, description)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass
class EmulatorState:
    config: AppConfig
    world: LineWorksWorld
    files_dir: Path
    faults: Faults = field(default_factory=Faults)
    tokens: dict[str, Token] = field(default_factory=dict)
    downloads: dict[str, Download] = field(default_factory=dict)
    busy: str | None = None
    renamed: dict[str, str] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    prepare_seconds: float = 0.0  # the emulator's own work: rendering files before the 302
    recent: dict[str, deque[float]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    additions: Additions = field(init=False)  # talks and contact names added by tests

    def __post_init__(self) -> None:
        self.additions = Additions(self.world)

    # -- tokens ----------------------------------------------------------------------------
    def issue_token(self, form: dict[str, str]) -> dict[str, Any]:
        """The token answer for a valid form; `AssertionRefused` otherwise."""
        config = self.config
        if form.get("grant_type") != GRANT_TYPE:
            raise AssertionRefused(400, "unsupported_grant_type", "grant_type must be jwt-bearer")
        if form.get("client_id") != config.client_id or not secrets.compare_digest(
            form.get("client_secret", ""), config.client_secret
        ):
            raise AssertionRefused(401, "invalid_client", "client authentication failed")
        self._check_assertion(form.get("assertion", ""))
        requested = frozenset(form.get("scope", "").split())
        if not requested or not requested <= set(config.scopes):
            extra = ", ".join(sorted(requested - set(config.scopes))) or "(none requested)"
            raise AssertionRefused(400, "invalid_scope", f"scope not allowed for the app: {extra}")
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = Token(requested, time.time() + config.token_lifetime_s)
        return {
            "access_token": token,
            "refresh_token": secrets.token_urlsafe(32),
            "scope": " ".join(sorted(requested)),
            "token_type": "Bearer",
            "expires_in": str(config.token_lifetime_s),  # LINE WORKS sends a string
        }

    def _check_assertion(self, assertion: str) -> None:
        try:
            claims = jwt.decode(
                assertion,
                self.config.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iss", "sub", "iat", "exp"]},
                leeway=CLOCK_SKEW_S,
            )
        except jwt.ExpiredSignatureError:
            raise AssertionRefused(400, "invalid_grant", "the assertion has expired") from None
        except jwt.InvalidSignatureError:
            raise AssertionRefused(400, "invalid_grant", "invalid assertion signature") from None
        except jwt.PyJWTError as error:
            raise AssertionRefused(400, "invalid_request", f"invalid assertion: {error}") from None
        config = self.config
        if claims["iss"] != config.client_id or claims["sub"] != config.service_account_id:
            raise AssertionRefused(400, "invalid_grant", "iss or sub does not match the app")
        if int(claims["exp"]) - int(claims["iat"]) > MAX_ASSERTION_S:
            raise AssertionRefused(400, "invalid_grant", "exp must be within 60 minutes of iat")
        if int(claims["iat"]) > time.time() + CLOCK_SKEW_S:
            raise AssertionRefused(400, "invalid_grant", "iat is in the future")

    def token_of(self, authorization: str | None) -> Token | None:
        """The valid token of an ``Authorization: Bearer`` header."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        with self.lock:
            token = self.tokens.get(authorization.removeprefix("Bearer ").strip())
        return token if token is not None and token.expires_at > time.time() else None

    def expire_tokens(self) -> int:
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = 0.0
            return len(self.tokens)

    # -- rate limit and injected failures ---------------------------------------------------
    def throttled(self, api: str) -> bool:
        """Whether this call is over the per-minute rate (or a throttle fault)."""
        with self.lock:
            if self.faults.throttle_next > 0:
                self.faults.throttle_next -= 1
                return True
            now = time.monotonic()
            recent = self.recent.setdefault(api, deque())
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= self.config.rate_per_minute:
                return True
            recent.append(now)
            return False

    def failing(self) -> bool:
        with self.lock:
            if self.faults.fail_next > 0:
                self.faults.fail_next -= 1
                return True
            return False

    # -- downloads ----------------------------------------------------------------------------
    def download_running(self) -> bool:
        """A previous download whose file was not fully sent and whose URL has not expired."""
        with self.lock:
            current = self.downloads.get(self.busy) if self.busy else None
            if current is None or current.done or current.expires_at <= time.time():
                self.busy = None
                return False
            return True

    def finish(self, file_id: str) -> None:
        with self.lock:
            download = self.downloads.get(file_id)
            if download is not None:
                download.done = True
            if self.busy == file_id:
                self.busy = None

    def reset(self) -> None:
        with self.lock:
            self.faults = Faults()
            self.tokens.clear()
            self.busy = None
            for download in self.downloads.values():
                download.path.unlink(missing_ok=True)
            self.downloads.clear()
            self.renamed.clear()
            self.additions.clear()
            self.calls.clear()
            self.refused.clear()
            self.prepare_seconds = 0.0
            self.recent.clear()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(self.calls),
                "refused": dict(self.refused),
                "prepare_seconds": round(self.prepare_seconds, 3),
            }
