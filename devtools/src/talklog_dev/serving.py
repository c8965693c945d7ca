"""Serving an emulator over HTTPS and running it as a child process (both emulators use it).

Server side: ``bind`` a socket on 127.0.0.1, ``serve_https`` an ASGI app on it with the TLS files
of ``talklog_dev.emulator.tls`` and announce the ready line (``announce``: printed, and written
0600 to the ready file once the server accepts connections).

Client side: ``run_serving`` starts ``python -m <module> serve`` in its own process group, waits
for the ready file, yields what it announced and stops the process by pid when the block ends;
``EmulatorAdmin`` is the admin API both handles share.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, TypeVar

import requests
import uvicorn

from talklog_dev.emulator.tls import TlsFiles

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
Handle = TypeVar("Handle")
Admin = TypeVar("Admin", bound="EmulatorAdmin")


def bind(port: int, host: str = HOST) -> socket.socket:
    """A listening TCP socket on `host`, 127.0.0.1 by default (port 0 picks a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: no 40 ms Nagle/delayed-ACK stall per response.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def announce(line: str, ready_file: Path | None) -> None:
    """Print the ready line and write it (0600, atomically) to `ready_file` when one is given."""
    if ready_file is not None:
        tmp = ready_file.with_suffix(ready_file.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(line + "\n")
        tmp.replace(ready_file)
    print(line, flush=True)


class _Server(uvicorn.Server):
    """uvicorn server that announces readiness once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_ready()


def serve_https(
    app: Any,
    sock: socket.socket,
    files: TlsFiles,
    on_ready: Callable[[], None],
    **options: Any,
) -> None:
    """Serve `app` over HTTPS on `sock` until interrupted (no access log: query strings carry
    data values and file URLs); `options` go to ``uvicorn.Config``. The socket is closed after."""
    config = uvicorn.Config(
        app,
        ssl_certfile=str(files.cert_file),
        ssl_keyfile=str(files.key_file),
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=0.5,
        lifespan="off",  # no startup hooks; a forced stop (Ctrl-C twice) then logs no traceback
        **options,
    )
    try:
        # uvicorn's own choice of event loop (`asyncio.run` alone would bypass it): uvloop
        # where it is installed, whose TLS protocol is compiled where asyncio's record
        # handling is Python (a 100 MB Bulk upload, a talk file download)
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(_Server(config, on_ready).serve(sockets=[sock]))
    finally:
        sock.close()


def trusting_session(ca_bundle: str) -> requests.Session:
    """A requests session that trusts `ca_bundle` (and ignores REQUESTS_CA_BUNDLE)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_bundle
    return session


class EmulatorAdmin:
    """The admin API of a running emulator; a handle names its CA and admin root URL."""

    ca_bundle: str
    _session: requests.Session | None

    def admin_root(self) -> str:
        raise NotImplementedError

    def session(self) -> requests.Session:
        """A requests session that trusts the emulator's CA (and ignores REQUESTS_CA_BUNDLE)."""
        return trusting_session(self.ca_bundle)

    def admin(self, method: str, path: str, payload: Any = None) -> Any:
        response = self._admin_session().request(
            method, f"{self.admin_root()}/{path}", json=payload, timeout=60
        )
        response.raise_for_status()
        return response.json()

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self.admin("PUT", "faults", faults)

    def stats(self) -> dict[str, Any]:
        return self.admin("GET", "stats")

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def _admin_session(self) -> requests.Session:
        if self._session is None:
            self._session = self.session()
        return self._session


def handle_from(handle_type: type[Handle], info: dict[str, Any]) -> Handle:
    """The handle of `handle_type` (a dataclass) from a ready line's public fields."""
    names = {f.name for f in dataclasses.fields(handle_type) if not f.name.startswith("_")}
    return handle_type(**{k: v for k, v in info.items() if k in names})


@contextlib.contextmanager
def run_serving(
    handle_type: type[Admin],
    workdir: Path,
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    name: str,
) -> Generator[Admin]:
    """Start ``python -m <module> serve --port 0 --ready-file … <args>`` in its own process group
    (output to ``workdir/emulator.log``), yield a `handle_type` of its ready line, close it and
    stop the process by pid at the end."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready_file = workdir / "ready.json"
    ready_file.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", module, "serve", "--port", "0", "--ready-file", str(ready_file),
        *args,
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
        handle = handle_from(handle_type, _wait_ready(process, ready_file, log_path, name))
        try:
            yield handle
        finally:
            handle.close()
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _wait_ready(
    process: subprocess.Popen, ready_file: Path, log_file: Path, name: str
) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log_file.read_text(errors='replace')}")
        if ready_file.exists():
            return json.loads(ready_file.read_text(encoding="utf-8"))
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not become ready in time")
