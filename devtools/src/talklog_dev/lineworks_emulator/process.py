"""The LINE WORKS emulator as a child process, and a handle to reach it (tests, demo).

``run_lineworks_emulator`` starts ``python -m talklog_dev.lineworks_emulator serve`` on
127.0.0.1 in its own process group, waits for its ready file and stops it by process id.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from talklog_dev.serving import EmulatorAdmin, run_serving


@dataclass
class LineWorksEmulatorHandle(EmulatorAdmin):
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

    def private_key(self) -> str:
        if self.private_key_file is None:
            raise RuntimeError("the emulator was started with --public-key: no private key")
        return Path(self.private_key_file).read_text(encoding="utf-8")

    def admin_root(self) -> str:
        return self.admin_url

    def reset(self) -> None:
        """Forget tokens and downloads, zero counters, clear faults and renames."""
        self.admin("POST", "reset")

    def expire_tokens(self) -> int:
        return self.admin("POST", "expire-tokens")["expired"]

    def rename(self, customer_id: str, name: str) -> None:
        """A customer renamed themselves on LINE: later downloads show `name`."""
        self.admin("POST", "rename", {"id": customer_id, "name": name})

    def add_talk(self, channel_id: str, sender_id: str, text: str, sent_at: dt.datetime) -> None:
        """`sender_id` writes `text` in the world's room `channel_id` at `sent_at`."""
        body = {"channelId": channel_id, "senderId": sender_id, "text": text}
        self.admin("POST", "talks", {**body, "sentAt": sent_at.isoformat()})

    def rename_contact(self, contact_id: str, last_name: str, first_name: str = "") -> None:
        """A staff member renamed a contact: `/contacts` shows it modified now."""
        body = {"contactId": contact_id, "lastName": last_name, "firstName": first_name}
        self.admin("POST", "contact-name", body)

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


def run_lineworks_emulator(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> AbstractContextManager[LineWorksEmulatorHandle]:
    """Start the emulator in its own process group; stop it by pid when the block ends."""
    return run_serving(
        LineWorksEmulatorHandle, workdir, "talklog_dev.lineworks_emulator",
        "--out", str(workdir), *args, env=env, name="the LINE WORKS emulator",
    )  # fmt: skip
