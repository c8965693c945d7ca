"""``python -m talklog_dev.lineworks_emulator serve ...``: the local LINE WORKS API emulator."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import sys
import tempfile
from pathlib import Path

from talklog_dev.lineworks_emulator.state import ALL_SCOPES, AppConfig, EmulatorState, Faults
from talklog_dev.synth.generator import DEFAULT_DAY, GeneratorConfig
from talklog_dev.synth.lineworks import lineworks_world

SECRET_ENV = "TALKLOG_LINEWORKS_EMULATOR_CLIENT_SECRET"
DEFAULT_CLIENT_ID = "talklog-emulator-app"
DEFAULT_SERVICE_ACCOUNT = "talklog.serviceaccount@example-sales.co.jp"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m talklog_dev.lineworks_emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTPS emulator on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8444, help="TCP port (0 = any free port)")
    serve.add_argument("--ready-file", type=Path, help="write the ready JSON line here too")
    serve.add_argument("--out", type=Path, help="folder for TLS files, the key and downloads")
    serve.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    serve.add_argument("--client-secret", help=f"default: ${SECRET_ENV} or a generated one")
    serve.add_argument("--service-account", default=DEFAULT_SERVICE_ACCOUNT)
    serve.add_argument(
        "--public-key", type=Path, help="the app's public key (PEM); default: a new key pair"
    )
    serve.add_argument("--scopes", default=" ".join(ALL_SCOPES), help="scopes the app may ask")
    serve.add_argument("--token-lifetime", type=int, default=86_400, help="seconds")
    serve.add_argument("--file-url-lifetime", type=int, default=300, help="seconds")
    serve.add_argument("--rate-per-minute", type=int, default=240, help="per API")
    serve.add_argument("--seed", type=int, default=1)
    serve.add_argument("--day", type=dt.date.fromisoformat, default=DEFAULT_DAY)
    serve.add_argument("--days", type=int, default=1)
    serve.add_argument("--messages", type=int, default=500)
    serve.add_argument("--staff", type=int, default=4)
    serve.add_argument("--customers", type=int, default=12)
    serve.add_argument("--rooms", type=int, default=8)
    serve.add_argument("--tz", default="Asia/Tokyo", help="time zone of the generated days")
    serve.add_argument("--quiet-day-share", type=float, default=0.0, help="as the generator's")
    serve.add_argument(
        "--fault", action="append", default=[], metavar="NAME=VALUE",
        help="start with a fault on: download_error=true, truncate=record, throttle_next=3",
    )  # fmt: skip
    return parser


def _fault(option: str) -> dict[str, object]:
    name, sep, raw = option.partition("=")
    if not sep:
        raise ValueError(f"--fault expects name=value, got {option!r}")
    default = getattr(Faults(), name, ...)
    if default is ...:
        raise ValueError(f"unknown fault {name!r}")
    if isinstance(default, bool):
        return {name: raw.lower() in ("1", "true", "yes")}
    if isinstance(default, int):
        return {name: int(raw)}
    return {name: raw}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="talklog-lineworks-emulator-"))
    from talklog_dev.lineworks_emulator.server import serve, service_account_key

    if args.public_key:
        key_file, public_key = None, args.public_key.read_text(encoding="utf-8")
    else:
        key_file, public_key = service_account_key(out)
    config = AppConfig(
        client_id=args.client_id,
        client_secret=args.client_secret or os.environ.get(SECRET_ENV) or secrets.token_hex(16),
        service_account_id=args.service_account,
        public_key_pem=public_key,
        scopes=tuple(args.scopes.split()),
        token_lifetime_s=args.token_lifetime,
        file_url_lifetime_s=args.file_url_lifetime,
        rate_per_minute=args.rate_per_minute,
    )
    world = lineworks_world(
        GeneratorConfig(
            seed=args.seed, day=args.day, days=args.days, messages=args.messages,
            n_staff=args.staff, n_customers=args.customers, n_rooms=args.rooms, tz=args.tz,
            quiet_day_share=args.quiet_day_share,
        )
    )  # fmt: skip
    files_dir = out / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    state = EmulatorState(config, world, files_dir)
    try:
        for option in args.fault:
            state.faults.update(_fault(option))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve(state, args.port, out / "tls", args.ready_file, key_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
