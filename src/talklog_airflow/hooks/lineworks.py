"""The LINE WORKS hook: a `LineWorksClient` from an Airflow connection of type ``lineworks``.

Connection (default id ``lineworks_default``):

* ``login`` / ``password``: the app's client id / client secret (Developer Console).
* extras: ``service_account_id``; ``private_key`` (the service account's PEM key; masked by
  Airflow as a sensitive field); ``domain_id`` (group companies; optional); ``scopes``
  (space separated, default ``monitoring.read directory.read contact.read``); ``base_url`` /
  ``auth_url`` (overrides, e.g. the emulator's); ``ca_bundle`` (a CA file to trust).

Modelled on Airflow's HTTP hook and `TalkLogSalesforceHook`: the connection is read once, the
session trusts ``ca_bundle`` when set, ``test_connection`` gets a token and reads one page of
users.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook

from talklog.lineworks import (
    AUTH_URL,
    BASE_URL,
    DEFAULT_SCOPES,
    LineWorksClient,
    LineWorksError,
    ServiceAccount,
)
from talklog.lineworks.client import API_RETRY
from talklog.salesforce.failures import Backoff
from talklog_airflow.hooks.common import ConnectionOnce, trusting_ca


class LineWorksHook(ConnectionOnce, BaseHook):
    """Reaches LINE WORKS API 2.0 as the connection's service account."""

    conn_name_attr = "lineworks_conn_id"
    default_conn_name = "lineworks_default"
    conn_type = "lineworks"
    hook_name = "LINE WORKS"

    def __init__(
        self,
        lineworks_conn_id: str = default_conn_name,
        *,
        session: requests.Session | None = None,
        backoff: Backoff = API_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.conn_id = lineworks_conn_id
        self._session = session
        self.backoff = backoff
        self.sleep = sleep

    def _extra(self, name: str) -> Any:
        """An extra by its plain name or the UI's ``extra__lineworks__<name>`` form."""
        value = self.extras.get(name)
        if value in (None, ""):
            value = self.extras.get(f"extra__{self.conn_type}__{name}")
        return None if value == "" else value

    @property
    def domain_id(self) -> int | None:
        value = self._extra("domain_id")
        return int(value) if value is not None else None

    def account(self) -> ServiceAccount:
        """The service account the connection describes."""
        scopes = str(self._extra("scopes") or " ".join(DEFAULT_SCOPES)).split()
        return ServiceAccount(
            client_id=self.connection.login or "",
            client_secret=self.connection.password or "",
            service_account_id=str(self._extra("service_account_id") or ""),
            private_key=str(self._extra("private_key") or ""),
            scopes=tuple(scopes),
        )

    @cached_property
    def session(self) -> requests.Session:
        """The requests session every call uses; it trusts ``ca_bundle`` when configured."""
        return trusting_ca(self._session, self._extra("ca_bundle"))

    @cached_property
    def client(self) -> LineWorksClient:
        """The client (cached: its token is reused across calls of this hook)."""
        return LineWorksClient(
            self.session,
            self.account(),
            base_url=str(self._extra("base_url") or BASE_URL),
            auth_url=str(self._extra("auth_url") or AUTH_URL),
            backoff=self.backoff,
            sleep=self.sleep,
        )

    def get_conn(self) -> LineWorksClient:
        return self.client

    def test_connection(self) -> tuple[bool, str]:
        """Get a token and read one page of users (needs directory.read)."""
        client = self.client
        try:
            client.token()
            next(iter(client.users(domain_id=self.domain_id, count=1)), None)
        except (LineWorksError, ValueError) as exc:  # the UI shows the message
            return False, str(exc)
        return True, "Connection successfully tested: token issued, users readable"
