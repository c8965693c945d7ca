"""Re-link: keep LineWorks__c, TalkLog__c and the LINE WORKS Tasks on the record the customer
lives on now (spec section 7).

Finds the customers that moved since the last run (external contacts modified, leads
converted), places them with the same code as the talk-log DAGs (`talklog.targets`), reads
their records with Bulk 2.0 queries and moves only what differs. It never creates or deletes
TalkLog or Task records and never writes to a converted lead; running it twice moves nothing
the second time. API calls grow with the number of moved customers, not with TalkLogs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog.batching import chunked
from talklog.loading import BulkLoader, patient_queries
from talklog.salesforce.fields import UPSERT_KEYS
from talklog.salesforce.soql import id_list, quote
from talklog.store.models import Link
from talklog.summary import JobSummary
from talklog.targets import (
    CustomerRecord,
    Describe,
    QueryAll,
    person_accounts_enabled,
    resolve_customers,
)
from talklog.watermarks import EPOCH, advance_watermark, read_watermark

BulkQuery = Callable[[str], Iterable[Mapping[str, Any]]]
"""Runs a SOQL query as a Bulk 2.0 query job; yields flat rows (`Rel__r.Field` columns)."""

WATERMARK = "relink"
CLOCK_MARGIN = dt.timedelta(minutes=10)  # re-read a little: moving is idempotent
BULK_IN_SIZE = 2_000  # ids per Bulk query (SOQL stays far below its 100,000-character limit)
LOOKUPS = ("ExternalContact__c", "Lead__c", "Account__c", "Contact__c")


@dataclass
class RelinkSummary(JobSummary):
    """What a re-link run found and moved (records accepted, by object, and each load)."""

    since: str
    changed_customers: int = 0
    links: int = 0
    unresolved_targets: int = 0
    moved: dict[str, int] = field(default_factory=dict)
    by_object: dict[str, dict[str, Any]] = field(default_factory=dict)  # LoadOutcome.summary()

    def loads(self) -> Iterable[Mapping[str, Any]]:
        return self.by_object.values()


def relink(
    *,
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    bulk_query: BulkQuery,
    loader: BulkLoader,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    api_calls: Callable[[], int] | None = None,
    describe: Describe | None = None,
) -> RelinkSummary:
    """Move every record of the customers that moved since the last successful run.

    `api_calls` counts the run's Salesforce API calls for the summary (None: not counted);
    `describe` tells whether the org has Person Accounts (one call; None: assumed).
    """
    started = clock()
    query_all = patient_queries(query_all, sleep=loader.sleep)
    with sessions() as session:
        mark = read_watermark(session, WATERMARK)
        since = mark - CLOCK_MARGIN if mark else EPOCH
        summary = RelinkSummary(since=since.isoformat())
        changed = moved_customers(query_all, since)
        summary.changed_customers = len(changed)
        links = _links_to(session, changed)
    summary.links = len(links)
    linked = sorted({(link.target_type, link.target_id) for link in links})
    person_accounts = person_accounts_enabled(describe, sleep=loader.sleep) if linked else True
    placed, unresolved = resolve_customers(query_all, linked, person_accounts=person_accounts)
    summary.unresolved_targets = len(unresolved)
    placement = {
        link.link_key: placed[link.target_id] for link in links if link.target_id in placed
    }
    moves = plan_moves(bulk_query, placement)
    for object_name, rows in moves.items():
        outcome = loader.upsert(object_name, UPSERT_KEYS[object_name], rows)
        summary.moved[object_name] = len(outcome.accepted_keys)
        summary.by_object[object_name] = outcome.summary()
    advance_watermark(sessions, WATERMARK, started, now=started)
    summary.api_calls = api_calls() if api_calls else None
    return summary


def moved_customers(query_all: QueryAll, since: dt.datetime) -> set[str]:
    """15-character ids of external contacts changed and leads converted since `since`."""
    stamp = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    changed = {
        row["Id"][:15]
        for row in query_all(f"SELECT Id FROM ExternalContact__c WHERE SystemModstamp > {stamp}")
    }
    converted = sorted(
        row["Id"]
        for row in query_all(
            "SELECT Id FROM Lead WHERE IsConverted = true"
            f" AND ConvertedDate >= {since.astimezone(dt.UTC).date().isoformat()}"
        )
    )
    changed.update(lead[:15] for lead in converted)
    for chunk in chunked(converted, 300):
        rows = query_all(f"SELECT Id FROM ExternalContact__c WHERE Lead__c IN {id_list(chunk)}")
        changed.update(row["Id"][:15] for row in rows)
    return changed


def _links_to(session: Session, customers: set[str]) -> list[Link]:
    if not customers:
        return []
    links = session.scalars(sa.select(Link).order_by(Link.link_key))
    return [link for link in links if link.target_id[:15] in customers]


def plan_moves(
    bulk_query: BulkQuery, placement: Mapping[str, CustomerRecord]
) -> dict[str, list[dict[str, Any]]]:
    """The rows to upsert per object so that every record sits where its customer lives."""
    if not placement:
        return {}
    linkworks = list(_bulk_in(bulk_query, _LINKWORKS_SOQL, "LinkKey__c", sorted(placement)))
    linkworks_link = {row["Id"]: row["LinkKey__c"] for row in linkworks}
    talklogs = list(_bulk_in(bulk_query, _TALKLOG_SOQL, "LineWorks__c", sorted(linkworks_link)))
    talklog_link = {row["TalkLogKey__c"]: row["LineWorks__r.LinkKey__c"] for row in talklogs}
    parents = sorted({row[f] for row in [*linkworks, *talklogs] for f in LOOKUPS if row.get(f)})
    tasks = _bulk_in(bulk_query, _TASK_SOQL, "WhatId", parents, or_field="WhoId")
    return {
        "LineWorks__c": _lookup_moves(
            linkworks, "LinkKey__c", lambda r: r["LinkKey__c"], placement
        ),
        "TalkLog__c": _lookup_moves(
            talklogs, "TalkLogKey__c", lambda r: r["LineWorks__r.LinkKey__c"], placement
        ),
        "Task": list(_task_moves(tasks, talklog_link, placement)),
    }


_LINKWORKS_SOQL = "SELECT Id, LinkKey__c, " + ", ".join(LOOKUPS) + " FROM LineWorks__c"
_TALKLOG_SOQL = (
    "SELECT Id, TalkLogKey__c, LineWorks__r.LinkKey__c, " + ", ".join(LOOKUPS) + " FROM TalkLog__c"
)
_TASK_SOQL = (
    "SELECT Id, LineWorksKey__c, TalkLogKey__c, LineWorksKind__c, WhoId, WhatId FROM Task"
    " WHERE LineWorksKind__c IN ('TalkLog', 'Exchange')"
)


def _bulk_in(
    bulk_query: BulkQuery, soql: str, field_name: str, values: Sequence[str], or_field: str = ""
) -> Iterator[Mapping[str, Any]]:
    """Rows of `soql` whose `field_name` (or `or_field`) is one of `values`, chunk by chunk."""
    seen: set[str] = set()
    joiner = " AND " if " WHERE " in soql else " WHERE "
    for chunk in chunked(values, BULK_IN_SIZE):
        literal = "(" + ",".join(quote(value) for value in chunk) + ")"
        condition = f"{field_name} IN {literal}"
        if or_field:
            condition = f"({condition} OR {or_field} IN {literal})"
        for row in bulk_query(soql + joiner + condition):
            if row["Id"] not in seen:
                seen.add(row["Id"])
                yield row


def _lookup_moves(
    rows: Iterable[Mapping[str, Any]],
    key_field: str,
    link_of: Callable[[Mapping[str, Any]], str | None],
    placement: Mapping[str, CustomerRecord],
) -> list[dict[str, Any]]:
    moves = []
    for row in rows:
        customer = placement.get(link_of(row) or "")
        if customer is None:
            continue
        wanted = customer.parent_lookups()
        if any(_differs(row.get(name), wanted[name]) for name in LOOKUPS):
            moves.append({key_field: row[key_field], **wanted})
    return moves


def _task_moves(
    tasks: Iterable[Mapping[str, Any]],
    talklog_link: Mapping[str, str],
    placement: Mapping[str, CustomerRecord],
) -> Iterator[dict[str, Any]]:
    for task in tasks:
        customer = placement.get(_task_link(task, talklog_link) or "")
        if customer is None:
            continue  # another customer's Task on a shared account: not ours to move
        who_id, what_id = customer.task_parents()
        if _differs(task.get("WhoId"), who_id) or _differs(task.get("WhatId"), what_id):
            yield {"LineWorksKey__c": task["LineWorksKey__c"], "WhoId": who_id, "WhatId": what_id}


def _task_link(task: Mapping[str, Any], talklog_link: Mapping[str, str]) -> str | None:
    """The link a LINE WORKS Task belongs to: through its TalkLog, or its exchange key."""
    if task.get("LineWorksKind__c") == "Exchange":
        key = task.get("LineWorksKey__c") or ""
        return key.split("|")[1] if key.count("|") >= 2 else None
    return talklog_link.get(task.get("TalkLogKey__c") or "")


def _differs(current: str | None, wanted: str | None) -> bool:
    return (current or "")[:15] != (wanted or "")[:15]
