"""The LINE WORKS emulator as a child process, and a handle to reach it (tests, demo).

``run_lineworks_emulator`` starts ``python -m talklog_dev.lineworks_emulator serve`` on
127.0.0.1 in its own process group, waits for its ready file and stops it by process id.
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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import requests

START_TIMEOUT_S = 30.0


@dataclass
class LineWorksEmulatorHandle:
    """A running emulator: its URLs, the app's credentials, and its admin API."""

    base_url: str
    auth_url: str
    admin_url: str
    ca_bundle: str
    pid: int
    client_id: str
    client_secret: str = field(repr=False)
    service_account_id: str
    private_key_file: str | None
    domain_id: int
    scopes: str
    _session: requests.Session | None = field(default=None, repr=False)

    def session(self) -> requests.Session:
        """A requests session that trusts the emulator's CA (and ignores REQUESTS_CA_BUNDLE)."""
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_bundle
        return session

    def private_key(self) -> str:
        if self.private_key_file is None:
            raise RuntimeError("the emulator was started with --public-key: no private key")
        return Path(self.private_key_file).read_text(encoding="utf-8")

    def admin(self, method: str, path: str, payload: Any = None) -> Any:
        if self._session is None:
            self._session = self.session()
        response = self._session.request(
            method, f"{self.admin_url}/{path}", json=payload, timeout=60
        )
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Forget tokens and downloads, zero counters, clear faults and renames."""
        self.admin("POST", "reset")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self.admin("PUT", "faults", faults)

    def stats(self) -> dict[str, Any]:
        return self.admin("GET", "stats")

    def expire_tokens(self) -> int:
        return self.admin("POST", "expire-tokens")["expired"]

    def rename(self, customer_id: str, name: str) -> None:
        """A customer renamed themselves on LINE: later downloads show `name`."""
        self.admin("POST", "rename", {"id": customer_id, "name": name})

    def airflow_connection(self, **extra: Any) -> dict[str, Any]:
        """The Airflow connection (JSON form, type ``lineworks``) for this emulator."""
        return {
            "conn_type": "lineworks",
            "login": self.client_id,
            "password": self.client_secret,
            "extra": {
                "service_account_id": self.service_account_id,
                "private_key": self.private_key(),
                "domain_id": str(self.domain_id),
                "scopes": self.scopes,
                "base_url": self.base_url,
                "auth_url": self.auth_url,
                "ca_bundle": self.ca_bundle,
                **extra,
            },
        }

    def airflow_conn_env(self, conn_id: str = "lineworks_default", **extra: Any) -> dict[str, str]:
        """``AIRFLOW_CONN_<ID>`` environment variable for this emulator."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.airflow_connection(**extra))}

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


@contextlib.contextmanager
def run_lineworks_emulator(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> Generator[LineWorksEmulatorHandle]:
    """Start the emulator in its own process group; stop it by pid when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready_file = workdir / "ready.json"
    ready_file.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "talklog_dev.lineworks_emulator", "serve", "--port", "0",
        "--out", str(workdir), "--ready-file", str(ready_file), *args,
    ]  # fmt: skip
    log_path = workdir / "emulator.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        handle = _wait_ready(process, ready_file, log_path)
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


def _wait_ready(
    process: subprocess.Popen, ready_file: Path, log_file: Path
) -> LineWorksEmulatorHandle:
    deadline = time.monotonic() + START_TIMEOUT_S
    names = {f.name for f in fields(LineWorksEmulatorHandle) if not f.name.startswith("_")}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"emulator exited early:\n{log_file.read_text(errors='replace')}")
        if ready_file.exists():
            info = json.loads(ready_file.read_text(encoding="utf-8"))
            return LineWorksEmulatorHandle(**{k: v for k, v in info.items() if k in names})
        time.sleep(0.05)
    raise RuntimeError("the LINE WORKS emulator did not become ready in time")
