"""Mirror LINE customers into Salesforce: one `LineWorks__c` per LINE-user contact of every
staff member (issue 18, spec section 6), so that a rep can link it where they work.

The record is keyed by the LINE WORKS contact id (`LinkKey__c`) and carries what the project
owns: Name, nickname, App Link, LINE user id, staff user id, and as owner the staff member's
active Salesforce user (`talklog.owners`). It never carries the fields a rep owns (`Linked__c`
and the parent lookups): a new record is unlinked and without a parent, and a rep's decision is
never written over. After "do not link" nickname and App Link stay empty until the next link.

Contacts changed since the watermark `link_mirror` (minus `OVERLAP`) and contacts without a
modification time are compared with their records in Salesforce (one SOQL per 300 contacts);
only records that differ are written (one Bulk load), so a quiet directory writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.loading import BulkLoader
from talklog.owners import Owners, staff_emails, staff_owners
from talklog.salesforce.fields import UPSERT_KEYS
from talklog.salesforce.soql import quote
from talklog.store.models import LineContact, LineWorksUser, Link
from talklog.summary import JobSummary
from talklog.targets import IN_CLAUSE_SIZE, QueryAll
from talklog.watermarks import advance_watermark, read_watermark

WATERMARK = "link_mirror"
OVERLAP = dt.timedelta(minutes=10)
OWNED_FIELDS = ("Name", "LineUserId__c", "LineWorksUserId__c", "Nickname__c", "AppLink__c")
"""What the project writes on `LineWorks__c` (with OwnerId); `Linked__c` and lookups: never."""
_CURRENT_SOQL = (
    "SELECT Id, LinkKey__c, OwnerId, Linked__c, {fields} FROM LineWorks__c"
    " WHERE LinkKey__c IN ({keys})"
)


@dataclass(frozen=True)
class MirroredContact:
    """A staff member's LINE-user contact as its `LineWorks__c` shows it."""

    contact_id: str
    lw_user_id: str
    line_user_id: str
    name: str
    salesforce_user_id: str | None = None


@dataclass
class MirrorSummary(JobSummary):
    """What a mirror run compared and wrote."""

    since: str | None = None
    contacts: int = 0
    unchanged: int = 0
    created_or_changed: int = 0
    tasks_owned_by_integration_user: dict[str, int] = field(default_factory=dict)
    linkworks: dict[str, Any] = field(default_factory=dict)

    def loads(self) -> Iterable[Mapping[str, Any]]:
        return (self.linkworks,) if self.linkworks else ()


def app_link(lw_user_id: str, contact_id: str) -> str:
    """The LINE WORKS App Link that opens the staff member's talk with the customer."""
    return (
        "https://line.worksmobile.com/message/send?version=26"
        f"&contactId={contact_id}&userId={lw_user_id}"
    )


def owned_fields(contact: MirroredContact, *, shown: bool) -> dict[str, Any]:
    """The project's fields of a contact's record; `shown` False ("do not link"): no nickname
    and no App Link."""
    return {
        "LinkKey__c": contact.contact_id,
        "Name": (contact.name or contact.contact_id)[:80],
        "LineUserId__c": contact.line_user_id,
        "LineWorksUserId__c": contact.lw_user_id,
        "Nickname__c": (contact.name or None) if shown else None,
        "AppLink__c": app_link(contact.lw_user_id, contact.contact_id) if shown else None,
    }


def record_row(contact: MirroredContact, *, shown: bool, owner_id: str | None) -> dict[str, Any]:
    """The row the mirror writes for a contact's record: its fields and, when known, owner."""
    return {**owned_fields(contact, shown=shown), **({"OwnerId": owner_id} if owner_id else {})}


def contacts(
    session: Session, where: sa.ColumnElement[bool] | None = None
) -> list[MirroredContact]:
    """LINE-user contacts whose staff member the store knows (others have no staff user)."""
    query = (
        sa.select(LineContact, LineWorksUser.salesforce_user_id)
        .join(LineWorksUser, LineWorksUser.id == LineContact.master_lw_user_id)
        .order_by(LineContact.contact_id)
    )
    if where is not None:
        query = query.where(where)
    return [
        MirroredContact(
            c.contact_id, str(c.master_lw_user_id), c.line_user_id, c.display_name, user
        )
        for c, user in session.execute(query)
    ]


def contacts_by_id(session: Session, contact_ids: Collection[str]) -> dict[str, MirroredContact]:
    found: dict[str, MirroredContact] = {}
    for batch in chunked(sorted(contact_ids), IN_LIST_SIZE):
        found.update(
            (c.contact_id, c) for c in contacts(session, LineContact.contact_id.in_(batch))
        )
    return found


def link_states(session: Session, contact_ids: Collection[str]) -> dict[str, bool]:
    """Contact id -> whether its link is in force, for contacts with a link in the store (a
    link not in force is "do not link": nickname and App Link stay empty)."""
    states: dict[str, bool] = {}
    for batch in chunked(sorted(contact_ids), IN_LIST_SIZE):
        rows = session.execute(
            sa.select(Link.link_key, Link.linked).where(Link.link_key.in_(batch))
        )
        states.update((key, bool(linked)) for key, linked in rows)
    return states


def current_records(query_all: QueryAll, keys: Collection[str]) -> dict[str, Mapping[str, Any]]:
    """`LinkKey__c` -> the record's owner and project fields, as Salesforce holds them now."""
    found: dict[str, Mapping[str, Any]] = {}
    for chunk in chunked(sorted(keys), IN_CLAUSE_SIZE):
        soql = _CURRENT_SOQL.format(
            fields=", ".join(OWNED_FIELDS),
            keys=",".join(map(quote, chunk)),
        )
        found.update((str(row["LinkKey__c"]), row) for row in query_all(soql))
    return found


def rows_to_write(
    wanted: Iterable[dict[str, Any]],
    current: Mapping[str, Mapping[str, Any]],
    linked: Mapping[str, bool],
) -> list[dict[str, Any]]:
    """The rows whose record is missing or differs in a field the project owns (owner too).
    A record whose `Linked__c` the store has not caught up with yet (a rep's decision the
    read-back has not recorded) is left alone: the next read-back writes it."""
    rows = []
    for row in wanted:
        now = current.get(row["LinkKey__c"])
        if now is not None and _ticked(now) != linked.get(row["LinkKey__c"], False):
            continue
        if now is None or any(_differs(now.get(name), value) for name, value in row.items()):
            rows.append(row)
    return rows


def _ticked(record: Mapping[str, Any]) -> bool:
    return str(record.get("Linked__c")).lower() == "true"


def _differs(current: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and len(wanted) == 18 and isinstance(current, str):
        return current[:15] != wanted[:15]  # ids: 15 or 18 characters
    return (current or None) != (wanted or None)


def write_records(
    query_all: QueryAll,
    loader: BulkLoader,
    mirrored: Collection[MirroredContact],
    linked: Mapping[str, bool],
    owners: Owners,
) -> tuple[dict[str, Any], int]:
    """Write the records of `mirrored` that differ from Salesforce: (load summary, rows)."""
    wanted = [
        record_row(
            c, shown=linked.get(c.contact_id, True), owner_id=owners.owner_ids.get(c.lw_user_id)
        )
        for c in mirrored
    ]
    current = current_records(query_all, [c.contact_id for c in mirrored])
    rows = rows_to_write(wanted, current, linked)
    if not rows:
        return {}, 0
    outcome = loader.upsert("LineWorks__c", UPSERT_KEYS["LineWorks__c"], rows)
    return outcome.summary(), len(rows)


def mirror_contacts(
    *,
    sessions: sessionmaker[Session],
    query_all: QueryAll,
    loader: BulkLoader,
    now: dt.datetime | None = None,
) -> MirrorSummary:
    """Create or refresh the `LineWorks__c` of every contact changed since the last run."""
    now = now or dt.datetime.now(dt.UTC)
    with sessions() as session:
        mark = read_watermark(session, WATERMARK)
        since = mark - OVERLAP if mark else None
        changed = LineContact.modified_at.is_(None)
        if since is not None:
            changed = sa.or_(changed, LineContact.modified_at > since)
        mirrored = contacts(session, changed if since is not None else None)
        linked = link_states(session, [c.contact_id for c in mirrored])
        emails = staff_emails(session, {c.lw_user_id for c in mirrored})
    summary = MirrorSummary(since=since.isoformat() if since else None, contacts=len(mirrored))
    staff = {c.lw_user_id: c.salesforce_user_id for c in mirrored}
    owners = staff_owners(query_all, staff, emails=emails)
    summary.linkworks, written = write_records(query_all, loader, mirrored, linked, owners)
    summary.created_or_changed, summary.unchanged = written, len(mirrored) - written
    if not summary.rejected:
        advance_watermark(sessions, WATERMARK, now, now=now)
    return summary
