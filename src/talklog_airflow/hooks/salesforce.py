"""The project's Salesforce hook: the provider's hook plus My Domain token login and a CA.

Connection (type ``talklog_salesforce``, or the provider's ``salesforce``; default id
``salesforce_default``):

* **instance token login** (the emulator, or a real org's My Domain with a connected app):
  ``host`` = instance URL (``https://127.0.0.1:8443``, ``https://acme.my.salesforce.com``),
  ``login``/``password`` = client id/secret (client credentials flow). With extras
  ``consumer_key``/``consumer_secret`` set, ``login``/``password`` are a user's username and
  password + security token instead (OAuth username-password flow). The token comes from
  ``<host>/services/oauth2/token``; simple-salesforce gets the session id and instance URL.
* **anything else** (no host): exactly the provider's ways (username/password + security token,
  JWT, IP filtering, direct session), since simple-salesforce fixes the login host.

Extras beyond the provider's: ``ca_bundle`` (a CA file to trust: the session then ignores
``REQUESTS_CA_BUNDLE``), ``version`` (API version, default 66.0), ``token_url_mode``
(``instance`` to force or ``login`` to skip the instance token login).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import requests
from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
from simple_salesforce import Salesforce

from talklog.salesforce.bulk import BulkClient
from talklog.salesforce.failures import error_of_response
from talklog_airflow.hooks.common import ConnectionOnce, trusting_ca

DEFAULT_API_VERSION = "66.0"
TOKEN_PATH = "/services/oauth2/token"


class SalesforceAuthError(RuntimeError):
    """The token endpoint refused the connection's credentials (no secrets in the message)."""


class TalkLogSalesforceHook(ConnectionOnce, SalesforceHook):
    """SalesforceHook that can log in at the instance's own token endpoint and trust a local CA."""

    conn_name_attr = "salesforce_conn_id"
    default_conn_name = "salesforce_default"
    conn_type = "talklog_salesforce"
    hook_name = "Salesforce (talk logs: My Domain token login)"

    def __init__(
        self,
        salesforce_conn_id: str = default_conn_name,
        session_id: str | None = None,
        session: requests.Session | None = None,
        api_version: str | None = None,
    ) -> None:
        super().__init__(
            salesforce_conn_id=salesforce_conn_id, session_id=session_id, session=session
        )
        self._api_version = api_version
        self.instance_url: str | None = None

    @property
    def api_version(self) -> str:
        return self._api_version or self._get_field(self.extras, "version") or DEFAULT_API_VERSION

    @cached_property
    def http_session(self) -> requests.Session:
        """The requests session every call uses; it trusts ``ca_bundle`` when one is configured."""
        self.session = trusting_ca(self.session, self._get_field(self.extras, "ca_bundle"))
        return self.session

    def uses_instance_token(self) -> bool:
        """True when the token is fetched from ``<host>/services/oauth2/token``."""
        mode = (self._get_field(self.extras, "token_url_mode") or "").lower()
        if mode in ("instance", "login"):
            return mode == "instance"
        return bool(self.connection.host) and self.session_id is None

    @cached_property
    def conn(self) -> Salesforce:
        """A simple-salesforce client (cached)."""
        if not self.uses_instance_token():
            return self._provider_conn()
        token, instance_url = self.fetch_token()
        sf = Salesforce(
            session_id=token,
            instance_url=instance_url,
            session=self.http_session,
            version=self.api_version,
        )
        # simple-salesforce re-logs in through this callable on 401 INVALID_SESSION_ID.
        sf._salesforce_login_partial = self._login_for_simple_salesforce
        return sf

    def _provider_conn(self) -> Salesforce:
        session = self.http_session
        extras = self.extras
        instance_url = self._get_field(extras, "instance_url") or self.connection.host or None
        self.instance_url = instance_url
        return Salesforce(
            username=self.connection.login,
            password=self.connection.password,
            security_token=self._get_field(extras, "security_token") or None,
            domain=self._get_field(extras, "domain") or None,
            session_id=self.session_id,
            instance=self._get_field(extras, "instance") or None,
            instance_url=instance_url,
            organizationId=self._get_field(extras, "organization_id") or None,
            version=self.api_version,
            proxies=self._get_field(extras, "proxies") or None,
            session=session,
            client_id=self._get_field(extras, "client_id") or None,
            consumer_key=self._get_field(extras, "consumer_key") or None,
            consumer_secret=self._get_field(extras, "consumer_secret") or None,
            privatekey_file=self._get_field(extras, "private_key_file_path") or None,
            privatekey=self._get_field(extras, "private_key") or None,
        )

    def fetch_token(self) -> tuple[str, str]:
        """(access token, instance URL) from the instance's OAuth token endpoint."""
        host = str(self.connection.host).rstrip("/")
        if "://" not in host:
            host = f"https://{host}"
        response = self.http_session.post(host + TOKEN_PATH, data=self._token_form(), timeout=60)
        if response.status_code != 200:
            error = _oauth_error(response)
            raise SalesforceAuthError(
                f"token request to {host}{TOKEN_PATH} failed: HTTP {response.status_code} {error}"
            )
        body = response.json()
        self.session_id = body["access_token"]
        self.instance_url = body.get("instance_url") or host
        return body["access_token"], str(self.instance_url)

    def _token_form(self) -> dict[str, str]:
        connection, extras = self.connection, self.extras
        consumer_key = self._get_field(extras, "consumer_key")
        consumer_secret = self._get_field(extras, "consumer_secret")
        if consumer_key and consumer_secret:
            token = self._get_field(extras, "security_token") or ""
            return {
                "grant_type": "password",
                "client_id": consumer_key,
                "client_secret": consumer_secret,
                "username": connection.login or "",
                "password": (connection.password or "") + token,
            }
        return {
            "grant_type": "client_credentials",
            "client_id": self._get_field(extras, "client_id") or connection.login or "",
            "client_secret": connection.password or "",
        }

    def _login_for_simple_salesforce(self) -> tuple[str, str]:
        token, instance_url = self.fetch_token()
        return token, instance_url.split("://", 1)[-1].rstrip("/")

    def refresh_session(self) -> Salesforce:
        """Log in again after ``401 INVALID_SESSION_ID``; the cached client gets the new session."""
        sf = self.conn
        if self.uses_instance_token():
            token, _ = self.fetch_token()
            sf.session_id = token
            sf._generate_headers()
        else:
            sf._refresh_session()
            self.session_id = sf.session_id
        return sf

    def bulk_client(self, **options: Any) -> BulkClient:
        """A Bulk API 2.0 client on this hook's session; it re-logs in on 401 by itself."""
        sf = self.conn
        instance_url = self.instance_url or f"https://{sf.sf_instance}"

        def refresh() -> str:
            return self.refresh_session().session_id

        return BulkClient(
            self.http_session,
            instance_url,
            sf.session_id,
            api_version=self.api_version,
            refresh_token=refresh if self._can_refresh() else None,
            **options,
        )

    def _can_refresh(self) -> bool:
        return self.uses_instance_token() or self.conn._salesforce_login_partial is not None

    def test_connection(self) -> tuple[bool, str]:
        """Check the credentials with one describe call."""
        try:
            self.describe_object("Account")
        except Exception as exc:  # the UI shows the message
            return False, str(exc)
        return True, "Connection successfully tested"


def _oauth_error(response: requests.Response) -> str:
    """``error: error_description`` of a refused token request (the shared parser's); nothing
    of a body that is not an OAuth or REST error (it might echo the request)."""
    error = error_of_response(response)
    if error.code == "UNKNOWN":
        return ""
    return f"{error.code}: {error.message}".strip(": ")
