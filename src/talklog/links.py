"""Link sync: mirror the store's links into `LineWorks__c` and add one `LINE WORKS交換` Task
per new link. Driven by a watermark on `links.updated_at`, kept by the project."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.loading import BulkLoader, patient_queries
from talklog.owners import Owners, staff_emails, staff_owners
from talklog.salesforce.bulk import UNCHANGED
from talklog.salesforce.fields import UPSERT_KEYS
from talklog.store.models import LineUser, LineWorksUser, Link
from talklog.summary import JobSummary
from talklog.targets import (
    CustomerRecord,
    Describe,
    QueryAll,
    person_accounts_enabled,
    resolve_customers,
)
from talklog.watermarks import EPOCH, advance_watermark, read_watermark
from talklog.windows import DEFAULT_TIMEZONE

EXCHANGE_SUBJECT = "LINE WORKS交換"
WATERMARK = "link_sync"


@dataclass(frozen=True)
class LinkState:
    """A link as Salesforce should show it."""

    link: Link
    line_name: str
    owner_id: str | None


def linkworks_row(state: LinkState, customer: CustomerRecord) -> dict[str, Any]:
    """The `LineWorks__c` row of a link; an unlinked link keeps its record, cleared."""
    link = state.link
    return {
        "LinkKey__c": link.link_key,
        "Name": (link.nickname or state.line_name)[:80],
        "LineUserId__c": link.line_user_id,
        "LineWorksUserId__c": link.lw_user_id,
        "Nickname__c": link.nickname if link.linked else None,
        "AppLink__c": link.app_link if link.linked else None,
        "Linked__c": "true" if link.linked else "false",
        **customer.parent_lookups(),
    }


def exchange_task_row(state: LinkState, customer: CustomerRecord, timezone: str) -> dict[str, Any]:
    """The `LINE WORKS交換` Task of a link (one per time it was linked: keyed by that time)."""
    link = state.link
    who_id, what_id = customer.task_parents()
    linked_at = link.linked_at.astimezone(ZoneInfo(timezone))
    return {
        "LineWorksKey__c": exchange_key(link),
        "Subject": EXCHANGE_SUBJECT,
        "Description": (
            f"LINE WORKSで{state.line_name}さんと連絡先を交換しました ({linked_at:%Y-%m-%d %H:%M})"
        ),
        "Status": "Completed",
        "ActivityDate": linked_at.date().isoformat(),
        "OwnerId": state.owner_id or UNCHANGED,  # unknown staff user: the default owner
        "WhoId": who_id,
        "WhatId": what_id,
        "LineWorksKind__c": "Exchange",
    }


def exchange_key(link: Link) -> str:
    """`LineWorksKey__c` of a link's `LINE WORKS交換` Task: the link and when it was made."""
    return f"exchange|{link.link_key}|{link.linked_at:%Y%m%dT%H%M%SZ}"


def exchange_obsolete(link: Link | None, task_key: str) -> str | None:
    """Why the exchange Task `task_key` is no longer due for this link (a reason code), or
    None when it still is."""
    if link is None:
        return "LINK_DELETED"
    if not link.linked:
        return "LINK_UNLINKED"
    return "LINK_RELINKED" if exchange_key(link) != task_key else None


@dataclass
class LinkSyncSummary(JobSummary):
    """What a link sync pushed: links since the watermark, their records and exchange Tasks."""

    since: str
    until: str | None = None
    links: int = 0
    linked: int = 0
    unlinked: int = 0
    unresolved_targets: dict[str, int] = field(default_factory=dict)
    tasks_owned_by_integration_user: dict[str, int] = field(default_factory=dict)  # by reason
    staff_without_active_user: dict[str, list[str]] = field(default_factory=dict)  # LW user ids
    linkworks: dict[str, Any] = field(default_factory=dict)
    exchange_tasks: dict[str, Any] = field(default_factory=dict)

    def loads(self) -> Iterable[Mapping[str, Any]]:
        return (self.linkworks, self.exchange_tasks)


def changed_links(session: Session, since: dt.datetime) -> Iterator[LinkState]:
    """Links changed after `since`, oldest change first."""
    return _link_states(session, Link.updated_at > since)


def links_by_key(session: Session, link_keys: Collection[str]) -> Iterator[LinkState]:
    """The links with these keys as they are now (keys without a link are left out)."""
    for keys in chunked(sorted(link_keys), IN_LIST_SIZE):
        yield from _link_states(session, Link.link_key.in_(keys))


def _link_states(session: Session, where: sa.ColumnElement[bool]) -> Iterator[LinkState]:
    rows = session.execute(
        sa.select(Link, LineUser.display_name, LineWorksUser.salesforce_user_id)
        .join(LineUser, LineUser.id == Link.line_user_id)
        .join(LineWorksUser, LineWorksUser.id == Link.lw_user_id)
        .where(where)
        .order_by(Link.updated_at, Link.link_key)
    )
    for link, line_name, owner_id in rows:
        yield LinkState(link, line_name, owner_id)


def sync_links(
    *,
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    loader: BulkLoader,
    link_keys: Collection[str] | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    api_calls: Callable[[], int] | None = None,
    describe: Describe | None = None,
) -> LinkSyncSummary:
    """Push link changes since the last successful sync; move the watermark only on success.

    `link_keys`: push these links as they are now instead (a replay's), watermark unmoved.
    `api_calls` counts the run's Salesforce API calls for the summary (None: not counted);
    `describe` tells whether the org has Person Accounts (one call; None: assumed).
    """
    with sessions() as session:
        since = read_watermark(session, WATERMARK) or EPOCH
        if link_keys is None:
            states = list(changed_links(session, since))
        else:
            states = list(links_by_key(session, link_keys))
        emails = staff_emails(session, {state.link.lw_user_id for state in states})
    summary = LinkSyncSummary(since=since.isoformat())
    linked = sorted({(s.link.target_type, s.link.target_id) for s in states})
    query_all = patient_queries(query_all, sleep=loader.sleep)
    person_accounts = person_accounts_enabled(describe, sleep=loader.sleep) if linked else True
    placed, unresolved = resolve_customers(query_all, linked, person_accounts=person_accounts)
    summary.unresolved_targets = dict(Counter(item.reason.split(":")[0] for item in unresolved))
    owners = staff_owners(query_all, {s.link.lw_user_id: s.owner_id for s in states}, emails=emails)
    states = [replace(s, owner_id=owners.owner_ids.get(s.link.lw_user_id)) for s in states]
    rows, tasks = _rows(states, placed, timezone, summary, owners)
    summary.linkworks = loader.upsert("LineWorks__c", UPSERT_KEYS["LineWorks__c"], rows).summary()
    exchange = loader.upsert("Task", UPSERT_KEYS["Task"], tasks)
    summary.exchange_tasks = exchange.summary()
    owners.count_refused(exchange.resent_without_owner)
    summary.tasks_owned_by_integration_user = owners.tasks_by_reason()
    summary.staff_without_active_user = owners.staff_by_reason()
    if states and link_keys is None:
        until = max(state.link.updated_at for state in states)
        summary.until = until.isoformat()
        advance_watermark(sessions, WATERMARK, until)
    summary.api_calls = api_calls() if api_calls else None
    return summary


def _rows(
    states: list[LinkState],
    placed: Mapping[str, CustomerRecord],
    timezone: str,
    summary: LinkSyncSummary,
    owners: Owners,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, tasks = [], []
    for state in states:
        customer = placed.get(state.link.target_id)
        if customer is None:
            continue
        summary.links += 1
        rows.append(linkworks_row(state, customer))
        if state.link.linked:
            summary.linked += 1
            tasks.append(exchange_task_row(state, customer, timezone))
            owners.count_task(state.link.lw_user_id)
        else:
            summary.unlinked += 1
    return rows, tasks
