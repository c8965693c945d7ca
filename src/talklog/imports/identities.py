"""Matching an export's senders and receivers to the store's people.

A party is matched by id first: a LW user's id or login email (exports name staff as
`name(account@domain)`), a LINE user's id, or a LINE WORKS contact id (`line_contacts`, from
the directory sync). Else by display name, when exactly one person has it (a LW user, a LINE
user or a contact's name). A name several people share is the one of them who is a member of
the row's room at the row's time (the store's `room_members`): within its room an export's
name is meant to be unambiguous. Two members of the room with that name, or none (a room the
store does not know, or only people of other rooms have it), keep the row out as ambiguous
(the reason says which party, never the name); a name is never told by another room.

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

New users are only proposed here; the writer creates those a stored row needs. Placements by
room are per row (memberships change over time) and kept for the chunk being written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

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
Membership = tuple[Resolved, dt.datetime, dt.datetime | None]  # who, joined, left
Placed = tuple[Resolved, frozenset[Resolved]]  # a row's sender, and everyone it names
_TOLD_CACHE = 4_096  # distinct (sender, receivers) whose people are kept across chunks
UNKNOWN = "not in the LINE WORKS directory: run the directory sync, or check the contact"
BOT_PREFIX = "[bot]"


@dataclass
class Directory:
    """Known people matching a chunk's parties, by id and by display name."""

    by_id: dict[str, Resolved] = field(default_factory=dict)
    by_name: dict[str, set[Resolved]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A party that cannot be told: `code` (ambiguous_name, unknown_person) and why;
    `namesakes`: the people an ambiguous name may be (the row's room tells them apart)."""

    code: str
    reason: str
    namesakes: frozenset[Resolved] = frozenset()


class Identities:
    """The person each party of an import is, or why it cannot be told; kept across chunks."""

    def __init__(self, *, directory: bool = False) -> None:
        self.directory = directory
        self.parties: dict[Party, Resolved | Unplaced] = {}
        self.placed: dict[int, Placed] = {}  # line -> its people, for the chunk being written
        self.told: dict[str, Placed] = {}  # a row's party cells -> its people
        self.memberships: dict[str, list[Membership]] = {}  # room -> the store's memberships

    def resolve(self, session: Session, parties: Iterable[Party]) -> dict[Resolved, str]:
        """Match the parties not seen yet; return the users to create (user -> display name).
        A new chunk begins: the rows placed by their room before are forgotten."""
        self.placed.clear()
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

    def problem(self, session: Session, row: ExportRow) -> tuple[str, Unplaced] | None:
        """(role, why) of the first party of a row that cannot be placed, or None (the row's
        sender and participants are then kept for `sender` and `participants`)."""
        told = self.told.get(row.party_cells) if row.party_cells else None
        if told is not None:  # the same parties, all known without the room: same people
            self.placed[row.line] = told
            return None
        parties = (row.sender, *row.receivers)
        found = [self.parties[party] for party in parties]
        by_room = any(isinstance(who, Unplaced) for who in found)
        if by_room:
            found = in_room(found, parties, self._members_at(session, row))
        roles = ("the sender", *(f"receiver {n}" for n in range(1, len(row.receivers) + 1)))
        for role, who in zip(roles, found, strict=True):
            if isinstance(who, Unplaced):
                return role, who
        placed = (found[0], frozenset(found))
        self.placed[row.line] = placed  # type: ignore[assignment]
        if not by_room and row.party_cells:
            if len(self.told) >= _TOLD_CACHE:
                self.told.clear()
            self.told[row.party_cells] = placed  # type: ignore[assignment]
        return None

    def sender(self, row: ExportRow) -> Resolved:
        """The sender of a row whose parties are all placed (`problem` said None)."""
        return self.placed[row.line][0]

    def participants(self, row: ExportRow) -> frozenset[Resolved]:
        """The placed sender and receivers of a row (`problem` said None)."""
        return self.placed[row.line][1]

    def _members_at(self, session: Session, row: ExportRow) -> set[Resolved]:
        """The room's members in the store at the row's time."""
        return {
            who
            for who, joined, left in self._memberships(session, row.channel_id)
            if joined <= row.sent_at and (left is None or row.sent_at < left)
        }

    def _memberships(self, session: Session, room: str) -> list[Membership]:
        """The room's memberships in the store (read once per import)."""
        if room not in self.memberships:
            rows = session.execute(
                sa.select(
                    RoomMember.member_kind,
                    sa.func.coalesce(RoomMember.lw_user_id, RoomMember.line_user_id),
                    RoomMember.joined_at,
                    RoomMember.left_at,
                ).where(RoomMember.room_id == room)
            )
            self.memberships[room] = [
                ((kind, user), joined, left) for kind, user, joined, left in rows
            ]
        return self.memberships[room]


def in_room(
    found: list[Resolved | Unplaced], parties: tuple[Party, ...], members: set[Resolved]
) -> list[Resolved | Unplaced]:
    """A row's parties told by its room's members at its time: an ambiguous name is the one
    member with it; then the row's one unknown bare name is the room's one customer the row
    does not otherwise name (an export lists every member a message went to)."""
    told = [among(who, members) for who in found]
    unknown = {party for party, who in zip(parties, told, strict=True) if _placeable(who, party)}
    if len(unknown) != 1:
        return told
    named = {who for who in told if isinstance(who, tuple)}
    customers = {who for who in members if who[0] == MemberKind.LINE.value} - named
    if len(customers) != 1:
        return told
    customer = customers.pop()
    return [customer if party in unknown else who for party, who in zip(parties, told, strict=True)]


def among(found: Resolved | Unplaced, members: set[Resolved]) -> Resolved | Unplaced:
    """An ambiguous name as the one member of the room who has it; two members with it stay
    ambiguous (never picked), and so does a name no member has (never another room's)."""
    if not isinstance(found, Unplaced) or not found.namesakes:
        return found
    inside = found.namesakes & members
    if len(inside) == 1:
        return next(iter(inside))
    if len(inside) > 1:
        reason = f"the display name matches {len(inside)} members of the room: add the account id"
        return Unplaced("ambiguous_name", reason, found.namesakes)
    return found


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
        return Unplaced("ambiguous_name", reason, frozenset(matches))
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
