"""`--public-name`: the docker-compose service name is in the certificate and the instance URL."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from talklog_dev.emulator.process import run_emulator


def test_public_name_is_announced_and_covered_by_the_certificate(tmp_path: Path) -> None:
    with run_emulator(tmp_path, "--public-name", "sf-emulator") as handle:
        assert handle.instance_url.startswith("https://sf-emulator:")
        cert = x509.load_pem_x509_certificate((tmp_path / "tls" / "server.pem").read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {"sf-emulator", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
        port = handle.instance_url.rsplit(":", 1)[1]
        session = handle.session()  # still listening on 127.0.0.1 only, reached by IP here
        token = session.post(
            f"https://127.0.0.1:{port}/services/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": handle.client_id,
                  "client_secret": handle.client_secret},
            timeout=10,
        )  # fmt: skip
        assert token.status_code == 200
        assert token.json()["instance_url"] == f"https://127.0.0.1:{port}"
