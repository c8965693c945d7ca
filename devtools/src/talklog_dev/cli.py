"""The `talklog-dev` command: synthetic message stores for demos, tests and benchmarks.

talklog-dev generate --url URL [--seed N] [--messages N] [--day YYYY-MM-DD] [--days N] ...
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence

from talklog.store import display_url
from talklog_dev.synth.generator import GeneratorConfig, generate

DEFAULTS = GeneratorConfig()


def _generate(args: argparse.Namespace) -> None:
    config = GeneratorConfig(
        seed=args.seed,
        day=args.day,
        days=args.days,
        tz=args.tz,
        n_staff=args.staff,
        n_customers=args.customers,
        n_rooms=args.rooms,
        messages=args.messages,
    )
    report = generate(args.url, config, migrate=args.upgrade)
    print(
        f"wrote {report.messages:,} messages, {report.rooms:,} rooms, {report.links:,} links"
        f" into {display_url(args.url)} in {report.seconds:.1f} s"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talklog-dev", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write a synthetic store (seeded)")
    gen.add_argument("--url", required=True)
    gen.add_argument("--seed", type=int, default=DEFAULTS.seed)
    gen.add_argument("--messages", type=int, default=DEFAULTS.messages)
    gen.add_argument("--day", type=dt.date.fromisoformat, default=DEFAULTS.day)
    gen.add_argument("--days", type=int, default=DEFAULTS.days)
    gen.add_argument("--tz", default=DEFAULTS.tz)
    gen.add_argument("--staff", type=int, default=DEFAULTS.n_staff)
    gen.add_argument("--customers", type=int, default=DEFAULTS.n_customers)
    gen.add_argument("--rooms", type=int, default=DEFAULTS.n_rooms)
    gen.add_argument("--upgrade", action="store_true", help="migrate the store first")
    gen.set_defaults(func=_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
