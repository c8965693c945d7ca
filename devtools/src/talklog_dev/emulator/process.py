"""Running the emulator as a child process, and a handle to reach it (tests, demo, benchmarks).

``run_emulator`` starts ``python -m talklog_dev.emulator serve`` on 127.0.0.1 in its own process
group, waits for its ready file and stops it by process id when the block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

START_TIMEOUT_S = 30.0
API_VERSION = "66.0"


@dataclass
class EmulatorHandle:
    """A running emulator: where it listens, how to authenticate, and its admin API."""

    instance_url: str
    ca_bundle: str
    client_id: str
    client_secret: str
    username: str
    password: str
    pid: int
    _session: requests.Session | None = field(default=None, repr=False)

    def session(self) -> requests.Session:
        """A requests session that trusts the emulator's CA (and ignores REQUESTS_CA_BUNDLE)."""
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_bundle
        return session

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

    def admin(self, method: str, path: str, payload: Any = None) -> Any:
        response = self._admin_session().request(
            method, f"{self.instance_url}/__emulator__/{path}", json=payload, timeout=60
        )
        response.raise_for_status()
        return response.json()

    def reset(self, **parts: bool) -> None:
        """Delete records and jobs, zero counters, clear faults (or only the parts named)."""
        self.admin("POST", "reset", parts or None)

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self.admin("PUT", "faults", faults)

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

    def stats(self) -> dict[str, Any]:
        return self.admin("GET", "stats")

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

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def _admin_session(self) -> requests.Session:
        if self._session is None:
            self._session = self.session()
        return self._session


@contextlib.contextmanager
def run_emulator(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> Generator[EmulatorHandle]:
    """Start ``python -m talklog_dev.emulator serve`` in its own process group; stop it by pid."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready_file = workdir / "ready.json"
    ready_file.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "talklog_dev.emulator", "serve", "--port", "0",
        "--state", ":memory:", "--ca-out", str(workdir / "tls"),
        "--ready-file", str(ready_file), "--bulk-polls", "0", *args,
    ]  # fmt: skip
    log = (workdir / "emulator.log").open("wb")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        handle = _wait_ready(process, ready_file, workdir / "emulator.log")
        yield handle
        handle.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        log.close()


def _wait_ready(process: subprocess.Popen, ready_file: Path, log_file: Path) -> EmulatorHandle:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"emulator exited early:\n{log_file.read_text(errors='replace')}")
        if ready_file.exists():
            info = json.loads(ready_file.read_text(encoding="utf-8"))
            fields_ = {k: info[k] for k in EmulatorHandle.__dataclass_fields__ if k in info}
            return EmulatorHandle(**fields_)
        time.sleep(0.05)
    raise RuntimeError("emulator did not become ready in time")
