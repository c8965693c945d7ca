"""Matching an export's senders and receivers to the store's people.

A party is matched by id first: a LW user's id or login email (exports name staff as
`name(account@domain)`), a LINE user's id, or a LINE WORKS contact id (`line_contacts`, from
the directory sync). Else by display name, when exactly one person has it (a LW user, a LINE
user or a contact's name). A name several people share is ambiguous: its rows are rejected
(the reason says which party, never the name).

An unknown party depends on where the talks come from:

- an export imported by hand (`directory=False`): it becomes a new user, a LW user when its
  id is a LINE WORKS account (contains `@`), a LINE user otherwise;
- the LINE WORKS directory (`directory=True`, ingestion): nobody is invented. A row's one
  bare name the directory does not know is the room's one customer that the row does not
  otherwise name, among the store's members of the room at the row's time (an export lists
  every member a message went to): a customer who renamed themselves on LINE, since
  downloads show the current name, which no contact may hold yet. Any other unknown or
  ambiguous party keeps its row out, as a quarantine row of source `directory` with the
  reason, never guessed.

New users are only proposed here; the writer creates those a stored row needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.imports.export_format import ExportRow, Party
from talklog.store.models import (
    LineContact,
    LineUser,
    LineWorksUser,
    MemberKind,
    RoomMember,
)

Resolved = tuple[str, str]  # (member kind, user id)
UNKNOWN = "not in the LINE WORKS directory: run the directory sync, or check the contact"
BOT_PREFIX = "[bot]"


@dataclass
class Directory:
    """Known people matching a chunk's parties, by id and by display name."""

    by_id: dict[str, Resolved] = field(default_factory=dict)
    by_name: dict[str, set[Resolved]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A party that cannot be told: `code` (ambiguous_name, unknown_person) and why."""

    code: str
    reason: str


class Identities:
    """The person each party of an import is, or why it cannot be told; kept across chunks."""

    def __init__(self, *, directory: bool = False) -> None:
        self.directory = directory
        self.parties: dict[Party, Resolved | Unplaced] = {}
        self.in_room: dict[tuple[Party, str], Resolved] = {}  # unknown names placed by room
        self.room_customers: dict[str, list[tuple[str, Any, Any]]] = {}

    def resolve(self, session: Session, parties: Iterable[Party]) -> dict[Resolved, str]:
        """Match the parties not seen yet; return the users to create (user -> display name)."""
        unknown = set(parties) - self.parties.keys()
        new: dict[Resolved, str] = {}
        if unknown:
            directory = lookup(session, unknown)
            for party in unknown:
                found = match(party, directory)
                if found is None:
                    found = Unplaced("unknown_person", UNKNOWN) if self.directory else None
                self.parties[party] = found or new_user(party, new)
        return new

    def problem(self, session: Session, row: ExportRow) -> tuple[str, str] | None:
        """(role, why) of the first party of a row that cannot be placed, or None."""
        roles = ("the sender", *(f"receiver {n}" for n in range(1, len(row.receivers) + 1)))
        for role, party in zip(roles, (row.sender, *row.receivers), strict=True):
            found = self.parties[party]
            if isinstance(found, Unplaced) and not self._placed_by_room(session, party, row):
                return role, found
        return None

    def sender(self, row: ExportRow) -> Resolved:
        """The sender of a row whose parties are all resolved."""
        return self._of(row.sender, row.channel_id)

    def participants(self, row: ExportRow) -> set[Resolved]:
        """The resolved sender and receivers of a row."""
        found = (self._found(p, row.channel_id) for p in (row.sender, *row.receivers))
        return {who for who in found if not isinstance(who, Unplaced)}

    def _of(self, party: Party, channel: str) -> Resolved:
        found = self._found(party, channel)
        if isinstance(found, Unplaced):
            raise ValueError("a party that was not placed")
        return found

    def _found(self, party: Party, channel: str) -> Resolved | Unplaced:
        return self.in_room.get((party, channel)) or self.parties[party]

    def _placed_by_room(self, session: Session, party: Party, row: ExportRow) -> bool:
        """A row's one bare unknown name is the room's one customer the row does not name
        otherwise (members in the room at the row's time: an export lists them all)."""
        if not _placeable(self.parties[party], party):
            return False
        parties = (row.sender, *row.receivers)
        unknown = {p for p in parties if _placeable(self.parties[p], p)}
        if unknown != {party}:
            return False
        named = {who[1] for p in parties if isinstance(who := self.parties[p], tuple)}
        candidates = {
            user
            for user, joined, left in self._customers(session, row.channel_id)
            if joined <= row.sent_at and (left is None or row.sent_at < left)
        } - named
        if len(candidates) != 1:
            return False
        self.in_room[party, row.channel_id] = (MemberKind.LINE.value, candidates.pop())
        return True

    def _customers(self, session: Session, channel: str) -> list[tuple[str, Any, Any]]:
        """The room's LINE memberships in the store: (user, joined, left)."""
        if channel not in self.room_customers:
            rows = session.execute(
                sa.select(RoomMember.line_user_id, RoomMember.joined_at, RoomMember.left_at)
                .where(RoomMember.room_id == channel)
                .where(RoomMember.member_kind == MemberKind.LINE.value)
            )
            self.room_customers[channel] = [tuple(r) for r in rows]
        return self.room_customers[channel]


def _placeable(found: Resolved | Unplaced, party: Party) -> bool:
    """An unknown bare name that is no bot: one the room may place."""
    return (
        isinstance(found, Unplaced)
        and found.code == "unknown_person"
        and not party.account_id
        and not party.name.casefold().startswith(BOT_PREFIX)
    )


def lookup(session: Session, parties: set[Party]) -> Directory:
    """The known people the parties may be: by id (and email, contact id), and by name."""
    ids = sorted({p.account_id for p in parties if p.account_id})
    names = sorted({p.name for p in parties if not p.account_id})
    found = Directory()
    by_id = (
        (MemberKind.LINE, LineContact.contact_id, LineContact.line_user_id),
        (MemberKind.LINE, LineUser.id, LineUser.id),
        (MemberKind.LW, LineWorksUser.email, LineWorksUser.id),
        (MemberKind.LW, LineWorksUser.id, LineWorksUser.id),
    )  # later ones win: a user's own id before an email or contact id
    for batch in chunked(ids, IN_LIST_SIZE):
        for kind, key, user in by_id:
            for value, user_id in session.execute(sa.select(key, user).where(key.in_(batch))):
                found.by_id[value] = (kind.value, user_id)
    by_name = (
        (MemberKind.LW, LineWorksUser.display_name, LineWorksUser.id),
        (MemberKind.LINE, LineUser.display_name, LineUser.id),
        (MemberKind.LINE, LineContact.display_name, LineContact.line_user_id),
    )
    for batch in chunked(names, IN_LIST_SIZE):
        for kind, name_column, user in by_name:
            rows = session.execute(sa.select(name_column, user).where(name_column.in_(batch)))
            for name, user_id in rows:
                found.by_name.setdefault(name, set()).add((kind.value, user_id))
    return found


def match(party: Party, found: Directory) -> Resolved | Unplaced | None:
    """A known person, why the party is ambiguous, or None for an unknown party."""
    if party.account_id:
        return found.by_id.get(party.account_id)
    matches = found.by_name.get(party.name, set())
    if len(matches) > 1:
        reason = f"the display name matches {len(matches)} users: add the account id"
        return Unplaced("ambiguous_name", reason)
    return next(iter(matches)) if matches else None


def new_user(party: Party, new: dict[Resolved, str]) -> Resolved:
    """An unknown party: a LW user for a LINE WORKS account id (with `@`), else a customer."""
    if party.account_id:
        kind = MemberKind.LW if "@" in party.account_id else MemberKind.LINE
        resolved = (kind.value, party.account_id)
    else:
        resolved = (
            MemberKind.LINE.value,
            "lwx-" + hashlib.sha256(party.name.encode()).hexdigest()[:24],
        )
    new[resolved] = party.name[:255]
    return resolved
