"""Run the emulator: TLS files, a socket on 127.0.0.1, uvicorn, and a ready announcement."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from talklog_dev.emulator import tls
from talklog_dev.emulator.app import EmulatorState, create_app

HOST = "127.0.0.1"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ready:
    """What clients need, printed as one JSON line and written to the ready file."""

    instance_url: str
    ca_bundle: str
    pid: int
    client_id: str
    client_secret: str
    username: str
    password: str
    state: str

    def as_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)


class _Server(uvicorn.Server):
    """uvicorn server that announces readiness once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Any) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_ready()


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


def serve(
    state: EmulatorState,
    port: int,
    ca_out: Path,
    ready_file: Path | None = None,
    state_label: str = ":memory:",
    host: str = HOST,
    public_name: str | None = None,
) -> None:
    """Serve HTTPS on `host` (127.0.0.1 unless told otherwise) until interrupted.

    `public_name` (e.g. the docker-compose service `sf-emulator`) joins the certificate's
    names and becomes the announced instance URL's host."""
    files = tls.generate(ca_out, names=[public_name] if public_name else ())
    sock = bind(port, host)
    actual_port = sock.getsockname()[1]
    ready = Ready(
        instance_url=f"https://{public_name or HOST}:{actual_port}",
        ca_bundle=str(files.ca_bundle.resolve()),
        pid=os.getpid(),
        client_id=state.config.client_id,
        client_secret=state.config.client_secret,
        username=state.store.get("User", state.store.default_user_id)["Username"],  # type: ignore[index]
        password=state.config.password,
        state=state_label,
    )

    def announce() -> None:
        line = ready.as_json()
        if ready_file is not None:
            tmp = ready_file.with_suffix(ready_file.suffix + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(line + "\n")
            tmp.replace(ready_file)
        print(line, flush=True)

    config = uvicorn.Config(
        create_app(state),
        ssl_certfile=str(files.cert_file),
        ssl_keyfile=str(files.key_file),
        access_log=False,  # query strings carry SOQL with data values: never log them
        log_level="warning",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=0.5,
        h11_max_incomplete_event_size=1024 * 1024,
    )
    server = _Server(config, announce)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        state.store.close()
        sock.close()
