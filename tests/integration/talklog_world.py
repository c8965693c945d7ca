"""A realistic store linked to records that exist in the emulator, and what to check it with.

`build_world` creates the link targets in the emulator (external contacts, leads, contacts,
person accounts; two leads converted), generates a store whose links point at them, syncs the
links and returns the wiring to run talk windows. `snapshot` reads the emulator's TalkLog and
Task records with ids replaced by stable labels, so states of two emulator resets compare.
`delivered_lines` and `expected` check "each message once on each target record".
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import requests
import sqlalchemy as sa
from simple_salesforce import Salesforce
from sqlalchemy.orm import Session, sessionmaker

from talklog.ledger import LedgerEntry, entries
from talklog.links import LinkSyncSummary, sync_links
from talklog.loading import BulkLoader
from talklog.pipeline import RunSummary, write_talk_logs
from talklog.salesforce.bulk import BulkClient
from talklog.salesforce.calls import ApiCallCounter
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import (
    LineUser,
    LineWorksUser,
    Link,
    LinkPeriod,
    Message,
    RoomMember,
    TargetType,
)
from talklog.talklogs import TalkLogSettings
from talklog.targets import Describe, QueryAll
from talklog.transcripts import TalkLine, render_line
from talklog.windows import DEFAULT_TIMEZONE, TalkWindow
from talklog_dev.emulator.timescale import ScaledTime
from talklog_dev.synth import GenerationReport, GeneratorConfig, generate

TOKYO = ZoneInfo(DEFAULT_TIMEZONE)
DAY = dt.date(2026, 1, 9)
PER_KIND = 40
VOLATILE = frozenset(
    {"Id", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp"}
)
LABELLED_OBJECTS = ("ExternalContact__c", "Lead", "Contact", "Account", "LineWorks__c", "User")
_ENTRY = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2} \[(?:LW|LINE|\?)\] ", re.MULTILINE)
_ID = re.compile(r"\b[a-zA-Z0-9]{18}\b")
_PART_HEADER = re.compile(r"^\(\d+/\d+\)\n")


@dataclass
class Clients:
    """How a run reaches Salesforce: SOQL, Bulk, and the HTTP session both count on."""

    query_all: QueryAll
    bulk: BulkClient
    http_session: requests.Session
    describe: Describe | None = None  # None: the org is assumed to have Person Accounts


def direct_clients(
    emulator: Any, poll_interval: float = 0.01, clock: ScaledTime | None = None, **bulk: Any
) -> Clients:
    """simple-salesforce + BulkClient on one fresh emulator session (Bulk renews its token);
    `clock` times the Bulk client at the emulator's time scale, `bulk` are more of its
    options (max_upload_bytes, expected_pace)."""
    session = emulator.session()
    token = emulator.token()
    sf = Salesforce(
        session_id=token, instance_url=emulator.instance_url, session=session, version="66.0"
    )
    if clock is not None:
        bulk.update(sleep=clock.sleep, clock=clock.clock)
    client = BulkClient(
        session,
        emulator.instance_url,
        token,
        refresh_token=emulator.token,
        poll_interval=poll_interval,
        **bulk,
    )
    return Clients(sf.query_all_iter, client, session, lambda name: getattr(sf, name).describe())


@dataclass
class World:
    """A store, the emulator it is linked to, and the wiring of the runs."""

    emulator: Any
    url: str
    config: GeneratorConfig
    report: GenerationReport
    sessions: sessionmaker[Session]
    clients: Clients
    loader: BulkLoader
    counter: ApiCallCounter
    homes: dict[str, str]  # linked target id -> the record the customer lives on now

    def sync_links(self) -> LinkSyncSummary:
        return sync_links(
            sessions=self.sessions,
            query_all=self.clients.query_all,
            loader=self.loader,
            describe=self.clients.describe,
        )

    def sync_links_cleanly(self) -> LinkSyncSummary:
        """Sync the links; every link is placed and accepted."""
        synced = self.sync_links()
        assert synced.linkworks["rejected"] == 0 and synced.exchange_tasks["rejected"] == 0, synced
        assert not synced.unresolved_targets, synced
        return synced

    def run(self, window: TalkWindow, run_id: str = "test", **options: Any) -> RunSummary:
        """The talk-log job over `window`, its API calls counted, the org described."""
        return self.write(
            TalkLogSettings(),
            run_id,
            window,
            api_calls=lambda: self.counter.total,
            describe=self.clients.describe,
            **options,
        )

    def write(
        self,
        settings: TalkLogSettings,
        run_id: str,
        window: TalkWindow | None = None,
        **options: Any,
    ) -> RunSummary:
        """The talk-log job over `window` (the whole span by default) with `settings` and only
        the `options` given (no call counter, no describe)."""
        return write_talk_logs(
            sessions=self.sessions,
            store_url=self.url,
            query_all=self.clients.query_all,
            loader=self.loader,
            window=window or self.window(),
            settings=settings,
            run_id=run_id,
            **options,
        )

    def window(self) -> TalkWindow:
        """The whole generated span."""
        return TalkWindow(*self.config.window())


def build_world(
    emulator: Any,
    url: str,
    config: GeneratorConfig,
    clients: Callable[[], Clients] | None = None,
    *,
    sync: bool = True,
) -> World:
    """Targets in the emulator, a store linked to them, links synced (unless `sync` is off);
    the API call counter starts at 0 after the sync."""
    upgrade(url)
    ids = create_targets(emulator, PER_KIND)
    user_id = emulator.admin("GET", "info")["default_user_id"]
    config = config.replace(
        target_ids=lambda kind, n: ids[kind][n],
        salesforce_user_ids=lambda n: user_id if n % 4 else None,
    )
    report = generate(url, config)
    homes = _convert_two_leads(emulator, ids)
    wiring = clients() if clients else direct_clients(emulator)
    sessions = make_session_factory(url)
    loader = BulkLoader(wiring.bulk, sessions, sleep=lambda _: None)
    counter = ApiCallCounter(wiring.http_session)
    world = World(emulator, url, config, report, sessions, wiring, loader, counter, homes)
    if sync:
        world.sync_links_cleanly()
        world.counter.by_kind.clear()
    return world


def create_targets(emulator: Any, per_kind: int) -> dict[TargetType, list[str]]:
    """`per_kind` records of each link target type, in four admin calls."""
    numbers = range(per_kind)
    rows = {
        TargetType.EXTERNAL_CONTACT: ("ExternalContact__c", [{"Name": f"EC{n}"} for n in numbers]),
        TargetType.LEAD: ("Lead", [{"LastName": f"L{n}", "Company": f"Co{n}"} for n in numbers]),
        TargetType.CONTACT: ("Contact", [{"LastName": f"C{n}"} for n in numbers]),
        TargetType.PERSON_ACCOUNT: ("Account", [{"LastName": f"P{n}"} for n in numbers]),
    }
    return {kind: emulator.create_records(obj, values) for kind, (obj, values) in rows.items()}


def _convert_two_leads(emulator: Any, ids: dict[TargetType, list[str]]) -> dict[str, str]:
    """Lead 0 becomes a business account, lead 1 a person account; where each target lives."""
    emulator.convert_lead(ids[TargetType.LEAD][0])
    emulator.convert_lead(ids[TargetType.LEAD][1], personAccount=True)
    leads = emulator.records("Lead")
    accounts = emulator.records("Account")
    homes = {record_id: record_id for kind_ids in ids.values() for record_id in kind_ids}
    homes.update({r["Id"]: r["ConvertedContactId"] for r in leads if _true(r["IsConverted"])})
    persons = {r["Id"]: r["PersonContactId"] for r in accounts if _true(r["IsPersonAccount"])}
    homes.update({account: persons[account] for account in ids[TargetType.PERSON_ACCOUNT]})
    return homes


def _true(value: Any) -> bool:
    return str(value).lower() == "true"


# -- Salesforce state ----------------------------------------------------------------------


def labels(emulator: Any) -> dict[str, str]:
    """Record id -> `Object:natural key` (Name, or LinkKey__c), stable across resets."""
    found: dict[str, str] = {}
    for obj in LABELLED_OBJECTS:
        for record in emulator.records(obj):
            natural = record.get("LinkKey__c") or record.get("Username") or record.get("Name")
            found[record["Id"]] = f"{obj}:{natural}"
    assert len(set(found.values())) == len(found), "labels must be unique"
    return found


def snapshot(emulator: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """TalkLog__c and Task records by external key, ids replaced by labels, stamps dropped."""
    names = labels(emulator)
    keys = {"TalkLog__c": "TalkLogKey__c", "Task": "LineWorksKey__c"}
    state: dict[str, dict[str, dict[str, Any]]] = {}
    for obj, key in keys.items():
        rows = {}
        for record in emulator.records(obj):
            clean = {k: _relabel(v, names) for k, v in record.items() if k not in VOLATILE}
            assert clean[key] not in rows, f"duplicate {obj} {clean[key]}"
            rows[clean[key]] = clean
        state[obj] = rows
    return state


def _relabel(value: Any, names: dict[str, str]) -> Any:
    """Ids in a value (a lookup, or inside a key like `room|window|record|1`) as labels."""
    if not isinstance(value, str):
        return value
    return _ID.sub(lambda match: names.get(match.group(0), match.group(0)), value)


def delivered_lines(emulator: Any) -> dict[str, Counter[str]]:
    """Per target record (the TalkLog's nearest parent), how often each message entry appears."""
    parts: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for record in emulator.records("TalkLog__c"):
        home = next(
            record[f]
            for f in ("Contact__c", "Account__c", "Lead__c", "ExternalContact__c")
            if record.get(f) not in (None, "", "None")
        )
        base = record["TalkLogKey__c"].rsplit("|", 1)[0]
        text = _PART_HEADER.sub("", record["Transcript__c"], count=1)
        parts[base].append((int(float(record["Part__c"])), home, text))
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for pieces in parts.values():
        pieces.sort()
        transcript = "".join(text for _, _, text in pieces)
        found[pieces[0][1]].update(_entries(transcript))
    return dict(found)


def _entries(transcript: str) -> list[str]:
    """Message entries of a transcript (its two header lines dropped), continuations kept."""
    starts = [m.start() for m in _ENTRY.finditer(transcript)]
    bounds = zip(starts, [*starts[1:], len(transcript)], strict=True)
    return [transcript[a:b].rstrip("\n") for a, b in bounds]


# -- what the store says should be there ----------------------------------------------------


@dataclass
class Expected:
    """What the store says Salesforce must hold (an independent reading of spec section 5):
    a message reaches a link's record when the link was in force and both its staff user and
    its customer were room members."""

    pairs: set[tuple[int, str]]  # (message id, linked target id): the ledger's rows
    lines: dict[str, Counter[str]]  # target record -> message entries, each once


def expected(world: World, window: TalkWindow | None = None) -> Expected:
    """The (message, customer) pairs of `window` (default: the generated span) and the
    message entries each target record must show."""
    window = window or world.window()
    pairs: set[tuple[int, str]] = set()
    lines: dict[str, Counter[str]] = defaultdict(Counter)
    with world.sessions() as session:
        members = _member_spans(session)
        links = _link_spans(session)
        for room_id, line in window_messages(session, window):
            targets = {
                target
                for lw, customer, target, spans in links
                if _covers(spans, line.sent_at)
                and _covers(members.get((room_id, lw), ()), line.sent_at)
                and _covers(members.get((room_id, customer), ()), line.sent_at)
            }
            pairs.update((line.message_id, target) for target in targets)
            for home in {world.homes[target] for target in targets}:
                lines[home][render_line(line, TOKYO)] += 1
    return Expected(pairs, dict(lines))


def _covers(spans: Iterable[tuple[dt.datetime, dt.datetime | None]], moment: dt.datetime) -> bool:
    return any(start <= moment and (end is None or moment < end) for start, end in spans)


def _member_spans(session: Session) -> dict[tuple[str, str], list]:
    spans: dict[tuple[str, str], list] = defaultdict(list)
    for m in session.scalars(sa.select(RoomMember)):
        spans[m.room_id, m.lw_user_id or m.line_user_id].append((m.joined_at, m.left_at))
    return spans


def _link_spans(session: Session) -> list[tuple[str, str, str, list]]:
    periods: dict[int, list] = defaultdict(list)
    for p in session.scalars(sa.select(LinkPeriod)):
        periods[p.link_id].append((p.started_at, p.ended_at))
    return [
        (link.lw_user_id, link.line_user_id, link.target_id, periods[link.id])
        for link in session.scalars(sa.select(Link))
    ]


def window_messages(session: Session, window: TalkWindow) -> Iterable[tuple[str, TalkLine]]:
    """(room id, line) of every message in `window`, read the straightforward way (an oracle
    independent of `window_lines`), in no particular order."""
    speaker = sa.func.coalesce(LineWorksUser.display_name, LineUser.display_name, "?")
    rows = session.execute(
        sa.select(
            Message.room_id,
            Message.id,
            Message.sent_at,
            Message.sender_kind,
            speaker,
            Message.message_type,
            Message.text,
            Message.file_name,
            Message.file_size,
        )
        .outerjoin(LineWorksUser, LineWorksUser.id == Message.sender_lw_user_id)
        .outerjoin(LineUser, LineUser.id == Message.sender_line_user_id)
        .where(Message.sent_at >= window.start, Message.sent_at < window.end)
    )
    for room_id, *fields in rows:
        yield room_id, TalkLine(*fields)


def ledger(world: World) -> list[LedgerEntry]:
    """Every (message, customer) pair of the delivery ledger, with its TalkLog's columns."""
    with world.sessions() as session:
        return entries(session)


def local(day: dt.date, hour: int) -> dt.datetime:
    """`hour` o'clock of `day` in Tokyo (hours past 23 roll into the next days)."""
    return dt.datetime.combine(day, dt.time(), TOKYO) + dt.timedelta(hours=hour)


def hourly_windows(day: dt.date = DAY) -> list[TalkWindow]:
    """The 24 hourly windows of a local day."""
    return [TalkWindow(local(day, h), local(day, h + 1)) for h in range(24)]
