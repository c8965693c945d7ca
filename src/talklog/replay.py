"""Replaying dead letters after their cause was fixed (an operator's action).

A letter's row is rebuilt from the store and Salesforce as they are now, never resent as it
was stored: the fix may be in the store (a staff member's Salesforce user, a link's target)
and the data may have changed since. `TalkLog__c` and `LINE WORKSログ` Task letters re-run
their TalkLog's window (the ledger's claim: room and window) for their rooms only, exactly as
the talk-log DAG writes it (same settings). `LineWorks__c` and `LINE WORKS交換` Task letters
are rebuilt as the link sync of `TALKLOG_LINK_SOURCE` writes them: links made in Salesforce
are read back first (the reps' decisions recorded, never written over; only the project's
fields are written), store-authored links are pushed as they are now. A linked parent's
`LineWorksUuid__c` letter (external contact, lead, contact, person account) is filled again
from the links in force now by `link_parents`' rules. Rebuilt rows go through the same
loader: accepted letters close, refused ones are updated, the ledger is marked delivered. A
letter whose row no longer exists is closed as obsolete with the reason, and not resent.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog import deadletters
from talklog.batching import IN_LIST_SIZE, chunked
from talklog.link_mirror import contacts_by_id
from talklog.link_parents import PARENT_OBJECTS, fill_parent_uuids
from talklog.links import exchange_obsolete, links_by_key, sync_links
from talklog.loading import BulkLoader, patient_queries
from talklog.pipeline import write_talk_logs
from talklog.salesforce_links import (
    LinkSource,
    SalesforceLinkSummary,
    decisions_of,
    exchange_states,
    has_linked_since,
    link_source,
    mirror_rows,
    read_back,
    write_back,
)
from talklog.settings import TalkLogSettings
from talklog.store.models import Link, TalkLogClaim, TargetType
from talklog.summary import JobSummary
from talklog.targets import Describe, QueryAll
from talklog.windows import TalkWindow

UUID_OBJECTS = tuple(PARENT_OBJECTS.values())  # their LineWorksUuid__c (`link_parents`)
REPLAY_ORDER = ("LineWorks__c", *UUID_OBJECTS, "TalkLog__c", "Task")
"""Parents before the rows that use them; a link's records before its parent's contact id."""
EXCHANGE_PREFIX, TALKLOG_TASK_PREFIX = "exchange|", "log|"

OBSOLETE = {
    "LINK_DELETED": "the link no longer exists in the store",
    "LINK_UNLINKED": "the link is unlinked now: no exchange Task is written for it",
    "LINK_RELINKED": "the link was made again since: its exchange Task has another key",
    "CONTACT_GONE": "the LINE WORKS contact is no longer in the store: its record is not mirrored",
    "NO_LINK": "no link in force points at the record now: no LINE WORKS UUID is filled in",
    "UUID_SET": "the record holds a LINE WORKS contact id already: kept, never overwritten",
    "UUID_HELD": "another record of the object holds the contact id: kept there",
    "LEAD_CONVERTED": "the lead was converted: its contact carries the link",
    "RECORD_MISSING": "the record was deleted (or is not of its object any more)",
    "NO_CLAIM": "the delivery ledger holds no TalkLog with this key",
    "NOT_WRITTEN": (
        "a re-run of its window writes no such row now (no message reaches that record any"
        " more, fewer parts, or the Task setting)"
    ),
}
"""Why a letter's row no longer exists: reason code -> what the operator reads."""


@dataclass
class ReplaySummary(JobSummary):
    """What a replay rebuilt: letters taken, talk windows re-run for their rooms, per-object
    loads (`LoadOutcome.summary()` added up), letters closed as obsolete (by reason) and
    links whose target cannot be placed (their letters stay open)."""

    letters: int = 0
    windows: int = 0
    rooms: int = 0
    by_object: dict[str, dict[str, Any]] = field(default_factory=dict)
    obsolete: dict[str, int] = field(default_factory=dict)
    unresolved_targets: dict[str, int] = field(default_factory=dict)
    edited_since_read: int = 0  # a person edited the record meanwhile: not written, letter open

    def loads(self) -> Iterable[Mapping[str, Any]]:
        return self.by_object.values()

    def add_load(self, object_name: str, load: Mapping[str, Any]) -> None:
        """Add one load's counts (numbers summed, per-code counts merged)."""
        total = self.by_object.setdefault(object_name, {})
        for name, value in load.items():
            if isinstance(value, Mapping):
                counts = total.setdefault(name, {})
                for code, count in value.items():
                    counts[code] = counts.get(code, 0) + count
            elif isinstance(value, int | float):
                total[name] = total.get(name, 0) + value

    def add_unresolved(self, unresolved: Mapping[str, int]) -> None:
        for reason, count in unresolved.items():
            self.unresolved_targets[reason] = self.unresolved_targets.get(reason, 0) + count


@dataclass(frozen=True)
class _Letter:
    id: int
    object_name: str
    record_key: str

    @property
    def is_link_row(self) -> bool:
        """A `LineWorks__c` row or an exchange Task: rebuilt from its link."""
        return self.object_name == "LineWorks__c" or self.record_key.startswith(EXCHANGE_PREFIX)

    @property
    def is_uuid_row(self) -> bool:
        """A linked parent's `LineWorksUuid__c` (keyed by the record's Id)."""
        return self.object_name in UUID_OBJECTS

    @property
    def link_key(self) -> str:
        if self.object_name == "LineWorks__c":
            return self.record_key
        return self.record_key.removeprefix(EXCHANGE_PREFIX).rsplit("|", 1)[0]

    @property
    def talklog_key(self) -> str:
        """The TalkLog (ledger claim) a `TalkLog__c` part or its Task belongs to."""
        return self.record_key.removeprefix(TALKLOG_TASK_PREFIX).rsplit("|", 1)[0]


def replay_dead_letters(
    *,
    sessions: sessionmaker[Session],
    store_url: str | sa.URL,
    query_all: QueryAll,
    loader: BulkLoader,
    settings: TalkLogSettings,
    object_name: str | None = None,
    error_code: str | None = None,
    run_id: str | None = None,
    api_calls: Callable[[], int] | None = None,
    describe: Describe | None = None,
) -> ReplaySummary:
    """Rebuild and load the row of every open letter (optionally one object / one error code).

    `settings` are the talk-log DAGs' (time zone, Task copy); `store_url` is the URL
    `sessions` are bound to; `api_calls` counts the run's Salesforce API calls (None: not
    counted); `describe` tells which fields the org has (None: assumed). The letters are
    taken out of the automatic ride-along first, so a stale payload is never resent; a
    refused rebuilt row is classified again as it comes back.
    """
    summary = ReplaySummary()
    letters = _take_letters(sessions, object_name, error_code)
    summary.letters = len(letters)
    obsolete: dict[_Letter, str] = {}
    links = [letter for letter in letters if letter.is_link_row]
    if links:
        _replay_links(sessions, query_all, loader, settings, links, summary, obsolete, describe)
    uuids = [letter for letter in letters if letter.is_uuid_row]
    if uuids:
        _replay_uuids(sessions, query_all, loader, uuids, summary, obsolete)
    talklogs = [letter for letter in letters if not (letter.is_link_row or letter.is_uuid_row)]
    if talklogs:
        jobs = _Jobs(sessions, store_url, query_all, loader, settings, run_id)
        _replay_windows(jobs, talklogs, summary, obsolete)
    _close_obsolete(sessions, obsolete)
    summary.obsolete = dict(Counter(obsolete.values()))
    summary.api_calls = api_calls() if api_calls else None
    return summary


def _take_letters(
    sessions: sessionmaker[Session], object_name: str | None, error_code: str | None
) -> list[_Letter]:
    """The open letters to replay, parents first; they stop riding along with other loads."""
    taken: list[_Letter] = []
    with sessions.begin() as session:
        for name in REPLAY_ORDER:
            if object_name and name != object_name:
                continue
            for letter in deadletters.open_letters(session, retryable_only=False, object_name=name):
                if not error_code or letter.error_code == error_code:
                    letter.retryable = False  # rebuilt here; a new refusal classifies it again
                    taken.append(_Letter(letter.id, letter.object_name, letter.record_key))
    return taken


def _replay_links(
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    loader: BulkLoader,
    settings: TalkLogSettings,
    letters: list[_Letter],
    summary: ReplaySummary,
    obsolete: dict[_Letter, str],
    describe: Describe | None,
) -> None:
    """Rebuild the letters' links (`LineWorks__c` and exchange Task) as the link sync of the
    link source writes them (`TALKLOG_LINK_SOURCE`)."""
    if link_source() is LinkSource.SALESFORCE:
        _replay_salesforce_links(
            sessions, query_all, loader, settings, letters, summary, obsolete, describe
        )
        return
    with sessions() as session:
        links = {state.link.link_key: state.link for state in links_by_key(session, _keys(letters))}
    for letter in letters:
        link = links.get(letter.link_key)
        reason = "LINK_DELETED" if link is None else None
        if letter.object_name == "Task":
            reason = exchange_obsolete(link, letter.record_key)
        if reason:
            obsolete[letter] = reason
    live = {letter.link_key for letter in letters if letter not in obsolete}
    if not live:
        return
    synced = sync_links(
        sessions=sessions,
        query_all=query_all,
        loader=loader,
        link_keys=live,
        timezone=settings.timezone,
        describe=describe,
    )
    summary.add_load("LineWorks__c", synced.linkworks)
    summary.add_load("Task", synced.exchange_tasks)
    summary.add_unresolved(synced.unresolved_targets)


def _replay_salesforce_links(
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    loader: BulkLoader,
    settings: TalkLogSettings,
    letters: list[_Letter],
    summary: ReplaySummary,
    obsolete: dict[_Letter, str],
    describe: Describe | None,
) -> None:
    """Links made in Salesforce: read the letters' records now and record the reps' decisions
    (as the link sync does), then write only the project's fields, each where nobody edited
    the record since that read, and the exchange Tasks still due (same keys)."""
    query_all = patient_queries(query_all, sleep=loader.sleep)
    found = SalesforceLinkSummary()
    keys = _keys(letters)
    linked_since = has_linked_since(describe, sleep=loader.sleep)
    read = read_back(sessions, decisions_of(query_all, keys, linked_since=linked_since), found)
    with sessions() as session:
        links = {state.link.link_key: state.link for state in links_by_key(session, keys)}
        mirrored = contacts_by_id(session, keys)
    records, tasks = [], set()
    for letter in letters:
        if letter.object_name == "LineWorks__c" and letter.link_key not in mirrored:
            obsolete[letter] = "CONTACT_GONE"
        elif letter.object_name == "LineWorks__c":
            records.append(mirrored[letter.link_key])
        elif reason := exchange_obsolete(links.get(letter.link_key), letter.record_key):
            obsolete[letter] = reason
        else:
            tasks.add(letter.link_key)
    rows = mirror_rows(sessions, query_all, read, records) if records else {}
    exchanges = exchange_states(sessions, tasks) if tasks else []
    write_back(
        sessions, query_all, loader, read, found,
        timezone=settings.timezone, describe=describe, rows=rows, exchanges=exchanges,
    )  # fmt: skip
    summary.add_load("LineWorks__c", found.linkworks)
    summary.add_load("Task", found.exchange_tasks)
    for object_name, load in found.parent_uuids.get("loads", {}).items():
        summary.add_load(object_name, load)
    summary.add_unresolved(found.unresolved_targets)
    summary.edited_since_read += found.edited_during_sync


_KEPT = {
    "already_set": "UUID_SET",
    "held_elsewhere": "UUID_HELD",
    "converted_leads": "LEAD_CONVERTED",
    "missing": "RECORD_MISSING",
}


def _replay_uuids(
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    loader: BulkLoader,
    letters: list[_Letter],
    summary: ReplaySummary,
    obsolete: dict[_Letter, str],
) -> None:
    """Fill the letters' records' `LineWorksUuid__c` from the links in force now, by the rules
    of `link_parents` (an empty field only, never a converted lead); a record no link points
    at, or that the rules keep, is obsolete."""
    linked = _linked_parents(sessions, letters)
    pointed_at = {record[:15] for _, record in linked.values()}
    for letter in letters:
        if letter.record_key[:15] not in pointed_at:
            obsolete[letter] = "NO_LINK"
    if not linked:
        return
    filled = fill_parent_uuids(patient_queries(query_all, sleep=loader.sleep), loader, linked)
    for object_name, load in filled.loads.items():
        summary.add_load(object_name, load)
    for letter in letters:
        kept = _KEPT.get(filled.by_record.get(letter.record_key[:15], ""))
        if letter not in obsolete and kept:
            obsolete[letter] = kept


def _linked_parents(
    sessions: sessionmaker[Session], letters: list[_Letter]
) -> dict[str, tuple[TargetType, str]]:
    """Contact id -> (kind, the letter's record id) of each link in force that points at a
    letter's record (15-character ids compared)."""
    kinds = {name: kind for kind, name in PARENT_OBJECTS.items()}
    records = {(kinds[x.object_name].value, x.record_key[:15]): x for x in letters}
    found: dict[str, tuple[TargetType, str]] = {}
    with sessions() as session:
        for batch in chunked(sorted({record for _, record in records}), IN_LIST_SIZE):
            rows = session.execute(
                sa.select(Link.link_key, Link.target_type, Link.target_id).where(
                    Link.linked.is_(True), sa.func.substr(Link.target_id, 1, 15).in_(batch)
                )
            )
            for key, kind, target in rows:
                letter = records.get((kind, target[:15]))
                if letter is not None:
                    found[key] = (TargetType(kind), letter.record_key)
    return found


def _keys(letters: Iterable[_Letter]) -> set[str]:
    return {letter.link_key for letter in letters}


@dataclass(frozen=True)
class _Jobs:
    """What re-running a talk window needs (the talk-log DAG's wiring and settings)."""

    sessions: sessionmaker[Session]
    store_url: str | sa.URL
    query_all: QueryAll
    loader: BulkLoader
    settings: TalkLogSettings
    run_id: str | None


def _replay_windows(
    jobs: _Jobs, letters: list[_Letter], summary: ReplaySummary, obsolete: dict[_Letter, str]
) -> None:
    """Re-run each letter's TalkLog window for the letters' rooms; what it no longer writes
    is obsolete."""
    claims = _claims(jobs.sessions, {letter.talklog_key for letter in letters})
    rooms: dict[tuple[dt.datetime, dt.datetime], set[str]] = defaultdict(set)
    for letter in letters:
        claim = claims.get(letter.talklog_key)
        if claim is None:
            obsolete[letter] = "NO_CLAIM"
        else:
            rooms[claim[1], claim[2]].add(claim[0])
    written: set[str] = set()
    for (start, end), window_rooms in sorted(rooms.items()):
        run = write_talk_logs(
            sessions=jobs.sessions,
            store_url=jobs.store_url,
            query_all=jobs.query_all,
            loader=jobs.loader,
            window=TalkWindow(start, end),
            settings=jobs.settings,
            rooms=window_rooms,
            staged_keys=written,
            run_id=jobs.run_id,
            reader_process_min_messages=None,  # a few rooms: read here
        )
        summary.windows += 1
        summary.rooms += run.rooms
        summary.add_load("TalkLog__c", run.talklogs)
        summary.add_load("Task", run.tasks)
        summary.add_unresolved(run.unresolved_targets)
    for letter in letters:
        if letter not in obsolete and letter.record_key not in written:
            obsolete[letter] = "NOT_WRITTEN"


def _claims(
    sessions: sessionmaker[Session], keys: set[str]
) -> dict[str, tuple[str, dt.datetime, dt.datetime]]:
    """TalkLog key -> (room, window start, window end), from the delivery ledger."""
    found: dict[str, tuple[str, dt.datetime, dt.datetime]] = {}
    columns = (
        TalkLogClaim.talklog_key,
        TalkLogClaim.room_id,
        TalkLogClaim.window_start,
        TalkLogClaim.window_end,
    )
    with sessions() as session:
        for batch in chunked(sorted(keys), IN_LIST_SIZE):
            rows = session.execute(sa.select(*columns).where(TalkLogClaim.talklog_key.in_(batch)))
            found.update({key: (room, start, end) for key, room, start, end in rows})
    return found


def _close_obsolete(sessions: sessionmaker[Session], obsolete: Mapping[_Letter, str]) -> None:
    if not obsolete:
        return
    reasons = {letter.id: f"{code}: {OBSOLETE[code]}" for letter, code in obsolete.items()}
    with sessions.begin() as session:
        deadletters.resolve_obsolete(session, reasons, dt.datetime.now(dt.UTC))
