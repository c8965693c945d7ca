"""What the project's hooks share: the connection read once, a session trusting a CA file."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import requests


class ConnectionOnce:
    """Reads the hook's Airflow connection (``self.conn_id``, through the hook's
    ``get_connection``) once, and its extras. Put it before the hook class in the bases."""

    conn_id: str

    @cached_property
    def connection(self) -> Any:
        """The Airflow connection (read once)."""
        return self.get_connection(self.conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        return self.connection.extra_dejson


def trusting_ca(session: requests.Session | None, ca_bundle: str | None) -> requests.Session:
    """`session` (a new one when None), trusting `ca_bundle` when one is configured."""
    session = session or requests.Session()
    if ca_bundle:
        session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
        session.verify = ca_bundle
    return session
