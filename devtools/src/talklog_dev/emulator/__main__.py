"""``python -m talklog_dev.emulator serve ...``: the local Salesforce API emulator.

Ctrl-C (SIGINT) stops it at any moment with one line and exit code 0, no traceback: a stop
asked for is a clean one (and `make emulator` then adds no "Error 130" line). The emulator's own
modules are imported inside ``main``, where the interrupt is caught.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

SECRET_ENV = "TALKLOG_EMULATOR_CLIENT_SECRET"
PASSWORD_ENV = "TALKLOG_EMULATOR_PASSWORD"


def build_parser() -> argparse.ArgumentParser:
    from talklog_dev.emulator.app import DEFAULT_CLIENT_ID
    from talklog_dev.emulator.bulk import PACES

    parser = argparse.ArgumentParser(prog="python -m talklog_dev.emulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTPS emulator (127.0.0.1 by default)")
    serve.add_argument("--port", type=int, default=8443, help="TCP port (0 = any free port)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 only inside a container)",
    )
    serve.add_argument(
        "--public-name",
        help="DNS name clients use (e.g. sf-emulator): added to the certificate, announced",
    )
    serve.add_argument(
        "--state", default=":memory:", help="SQLite file that keeps records, or :memory:"
    )
    serve.add_argument("--ca-out", type=Path, help="folder for ca.pem and the server certificate")
    serve.add_argument("--ready-file", type=Path, help="write the ready JSON line here too")
    serve.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    serve.add_argument("--client-secret", help=f"default: ${SECRET_ENV} or a generated one")
    serve.add_argument("--password", help=f"password flow password; default ${PASSWORD_ENV}")
    serve.add_argument("--daily-api-limit", type=int, default=100_000)
    serve.add_argument("--bulk-polls", type=int, default=1, help="InProgress polls per Bulk job")
    serve.add_argument(
        "--bulk-pace",
        choices=sorted(PACES),
        default="instant",
        help="how long ingest jobs take: instant, or paced like a real org (30s, 120s)",
    )
    serve.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="emulated seconds per wall-clock second for paced jobs (100: a 30 s job in 0.3 s)",
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="start with a fault switched on, e.g. lock_failure_rate=0.01 (repeatable)",
    )
    serve.add_argument(
        "--validation-rule",
        action="append",
        default=[],
        metavar="JSON",
        help='start with a validation rule, e.g. \'{"object": "Task", "field": "Subject", '
        '"condition": "contains", "value": "secret", "message": "No secrets"}\' (repeatable)',
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted; Ctrl-C (also a second one while stopping) ends with one line."""
    try:
        return run(argv)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: no traceback either
        print("emulator stopped (Ctrl-C)", file=sys.stderr)
        return 0


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT as KeyboardInterrupt, but not `signal.default_int_handler`, so that asyncio leaves
    it to uvicorn: the server stops, then the signal is raised again, here, after it."""
    raise KeyboardInterrupt


def run(argv: list[str] | None) -> int:
    from talklog_dev.emulator.app import EmulatorConfig, EmulatorState
    from talklog_dev.emulator.bulk import PACES
    from talklog_dev.emulator.faults import Faults, parse_fault_option

    args = build_parser().parse_args(argv)
    config = EmulatorConfig(client_id=args.client_id, daily_api_limit=args.daily_api_limit)
    config.client_secret = args.client_secret or os.environ.get(SECRET_ENV) or config.client_secret
    config.password = args.password or os.environ.get(PASSWORD_ENV) or config.password
    faults = Faults(
        bulk_polls_in_progress=args.bulk_polls,
        time_scale=args.time_scale,
        **PACES[args.bulk_pace],
    )
    state_path = None if args.state == ":memory:" else args.state
    try:
        for option in args.fault:
            faults.update(parse_fault_option(option))
        rules = [json.loads(rule) for rule in args.validation_rule]
        faults.validation_rules = [*faults.validation_rules, *rules]
        state = EmulatorState(config, state_path=state_path, faults=faults)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ca_out = args.ca_out or Path(tempfile.mkdtemp(prefix="talklog-emulator-tls-"))
    from talklog_dev.emulator.server import serve

    signal.signal(signal.SIGINT, _interrupt)
    serve(state, args.port, ca_out, args.ready_file, args.state, args.host, args.public_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
