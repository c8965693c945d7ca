"""Matching an export's senders and receivers to the store's users.

A party is matched by id (LW users, then LINE users), else by exact display name. A name
shared by several users is ambiguous: its rows are rejected (the reason says which party,
never the name). An unknown party becomes a new user: a LW user when its id is a LINE WORKS
account (contains `@`), a LINE user otherwise (a bare unknown name is a customer). New users
are only proposed here; the writer creates those a stored row needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.imports.export_format import ExportRow, Party
from talklog.store.models import LineUser, LineWorksUser, MemberKind

Resolved = tuple[str, str]  # (member kind, user id)


@dataclass
class Directory:
    """Known users matching a chunk's parties, by id and by display name."""

    lw_ids: set[str] = field(default_factory=set)
    line_ids: set[str] = field(default_factory=set)
    by_name: dict[str, list[Resolved]] = field(default_factory=dict)


class Identities:
    """The user each party of an import is, or why it cannot be told; kept across chunks."""

    def __init__(self) -> None:
        self.parties: dict[Party, Resolved | str] = {}  # resolved, or why not

    def resolve(self, session: Session, parties: Iterable[Party]) -> dict[Resolved, str]:
        """Match the parties not seen yet; return the users to create (user -> display name)."""
        unknown = set(parties) - self.parties.keys()
        new: dict[Resolved, str] = {}
        if unknown:
            directory = lookup(session, unknown)
            for party in unknown:
                self.parties[party] = match(party, directory) or new_user(party, new)
        return new

    def problem(self, row: ExportRow) -> str | None:
        """Why a row's parties cannot be placed (the first reason), or None."""
        roles = ("the sender", *(f"receiver {n}" for n in range(1, len(row.receivers) + 1)))
        for role, party in zip(roles, (row.sender, *row.receivers), strict=True):
            found = self.parties[party]
            if isinstance(found, str):
                return f"{role}: {found}"
        return None

    def sender(self, row: ExportRow) -> Resolved:
        """The sender of a row whose parties are all resolved."""
        return self.parties[row.sender]  # type: ignore[return-value]

    def participants(self, row: ExportRow) -> set[Resolved]:
        """The resolved sender and receivers of a row."""
        found = (self.parties[p] for p in (row.sender, *row.receivers))
        return {who for who in found if not isinstance(who, str)}


def lookup(session: Session, parties: set[Party]) -> Directory:
    """The known users the parties may be: by account id, and by name for those without one."""
    ids = sorted({p.account_id for p in parties if p.account_id})
    names = sorted({p.name for p in parties if not p.account_id})
    found = Directory()
    for batch in chunked(ids, IN_LIST_SIZE):
        found.lw_ids.update(
            session.scalars(sa.select(LineWorksUser.id).where(LineWorksUser.id.in_(batch)))
        )
        found.line_ids.update(session.scalars(sa.select(LineUser.id).where(LineUser.id.in_(batch))))
    for batch in chunked(names, IN_LIST_SIZE):
        for kind, model in ((MemberKind.LW, LineWorksUser), (MemberKind.LINE, LineUser)):
            rows = session.execute(
                sa.select(model.display_name, model.id).where(model.display_name.in_(batch))
            )
            for name, user in rows:
                found.by_name.setdefault(name, []).append((kind.value, user))
    return found


def match(party: Party, found: Directory) -> Resolved | str | None:
    """A known user, a reason why the party is ambiguous, or None for an unknown party."""
    if party.account_id:
        if party.account_id in found.lw_ids:
            return MemberKind.LW.value, party.account_id
        if party.account_id in found.line_ids:
            return MemberKind.LINE.value, party.account_id
        return None
    matches = found.by_name.get(party.name, [])
    if len(matches) > 1:
        return f"the display name matches {len(matches)} users: add the account id"
    return matches[0] if matches else None


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
