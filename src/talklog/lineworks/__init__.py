"""The LINE WORKS API 2.0 client (plain Python, no Airflow): service-account tokens, staff,
contacts and the Monitoring API's message-content download."""

from talklog.lineworks.auth import AUTH_URL, DEFAULT_SCOPES, ServiceAccount, TokenSource, assertion
from talklog.lineworks.client import BASE_URL, DOWNLOAD_PATH, SCOPES, LineWorksClient
from talklog.lineworks.directory import Contact, StaffUser
from talklog.lineworks.errors import (
    LineWorksAuthError,
    LineWorksError,
    LineWorksRetryableError,
    LineWorksScopeError,
    PeriodError,
    TalkDownloadError,
)
from talklog.lineworks.talk_files import HEADERS, LANGUAGES, TalkFile, check_talk_file
from talklog.lineworks.times import check_period, format_time

__all__ = [
    "AUTH_URL",
    "BASE_URL",
    "DEFAULT_SCOPES",
    "DOWNLOAD_PATH",
    "HEADERS",
    "LANGUAGES",
    "SCOPES",
    "Contact",
    "LineWorksAuthError",
    "LineWorksClient",
    "LineWorksError",
    "LineWorksRetryableError",
    "LineWorksScopeError",
    "PeriodError",
    "ServiceAccount",
    "StaffUser",
    "TalkDownloadError",
    "TalkFile",
    "TokenSource",
    "assertion",
    "check_period",
    "check_talk_file",
    "format_time",
]
