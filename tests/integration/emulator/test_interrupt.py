"""Ctrl-C on `make emulator`: `python -m talklog_dev.emulator serve` ends with one line, exit
code 0 and no traceback, whenever the interrupt comes (while importing, while starting, once
serving, with a client connected, pressed twice)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from talklog_dev.serving import trusting_session


def start(ready_file: Path) -> subprocess.Popen[str]:
    """The emulator as `make emulator` starts it, in its own group (SIGINT not ignored)."""
    command = [sys.executable, "-m", "talklog_dev.emulator", "serve", "--port", "0"]
    return subprocess.Popen(
        [*command, "--ready-file", str(ready_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_ready(ready_file: Path, timeout: float = 30.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        assert time.monotonic() < deadline, "the emulator never announced itself"
        time.sleep(0.05)
    return json.loads(ready_file.read_text(encoding="utf-8"))


def ask_for_a_token(ready: dict[str, str]) -> None:
    token = trusting_session(ready["ca_bundle"]).post(
        f"{ready['instance_url']}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": ready["client_id"],
              "client_secret": ready["client_secret"]},
        timeout=10,
    )  # fmt: skip
    assert token.status_code == 200


@pytest.mark.parametrize(
    "moment",
    ["while importing", "while starting", "once serving", "with a client connected", "twice"],
)
def test_sigint_ends_the_emulator_with_one_line_and_no_traceback(
    tmp_path: Path, moment: str
) -> None:
    ready_file = tmp_path / "ready.json"
    process = start(ready_file)
    open_connection: socket.socket | None = None
    try:
        if moment in ("while importing", "while starting"):
            time.sleep(0.2 if moment == "while importing" else 0.9)
        else:
            ready = wait_ready(ready_file)
            if moment == "with a client connected":
                ask_for_a_token(ready)
                port = int(ready["instance_url"].rsplit(":", 1)[1])
                open_connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        process.send_signal(signal.SIGINT)
        if moment == "twice":
            time.sleep(0.05)
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if open_connection is not None:
            open_connection.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert "Traceback" not in stderr
    assert process.returncode == 0, stderr
    assert len(stderr.strip().splitlines()) <= 1, stderr
