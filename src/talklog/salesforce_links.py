"""Links made in Salesforce (issue 18, spec section 6): read the reps' decisions back.

A rep links a mirrored `LineWorks__c` (`talklog.link_mirror`) by setting its parent lookup and
ticking `Linked__c`; unticking is "do not link". Each run:

1. reads the records changed since the watermark `salesforce_links` (by `SystemModstamp`,
   minus `OVERLAP` so that a transaction committed late is not missed; re-reading is a no-op);
2. records each decision in the store: a new link or a link again opens a `LinkPeriod` from the
   record's `LastModifiedDate` (the rep's click; for a link the store has never seen, from
   `LinkedSince__c` when an admin's import set it earlier: a link migrated from another
   system; read only where the org has that field, one describe per run), "do not link"
   closes it; a moved lookup (the rep's or the re-link's) changes the link's target without
   a new period;
3. writes only what the project owns: nickname and App Link (cleared on "do not link",
   restored on a new link) and one `LINE WORKS交換` Task per new link. A record whose
   `SystemModstamp` moved after the read (a person edited it meanwhile) is not written: the
   edit wins, and the next run reads it (its stamp is past the watermark);
4. fills the LINE WORKS contact id into the linked parent's empty `LineWorksUuid__c`
   (`talklog.link_parents`);
5. mirrors new or changed LINE WORKS contacts.

`TALKLOG_LINK_SOURCE` (`LinkSource`) chooses this path or the store-authored one
(`talklog.links`); only one runs. No name or message content is logged.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog.batching import chunked
from talklog.link_mirror import (
    OWNED_FIELDS,
    MirroredContact,
    contacts_by_id,
    link_states,
    mirror_contacts,
    owned_fields,
    record_row,
)
from talklog.link_parents import fill_parent_uuids
from talklog.links import EXCHANGE_SUBJECT, LinkState, exchange_task_row
from talklog.loading import BulkLoader, patient_queries
from talklog.owners import staff_emails, staff_owners
from talklog.salesforce.failures import call_with_policy
from talklog.salesforce.fields import UPSERT_KEYS
from talklog.salesforce.soql import quote
from talklog.settings import env_choice
from talklog.store.models import LineUser, Link, LinkPeriod, TargetType
from talklog.summary import JobSummary
from talklog.targets import (
    IN_CLAUSE_SIZE,
    Describe,
    QueryAll,
    person_accounts_enabled,
    resolve_customers,
)
from talklog.watermarks import EPOCH, advance_watermark, read_watermark
from talklog.windows import DEFAULT_TIMEZONE

SOURCE_ENV = "TALKLOG_LINK_SOURCE"
WATERMARK = "salesforce_links"
OVERLAP = dt.timedelta(minutes=5)
LINKED_SINCE = "LinkedSince__c"
PARENTS = (
    ("ExternalContact__c", TargetType.EXTERNAL_CONTACT),
    ("Lead__c", TargetType.LEAD),
    ("Contact__c", TargetType.CONTACT),
    ("Account__c", TargetType.PERSON_ACCOUNT),
)
"""The parent lookups in the order that names the link's target (an account link keeps its
external contact; a converted lead's records name its contact)."""
_STAMPS_SOQL = "SELECT LinkKey__c, SystemModstamp FROM LineWorks__c WHERE LinkKey__c IN ({keys})"
__all__ = ["EXCHANGE_SUBJECT", "LinkSource", "link_source", "sync_salesforce_links"]
NO_LINKED_SINCE = (
    f"this org's LineWorks__c has no {LINKED_SINCE} field: a migrated link's start cannot be"
    " set; deploy the shipped metadata (salesforce/, README 'Set up the Salesforce side')"
)


class LinkSource(StrEnum):
    """Where links are made (`TALKLOG_LINK_SOURCE`)."""

    SALESFORCE = "salesforce"  # reps link in Salesforce; this module reads it back
    STORE = "store"  # a LINE WORKS-side app writes the store's links (`talklog.links`)


def link_source(value: str | None = None) -> LinkSource:
    """`value`, or `TALKLOG_LINK_SOURCE` (default `salesforce`); refused when unknown."""
    return env_choice(SOURCE_ENV, LinkSource, LinkSource.SALESFORCE, value)


class Change(StrEnum):
    """What one decision changed in the store."""

    LINKED = "linked"  # a new link, or a link again after "do not link"
    UNLINKED = "unlinked"
    RETARGETED = "retargeted"  # still linked, to another record
    NONE = "none"


@dataclass(frozen=True)
class Decision:
    """A `LineWorks__c` record as read: the rep's decision and the project's fields."""

    row: Mapping[str, Any]
    link_key: str
    target: tuple[TargetType, str] | None  # None: unticked, or ticked without a parent
    ticked: bool
    decided_at: dt.datetime  # LastModifiedDate
    stamp: str  # SystemModstamp as Salesforce wrote it
    since: dt.datetime | None = None  # LinkedSince__c: a migrated link's start, if earlier

    @property
    def first_start(self) -> dt.datetime:
        """Where the first period of a link the store has never seen starts."""
        return min(self.since, self.decided_at) if self.since else self.decided_at


def decision(row: Mapping[str, Any]) -> Decision:
    ticked = str(row.get("Linked__c")).lower() == "true"
    parent = next(((kind, str(row[name])) for name, kind in PARENTS if row.get(name)), None)
    return Decision(
        row,
        str(row["LinkKey__c"]),
        parent if ticked else None,
        ticked,
        parse_stamp(str(row["LastModifiedDate"])),
        str(row["SystemModstamp"]),
        parse_stamp(str(row[LINKED_SINCE])) if row.get(LINKED_SINCE) else None,
    )


def parse_stamp(value: str) -> dt.datetime:
    """Salesforce's datetime text (`2026-01-09T00:00:00.000+0000`) as an aware UTC time."""
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def soql_stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{value.microsecond // 1000:03d}Z"
    )


def has_linked_since(
    describe: Describe | None, *, sleep: Callable[[float], None] = time.sleep
) -> bool:
    """Whether the org's `LineWorks__c` has `LinkedSince__c` (an org upgraded before its
    metadata was deployed lacks it): one describe call under the failure policy; ask once per
    run. Without a describe callable it is assumed there."""
    if describe is None:
        return True
    answer = call_with_policy(lambda: describe("LineWorks__c"), sleep=sleep)
    return any(item.get("name") == LINKED_SINCE for item in answer.get("fields") or ())


def decisions_soql(where: str, *, linked_since: bool = True) -> str:
    """The query of `LineWorks__c` decisions (`LinkedSince__c` only where the org has it)."""
    names = ["Id", "LinkKey__c", "Linked__c", *(name for name, _ in PARENTS), *OWNED_FIELDS]
    names += [LINKED_SINCE] if linked_since else []
    names += ["LastModifiedDate", "LastModifiedById", "SystemModstamp"]
    return f"SELECT {', '.join(names)} FROM LineWorks__c WHERE {where} ORDER BY SystemModstamp, Id"


def read_decisions(
    query_all: QueryAll, since: dt.datetime, *, linked_since: bool = True
) -> list[Decision]:
    """Every `LineWorks__c` changed after `since`, oldest change first."""
    soql = decisions_soql(f"SystemModstamp > {soql_stamp(since)}", linked_since=linked_since)
    return [decision(row) for row in query_all(soql)]


def decisions_of(
    query_all: QueryAll, link_keys: Collection[str], *, linked_since: bool = True
) -> list[Decision]:
    """The `LineWorks__c` records of these contacts as they are now (one SOQL per 300)."""
    found: list[Decision] = []
    for chunk in chunked(sorted(link_keys), IN_CLAUSE_SIZE):
        where = f"LinkKey__c IN ({','.join(map(quote, chunk))})"
        found += [
            decision(row) for row in query_all(decisions_soql(where, linked_since=linked_since))
        ]
    return found


@dataclass
class SalesforceLinkSummary(JobSummary):
    """What a read-back run found, recorded and wrote (`since`: None for a replay's)."""

    since: str | None = None
    until: str | None = None
    records_read: int = 0
    linked: int = 0
    unlinked: int = 0
    retargeted: int = 0
    ticked_without_parent: int = 0  # treated as not linked
    unknown_contacts: int = 0  # LinkKey__c is no LINE WORKS contact the store knows
    edited_during_sync: int = 0  # not written: a person edited it after the read
    unresolved_targets: dict[str, int] = field(default_factory=dict)
    tasks_owned_by_integration_user: dict[str, int] = field(default_factory=dict)
    staff_without_active_user: dict[str, list[str]] = field(default_factory=dict)
    linkworks: dict[str, Any] = field(default_factory=dict)
    exchange_tasks: dict[str, Any] = field(default_factory=dict)
    parent_uuids: dict[str, Any] = field(default_factory=dict)  # ParentUuidSummary.as_dict()
    mirror: dict[str, Any] = field(default_factory=dict)  # MirrorSummary.as_dict()

    def loads(self) -> Iterable[Mapping[str, Any]]:
        loads = [self.linkworks, self.exchange_tasks, *self.parent_uuids.get("loads", {}).values()]
        return [load for load in loads if load]


def apply_decision(session: Session, found: Decision, contact: MirroredContact) -> Change:
    """Record one decision in the store's links and link periods."""
    link = session.scalars(
        sa.select(Link).where(
            sa.or_(
                Link.link_key == found.link_key,
                sa.and_(
                    Link.lw_user_id == contact.lw_user_id,
                    Link.line_user_id == contact.line_user_id,
                ),
            )
        )
    ).first()
    now = dt.datetime.now(dt.UTC)
    if found.target is None:
        return _unlink(session, link, found.decided_at, now) if link else Change.NONE
    if link is None:
        link = _new_link(session, found, contact)
        start = found.first_start
    elif link.linked:
        return _retarget(link, found.target, now)
    else:
        start = max(found.decided_at, link.unlinked_at or found.decided_at)
    _retarget(link, found.target, now)
    link.linked, link.linked_at, link.unlinked_at, link.updated_at = True, start, None, now
    shown = owned_fields(contact, shown=True)
    link.nickname, link.app_link = shown["Nickname__c"], shown["AppLink__c"]
    session.add(LinkPeriod(link_id=link.id, started_at=start))
    return Change.LINKED


def _new_link(session: Session, found: Decision, contact: MirroredContact) -> Link:
    assert found.target is not None
    kind, target_id = found.target
    link = Link(
        link_key=found.link_key,
        lw_user_id=contact.lw_user_id,
        line_user_id=contact.line_user_id,
        target_type=kind.value,
        target_id=target_id,
        linked=False,
        linked_at=found.first_start,
        updated_at=found.decided_at,
    )
    session.add(link)
    session.flush()
    return link


def _retarget(link: Link, target: tuple[TargetType, str], now: dt.datetime) -> Change:
    kind, target_id = target
    if (link.target_type, link.target_id[:15]) == (kind.value, target_id[:15]):
        return Change.NONE
    link.target_type, link.target_id, link.updated_at = kind.value, target_id, now
    return Change.RETARGETED


def _unlink(session: Session, link: Link, at: dt.datetime, now: dt.datetime) -> Change:
    if not link.linked:
        return Change.NONE
    open_periods = session.scalars(
        sa.select(LinkPeriod).where(LinkPeriod.link_id == link.id, LinkPeriod.ended_at.is_(None))
    )
    for period in open_periods:
        period.ended_at = max(at, period.started_at)
    link.linked, link.unlinked_at, link.updated_at = False, at, now
    return Change.UNLINKED


def record_decisions(
    sessions: sessionmaker[Session], decisions: list[Decision], summary: SalesforceLinkSummary
) -> tuple[dict[str, MirroredContact], list[LinkState], set[str]]:
    """Apply the decisions in one transaction: (contacts, new links, keys now shown)."""
    new_links: list[LinkState] = []
    with sessions.begin() as session:
        known = contacts_by_id(session, {d.link_key for d in decisions})
        for found in decisions:
            contact = known.get(found.link_key)
            if contact is None:
                summary.unknown_contacts += 1
                continue
            summary.ticked_without_parent += found.ticked and found.target is None
            change = apply_decision(session, found, contact)
            if change is not Change.NONE:
                setattr(summary, change.value, getattr(summary, change.value) + 1)
            if change is Change.LINKED:
                new_links.append(_state(session, found.link_key, contact))
        hidden = set(
            session.scalars(
                sa.select(Link.link_key).where(
                    Link.link_key.in_(list(known)), Link.linked.is_(False)
                )
            )
        )
        session.expunge_all()
    return known, new_links, hidden


def exchange_states(sessions: sessionmaker[Session], link_keys: Collection[str]) -> list[LinkState]:
    """These links (the store holds them) as the sync sends their exchange Task; a link whose
    contact left the store is left out."""
    with sessions() as session:
        known = contacts_by_id(session, link_keys)
        found = [_state(session, key, contact) for key, contact in sorted(known.items())]
        session.expunge_all()
    return found


def _state(session: Session, link_key: str, contact: MirroredContact) -> LinkState:
    link = session.scalars(sa.select(Link).where(Link.link_key == link_key)).one()
    name = session.scalar(sa.select(LineUser.display_name).where(LineUser.id == link.line_user_id))
    return LinkState(link, contact.name or name or "", contact.salesforce_user_id)


def field_updates(
    decisions: Iterable[Decision], known: Mapping[str, MirroredContact], hidden: set[str]
) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """LinkKey__c -> (stamp read, row) for records whose nickname or App Link must change."""
    updates: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for found in decisions:
        contact = known.get(found.link_key)
        if contact is None:
            continue
        wanted = owned_fields(contact, shown=found.link_key not in hidden)
        fields = {name: wanted[name] for name in ("Nickname__c", "AppLink__c")}
        if any((found.row.get(name) or None) != value for name, value in fields.items()):
            updates[found.link_key] = (found.stamp, {"LinkKey__c": found.link_key, **fields})
    return updates


def unedited(
    query_all: QueryAll, updates: Mapping[str, tuple[str | None, dict[str, Any]]]
) -> tuple[list[dict[str, Any]], int]:
    """The rows of records nobody changed since they were read (stamp None: read as missing,
    still missing), and how many were."""
    stamps: dict[str, str] = {}
    for chunk in chunked(sorted(updates), IN_CLAUSE_SIZE):
        rows = query_all(_STAMPS_SOQL.format(keys=",".join(map(quote, chunk))))
        stamps.update((str(row["LinkKey__c"]), str(row["SystemModstamp"])) for row in rows)
    rows = [row for key, (stamp, row) in updates.items() if stamps.get(key) == stamp]
    return rows, len(updates) - len(rows)


@dataclass(frozen=True)
class ReadBack:
    """Records read and their decisions recorded in the store (`record_decisions`)."""

    decisions: list[Decision]
    known: dict[str, MirroredContact]  # LinkKey__c -> the contact, for records the store knows
    new_links: list[LinkState]  # linked by these decisions: an exchange Task is due
    hidden: set[str]  # keys whose link is not in force: no nickname, no App Link


def read_back(
    sessions: sessionmaker[Session], decisions: list[Decision], summary: SalesforceLinkSummary
) -> ReadBack:
    summary.records_read = len(decisions)
    return ReadBack(decisions, *record_decisions(sessions, decisions, summary))


def write_back(
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    loader: BulkLoader,
    read: ReadBack,
    summary: SalesforceLinkSummary,
    *,
    timezone: str,
    describe: Describe | None,
    rows: Mapping[str, tuple[str | None, dict[str, Any]]] | None = None,
    exchanges: Sequence[LinkState] = (),
) -> None:
    """What the project writes after a read: the changed nickname and App Link of the records
    read (and `rows`: LinkKey__c -> (stamp read, row), a replay's), each only where nobody
    edited the record since the read; the exchange Tasks of the new links (and `exchanges`);
    the linked parents' empty `LineWorksUuid__c`."""
    updates = {**field_updates(read.decisions, read.known, read.hidden), **(rows or {})}
    written, summary.edited_during_sync = unedited(query_all, updates)
    if written:
        outcome = loader.upsert("LineWorks__c", UPSERT_KEYS["LineWorks__c"], written)
        summary.linkworks = outcome.summary()
    due = {state.link.link_key: state for state in [*exchanges, *read.new_links]}
    _exchange_tasks(sessions, query_all, loader, list(due.values()), timezone, describe, summary)
    linked = {d.link_key: d.target for d in read.decisions if d.target and d.link_key in read.known}
    if linked:
        summary.parent_uuids = fill_parent_uuids(query_all, loader, linked).as_dict()


def sync_salesforce_links(
    *,
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    loader: BulkLoader,
    timezone: str = DEFAULT_TIMEZONE,
    api_calls: Callable[[], int] | None = None,
    describe: Describe | None = None,
) -> SalesforceLinkSummary:
    """Read the reps' decisions since the last run, record them, write the project's fields
    and exchange Tasks, mirror new contacts; the watermark moves to the last record read.
    `describe` tells whether the org has `LinkedSince__c` and Person Accounts (one call each;
    None: assumed)."""
    query_all = patient_queries(query_all, sleep=loader.sleep)
    with sessions() as session:
        mark = read_watermark(session, WATERMARK)
    since = mark - OVERLAP if mark else EPOCH
    summary = SalesforceLinkSummary(since=since.isoformat())
    linked_since = has_linked_since(describe, sleep=loader.sleep)
    read = read_back(sessions, read_decisions(query_all, since, linked_since=linked_since), summary)
    write_back(sessions, query_all, loader, read, summary, timezone=timezone, describe=describe)
    summary.mirror = mirror_contacts(
        sessions=sessions, query_all=query_all, loader=loader
    ).as_dict()
    if read.decisions:
        until = max(parse_stamp(d.stamp) for d in read.decisions)
        summary.until = until.isoformat()
        advance_watermark(sessions, WATERMARK, until)
    summary.api_calls = api_calls() if api_calls else None
    return summary


def mirror_rows(
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    read: ReadBack,
    contacts: Collection[MirroredContact],
) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """LinkKey__c -> (stamp read, row) of these contacts' records as the mirror writes them
    (the project's fields, owner included; nickname and App Link as the store's link says),
    for a replay: written only where nobody edited the record since `read`."""
    with sessions() as session:
        shown = link_states(session, [c.contact_id for c in contacts])
        emails = staff_emails(session, {c.lw_user_id for c in contacts})
    staff = {c.lw_user_id: c.salesforce_user_id for c in contacts}
    owners = staff_owners(query_all, staff, emails=emails).owner_ids
    stamps = {d.link_key: d.stamp for d in read.decisions}
    return {
        c.contact_id: (
            stamps.get(c.contact_id),
            record_row(c, shown=shown.get(c.contact_id, True), owner_id=owners.get(c.lw_user_id)),
        )
        for c in contacts
    }


def _exchange_tasks(
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    loader: BulkLoader,
    new_links: list[LinkState],
    timezone: str,
    describe: Describe | None,
    summary: SalesforceLinkSummary,
) -> None:
    """One `LINE WORKS交換` Task per new link, on the record the customer lives on now."""
    if not new_links:
        return
    linked = sorted({(s.link.target_type, s.link.target_id) for s in new_links})
    person_accounts = person_accounts_enabled(describe, sleep=loader.sleep)
    placed, unresolved = resolve_customers(query_all, linked, person_accounts=person_accounts)
    summary.unresolved_targets = dict(Counter(item.reason.split(":")[0] for item in unresolved))
    with sessions() as session:
        emails = staff_emails(session, {s.link.lw_user_id for s in new_links})
    staff = {s.link.lw_user_id: s.owner_id for s in new_links}
    owners = staff_owners(query_all, staff, emails=emails)
    tasks = []
    for state in new_links:
        customer = placed.get(state.link.target_id)
        if customer is not None:
            owned = LinkState(
                state.link, state.line_name, owners.owner_ids.get(state.link.lw_user_id)
            )
            tasks.append(exchange_task_row(owned, customer, timezone))
            owners.count_task(state.link.lw_user_id)
    outcome = loader.upsert("Task", UPSERT_KEYS["Task"], tasks)
    summary.exchange_tasks = outcome.summary()
    owners.count_refused(outcome.resent_without_owner)
    summary.tasks_owned_by_integration_user = owners.tasks_by_reason()
    summary.staff_without_active_user = owners.staff_by_reason()
