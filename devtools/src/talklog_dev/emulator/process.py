"""Running the emulator as a child process, and a handle to reach it (tests, demo, benchmarks).

``run_emulator`` starts ``python -m talklog_dev.emulator serve`` on 127.0.0.1 in its own process
group, waits for its ready file and stops it by process id when the block ends.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from talklog_dev.serving import EmulatorAdmin, run_serving

API_VERSION = "66.0"


@dataclass
class EmulatorHandle(EmulatorAdmin):
    """A running emulator: where it listens, how to authenticate, and its admin API."""

    instance_url: str
    ca_bundle: str
    client_id: str
    client_secret: str
    username: str
    password: str
    pid: int
    _session: requests.Session | None = field(default=None, repr=False)

    def token(self) -> str:
        """A fresh access token from the client-credentials flow."""
        response = self._admin_session().post(
            f"{self.instance_url}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def salesforce(self, version: str = API_VERSION) -> Any:
        """A simple-salesforce client with a fresh session on the emulator."""
        from simple_salesforce import Salesforce

        return Salesforce(
            session_id=self.token(),
            instance_url=self.instance_url,
            session=self.session(),
            version=version,
        )

    def admin_root(self) -> str:
        return f"{self.instance_url}/__emulator__"

    def reset(self, **parts: bool) -> None:
        """Delete records and jobs, zero counters, clear faults (or only the parts named)."""
        self.admin("POST", "reset", parts or None)

    def set_validation_rules(self, *rules: dict[str, Any]) -> dict[str, Any]:
        """Replace the org's validation rules (none: every rule removed)."""
        return self.set_faults(validation_rules=list(rules))

    def faults(self) -> dict[str, Any]:
        return self.admin("GET", "faults")

    def set_pace(self, pace: str, time_scale: float = 1.0) -> dict[str, Any]:
        """Pace the Bulk ingest jobs (``instant``, ``30s``, ``120s``), `time_scale` emulated
        seconds per wall-clock second."""
        from talklog_dev.emulator.bulk import PACES

        return self.set_faults(**PACES[pace], time_scale=time_scale)

    def convert_lead(self, lead_id: str, **options: Any) -> dict[str, Any]:
        """Convert a lead like the Salesforce UI does (personAccount=True for a person account)."""
        return self.admin("POST", "convert-lead", {"leadId": lead_id, **options})

    def create_record(self, sobject: str, **values: Any) -> str:
        """Create a fixture record without spending API calls."""
        return self.admin("POST", f"records/{sobject}", values)["id"]

    def create_records(self, sobject: str, rows: list[dict[str, Any]]) -> list[str]:
        """Create many fixture records in one admin call."""
        return self.admin("POST", f"records/{sobject}", rows)["ids"]

    def records(self, sobject: str) -> list[dict[str, Any]]:
        return self.admin("GET", f"records/{sobject}")

    def airflow_connection(self, **extra: Any) -> dict[str, Any]:
        """The Airflow connection (JSON form) for this emulator: host, client id/secret, CA."""
        return {
            "conn_type": "talklog_salesforce",
            "host": self.instance_url,
            "login": self.client_id,
            "password": self.client_secret,
            "extra": {"ca_bundle": self.ca_bundle, "version": API_VERSION, **extra},
        }

    def airflow_conn_env(self, conn_id: str = "salesforce_default") -> dict[str, str]:
        """``AIRFLOW_CONN_<ID>`` environment variable for this emulator."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.airflow_connection())}


def run_emulator(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> AbstractContextManager[EmulatorHandle]:
    """Start ``python -m talklog_dev.emulator serve`` in its own process group; stop it by pid."""
    return run_serving(
        EmulatorHandle, workdir, "talklog_dev.emulator",
        "--state", ":memory:", "--ca-out", str(workdir / "tls"), "--bulk-polls", "0", *args,
        env=env, name="emulator",
    )  # fmt: skip
