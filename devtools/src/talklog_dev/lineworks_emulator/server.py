"""Run the LINE WORKS emulator: TLS files, a socket on 127.0.0.1, uvicorn, a ready file."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from talklog_dev.emulator import tls
from talklog_dev.lineworks_emulator.app import create_app
from talklog_dev.lineworks_emulator.state import EmulatorState
from talklog_dev.serving import HOST, announce, bind, serve_https

KEY_FILE = "service-account-key.pem"


@dataclass(frozen=True)
class Ready:
    """What clients need, printed as one JSON line and written to the ready file (0600)."""

    base_url: str
    auth_url: str
    admin_url: str
    ca_bundle: str
    pid: int
    client_id: str
    client_secret: str
    service_account_id: str
    private_key_file: str | None
    domain_id: int
    scopes: str

    def as_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def service_account_key(out_dir: Path) -> tuple[Path, str]:
    """A new RSA key pair: the private key written to `out_dir` (0600), the public PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / KEY_FILE
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, public.decode()


def serve(
    state: EmulatorState,
    port: int,
    tls_dir: Path,
    ready_file: Path | None = None,
    private_key_file: Path | None = None,
) -> None:
    """Serve HTTPS on 127.0.0.1 until interrupted."""
    files = tls.generate(tls_dir)
    sock = bind(port, HOST)
    root = f"https://{HOST}:{sock.getsockname()[1]}"
    ready = Ready(
        base_url=f"{root}/v1.0",
        auth_url=f"{root}/oauth2/v2.0/token",
        admin_url=f"{root}/__emulator__",
        ca_bundle=str(files.ca_bundle.resolve()),
        pid=os.getpid(),
        client_id=state.config.client_id,
        client_secret=state.config.client_secret,
        service_account_id=state.config.service_account_id,
        private_key_file=str(private_key_file.resolve()) if private_key_file else None,
        domain_id=state.world.domain_id,
        scopes=" ".join(state.config.scopes),
    )
    serve_https(create_app(state), sock, files, lambda: announce(ready.as_json(), ready_file))
