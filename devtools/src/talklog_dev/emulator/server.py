"""Run the emulator: TLS files, a socket on 127.0.0.1, uvicorn, and a ready announcement."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from talklog_dev.emulator import tls
from talklog_dev.emulator.app import EmulatorState, create_app
from talklog_dev.serving import HOST, announce, bind, serve_https

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
    try:
        serve_https(
            create_app(state),
            sock,
            files,
            lambda: announce(ready.as_json(), ready_file),
            h11_max_incomplete_event_size=1024 * 1024,
        )
    finally:
        state.store.close()
