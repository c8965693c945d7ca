"""The `talklog` command: store migrations and summaries, traces, dead letters, imports.

talklog store upgrade --url URL
talklog store describe --url URL [--tz Asia/Tokyo]
talklog trace --url URL (--message KEY | --record KEY)
talklog dead-letters --url URL
talklog import --url URL --file PATH [--tz Asia/Tokyo]
talklog backfill --talks-from DAY [--talks-to DAY] [--dag talklog_hourly] [--dry-run]
talklog links import --url URL --file links.csv | list --url URL | unlink --url URL CONTACT...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from talklog import backfill, coverage, deadletters, links_admin
from talklog.imports import ImportFileError, ImportStoreError, import_export
from talklog.store import display_url, make_session_factory
from talklog.store.describe import describe_store
from talklog.store.migrate import StoreNotMigratedError, require_current, upgrade
from talklog.store.models import CoverageSource
from talklog.trace import trace_message, trace_record


def _store_upgrade(args: argparse.Namespace) -> None:
    upgrade(args.url)
    print(f"store at {display_url(args.url)} is up to date")


def _store_describe(args: argparse.Namespace) -> None:
    print(describe_store(args.url, args.tz).render())


def _trace(args: argparse.Namespace) -> None:
    with make_session_factory(args.url)() as session:
        if args.message:
            lines = trace_message(session, args.message)
        else:
            lines = trace_record(session, args.record)
    print("\n".join(lines))


def _dead_letters(args: argparse.Namespace) -> None:
    with make_session_factory(args.url)() as session:
        letters = deadletters.open_letters(session, retryable_only=False, operation=None)
    if not letters:
        print("no open dead letters")
    for letter in letters:
        kind = "retried automatically" if letter.retryable else "waits for a replay"
        deletion = "deletion " if deadletters.operation_of(letter.payload) == "delete" else ""
        print(
            f"{deletion}{letter.object_name} {letter.record_key}: {letter.error_code}"
            f" ({kind}; attempts {letter.attempts};"
            f" since {letter.first_failed_at:%Y-%m-%d %H:%M} UTC)"
        )


def _import(args: argparse.Namespace) -> None:
    if args.upgrade:
        upgrade(args.url)
    try:
        covers = coverage.covered_period(*args.covers, args.tz) if args.covers else None
        sessions = make_session_factory(args.url)
        summary = import_export(sessions, args.file, timezone=args.tz)
    except (ImportFileError, ImportStoreError, ValueError) as error:  # never quoting the file
        sys.exit(f"import failed: {error}")
    print(summary.render())
    if covers and summary.download_error:
        sys.exit("the export reports a download error: its period is not recorded as covered")
    if covers:
        with sessions.begin() as session:
            coverage.record(session, *covers, CoverageSource.IMPORT, detail=summary.file[-255:])
        print(f"recorded as covered: {covers[0].isoformat()} .. {covers[1].isoformat()} (UTC)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talklog", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    store = commands.add_parser("store", help="the message store").add_subparsers(
        dest="store_command", required=True
    )
    up = store.add_parser("upgrade", help="create or migrate the store's tables")
    up.add_argument("--url", required=True, help="SQLAlchemy URL of the store")
    up.set_defaults(func=_store_upgrade)
    describe = store.add_parser("describe", help="count rooms, members, links, messages")
    describe.add_argument("--url", required=True)
    describe.add_argument("--tz", default="Asia/Tokyo", help="time zone of the days listed")
    describe.set_defaults(func=_store_describe)

    trace = commands.add_parser("trace", help="where a message or record went, or why not")
    trace.add_argument("--url", required=True)
    which = trace.add_mutually_exclusive_group(required=True)
    which.add_argument("--message", help="a message key")
    which.add_argument("--record", help="a TalkLogKey__c, LineWorksKey__c or LinkKey__c value")
    trace.set_defaults(func=_trace)

    letters = commands.add_parser("dead-letters", help="open dead letters, oldest first")
    letters.add_argument("--url", required=True)
    letters.set_defaults(func=_dead_letters)

    imp = commands.add_parser("import", help="load a LINE WORKS message export (CSV)")
    imp.add_argument("--url", required=True, help="SQLAlchemy URL of the store")
    imp.add_argument(
        "--file", required=True, help="the export: 日時,送信者,受信者,チャンネルID,トーク"
    )
    imp.add_argument("--tz", default="Asia/Tokyo", help="time zone of times without an offset")
    imp.add_argument("--upgrade", action="store_true", help="migrate the store first")
    imp.add_argument(
        "--covers",
        nargs=2,
        metavar=("FROM", "TO"),
        help="record that the file holds every talk of FROM..TO (days, or times; TO excluded)"
        " so that talk-log runs of TALKLOG_TALK_SOURCE=import write those windows",
    )
    imp.set_defaults(func=_import)
    backfill.add_command(commands)
    links_admin.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    migrates_first = args.func is _store_upgrade or getattr(args, "upgrade", False)
    try:
        if not migrates_first and hasattr(args, "url"):  # a backfill needs no store
            require_current(make_session_factory(args.url).kw["bind"])
        args.func(args)
    except StoreNotMigratedError as error:
        sys.exit(f"talklog: {error}")


if __name__ == "__main__":
    main()
