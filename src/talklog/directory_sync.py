"""People from the LINE WORKS directory: staff (`/users`) and LINE customers (`/contacts`).

`sync_directory` writes into the store:

- every member of `/users` as a LW user (id, display name, login email); a member already
  known keeps its Salesforce user and gets the directory's name and email;
- every contact of `/contacts` whose linked external user is a LINE user as a contact
  (`line_contacts`: contact id, LINE user, master staff member) and its LINE user (created
  with the contact's name when new; the first contact id becomes its `contact_uuid`, the
  Salesforce "LINE WORKS UUID"). Other contacts (clients, other LINE WORKS companies) are
  counted and skipped.

`/users` has no modified-since filter and is read whole (a company has hundreds of members);
`/contacts` is read incrementally by MODIFIED_TIME from the watermark `lineworks_contacts`
(minus `OVERLAP`, writes are idempotent) up to the start of the run. Senders and receivers of
downloads are then matched to these people (`talklog.imports.identities`). No name, email or
talk is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from talklog.batching import chunked
from talklog.lineworks import Contact, StaffUser
from talklog.store.models import LineContact, LineUser, LineWorksUser
from talklog.summary import JobSummary
from talklog.watermarks import advance_watermark, read_watermark

WATERMARK = "lineworks_contacts"
OVERLAP = dt.timedelta(minutes=10)
"""Contacts modified this long before the watermark are read again (clock skew, slow pages)."""
_BATCH = 500
log = logging.getLogger(__name__)


class Directory(Protocol):
    """What the sync reads (`talklog.lineworks.LineWorksClient`)."""

    api_calls: int

    def users(self, *, domain_id: int | None = None, count: int = 100) -> Iterable[StaffUser]: ...

    def contacts(
        self,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        search_date_type: str = "MODIFIED_TIME",
        *,
        count: int = 100,
    ) -> Iterable[Contact]: ...


@dataclass(kw_only=True)
class DirectorySyncSummary(JobSummary):
    """What a directory sync wrote (`api_calls`: none to Salesforce)."""

    staff_read: int = 0
    staff_created: int = 0
    contacts_read: int = 0
    contacts_skipped: int = 0  # not LINE users
    line_users_created: int = 0
    contacts_since: str | None = None  # None: every contact was read
    lineworks_api_calls: int = 0


def sync_directory(
    sessions: sessionmaker[Session],
    directory: Directory,
    *,
    domain_id: int | None = None,
    now: dt.datetime | None = None,
) -> DirectorySyncSummary:
    """Read staff and the contacts modified since the last sync into the store."""
    now = now or dt.datetime.now(dt.UTC)
    summary = DirectorySyncSummary()
    calls_before = directory.api_calls
    staff = list(directory.users(domain_id=domain_id))
    summary.staff_read = len(staff)
    with sessions.begin() as session:
        summary.staff_created = _write_staff(session, staff)
        since = read_watermark(session, WATERMARK)
    start = since - OVERLAP if since else None
    summary.contacts_since = start.isoformat() if start else None
    contacts = directory.contacts(start, now) if start else directory.contacts()
    for batch in chunked(contacts, _BATCH):
        line = [c for c in batch if c.is_line_user]
        summary.contacts_read += len(batch)
        summary.contacts_skipped += len(batch) - len(line)
        with sessions.begin() as session:
            summary.line_users_created += _write_contacts(session, line)
    advance_watermark(sessions, WATERMARK, now)
    summary.lineworks_api_calls = directory.api_calls - calls_before
    log.info(
        "Directory: %d staff (%d new), %d contacts (%d not LINE users), %d LINE users new",
        summary.staff_read,
        summary.staff_created,
        summary.contacts_read,
        summary.contacts_skipped,
        summary.line_users_created,
    )
    return summary


def _write_staff(session: Session, staff: list[StaffUser]) -> int:
    """Create or update the members; returns how many were new."""
    created = 0
    for batch in chunked(staff, _BATCH):
        known = {
            user.id: user
            for user in session.scalars(
                sa.select(LineWorksUser).where(LineWorksUser.id.in_([s.user_id for s in batch]))
            )
        }
        for member in batch:
            name = (member.display_name or member.email or member.user_id)[:255]
            user = known.get(member.user_id)
            if user is None:
                session.add(LineWorksUser(id=member.user_id, display_name=name, email=member.email))
                created += 1
            else:
                user.display_name, user.email = name, member.email
    return created


def _write_contacts(session: Session, contacts: list[Contact]) -> int:
    """Create or update the contacts and their LINE users; returns the LINE users new."""
    if not contacts:
        return 0
    ids = sorted({c.external_user_id for c in contacts if c.external_user_id})
    users = {u.id: u for u in session.scalars(sa.select(LineUser).where(LineUser.id.in_(ids)))}
    stored = {
        c.contact_id: c
        for c in session.scalars(
            sa.select(LineContact).where(
                LineContact.contact_id.in_([c.contact_id for c in contacts])
            )
        )
    }
    taken = set(
        session.scalars(
            sa.select(LineUser.contact_uuid).where(
                LineUser.contact_uuid.in_([c.contact_id for c in contacts])
            )
        )
    )
    created = 0
    for contact in contacts:
        user_id, name = str(contact.external_user_id), (contact.display_name or "")[:255]
        if user_id not in users:
            users[user_id] = LineUser(id=user_id, display_name=name or user_id)
            session.add(users[user_id])
            created += 1
    session.flush()  # new LINE users before the contacts naming them (no relationship orders them)
    for contact in contacts:
        user_id, name = str(contact.external_user_id), (contact.display_name or "")[:255]
        user = users[user_id]
        if user.contact_uuid is None and contact.contact_id not in taken:
            user.contact_uuid = contact.contact_id
            taken.add(contact.contact_id)
        row = stored.get(contact.contact_id)
        if row is None:
            row = stored[contact.contact_id] = LineContact(contact_id=contact.contact_id)
            session.add(row)
        row.line_user_id, row.master_lw_user_id = user_id, contact.master_user_id
        row.display_name, row.modified_at = name, _aware(contact.modified_time)
    return created


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)
