"""Who owns a staff member's Tasks: their active Salesforce user, else the integration user.

A Task's OwnerId is the LW user's Salesforce user (spec section 3). Which user that is,
`TALKLOG_OWNER_MATCH` says (`OwnerMatch`):

- `store_id` (the default: what the store's `lw_users.salesforce_user_id` says, as before);
- `email`: the active `User` whose `Email` is the staff member's LINE WORKS login email
  (`lw_users.email`, from the directory sync);
- `federation_id`: the active `User` whose `FederationIdentifier` (the SSO Federation ID) is
  that login email.

A run asks once, in bulk (one SOQL per 300 staff, every value quoted), which users are
active; emails match ignoring case, like SOQL. Salesforce refuses a record owned by an
inactive user (INACTIVE_OWNER_OR_USER), so a staff member without exactly one active user gets
Tasks with no OwnerId (the default owner: the integration user), and the run counts them per
reason (`OwnerFallback`); two active users with one email are never guessed between.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.salesforce.soql import id_list, is_salesforce_id, quote
from talklog.settings import env_choice
from talklog.store.models import LineWorksUser
from talklog.targets import IN_CLAUSE_SIZE, QueryAll

MATCH_ENV = "TALKLOG_OWNER_MATCH"
_ACTIVE_USERS_SOQL = "SELECT Id FROM User WHERE IsActive = true AND Id IN {ids}"
_USERS_BY_SOQL = "SELECT Id, {field} FROM User WHERE IsActive = true AND {field} IN ({values})"


class OwnerMatch(StrEnum):
    """How a staff member's Salesforce user is found (`TALKLOG_OWNER_MATCH`)."""

    STORE_ID = "store_id"
    EMAIL = "email"
    FEDERATION_ID = "federation_id"


_USER_FIELD = {OwnerMatch.EMAIL: "Email", OwnerMatch.FEDERATION_ID: "FederationIdentifier"}


class OwnerFallback(StrEnum):
    """Why the integration user owns a staff member's Tasks."""

    NO_SALESFORCE_USER = "no_salesforce_user"  # the store knows no Salesforce user for them
    NO_EMAIL = "no_email"  # email/federation_id: the store has no login email for them
    NOT_AN_ACTIVE_USER = "not_an_active_user"  # inactive, deleted, or no user of this org
    SEVERAL_ACTIVE_USERS = "several_active_users"  # email/federation_id: more than one
    REFUSED_AS_INACTIVE = "refused_as_inactive"  # deactivated during the run: resent in the load


def owner_match(value: str | None = None) -> OwnerMatch:
    """`value`, or `TALKLOG_OWNER_MATCH` (default `store_id`); refused when unknown."""
    return env_choice(MATCH_ENV, OwnerMatch, OwnerMatch.STORE_ID, value)


@dataclass
class Owners:
    """The owner of each staff member's Tasks in one run, and the Tasks that fell back."""

    owner_ids: dict[str, str | None]  # LW user id -> active Salesforce user id, or None
    fallbacks: dict[str, OwnerFallback]  # LW user id -> why None
    tasks: Counter[str] = field(default_factory=Counter)  # fallback reason -> Task rows
    staff: dict[str, set[str]] = field(default_factory=dict)  # reason -> LW user ids

    def count_task(self, lw_user_id: str) -> None:
        """Note one Task row of `lw_user_id` (counted when the integration user owns it)."""
        reason = self.fallbacks.get(lw_user_id)
        if reason is not None:
            self.tasks[reason.value] += 1
            self.staff.setdefault(reason.value, set()).add(lw_user_id)

    def count_refused(self, rows: int) -> None:
        """Rows Salesforce refused for an owner deactivated during the run, resent without."""
        if rows:
            self.tasks[OwnerFallback.REFUSED_AS_INACTIVE.value] += rows

    def tasks_by_reason(self) -> dict[str, int]:
        return dict(sorted(self.tasks.items()))

    def staff_by_reason(self) -> dict[str, list[str]]:
        """LW user ids (never names) whose Tasks the integration user owns, per reason."""
        return {reason: sorted(ids) for reason, ids in sorted(self.staff.items())}


def staff_emails(session: Session, lw_user_ids: Collection[str]) -> dict[str, str | None]:
    """LW user id -> login email (store), for `lw_user_ids`."""
    emails: dict[str, str | None] = {}
    for batch in chunked(sorted(lw_user_ids), IN_LIST_SIZE):
        rows = session.execute(
            sa.select(LineWorksUser.id, LineWorksUser.email).where(LineWorksUser.id.in_(batch))
        )
        emails.update((lw_user_id, email) for lw_user_id, email in rows)
    return emails


def staff_owners(
    query_all: QueryAll,
    staff: Mapping[str, str | None],
    *,
    emails: Mapping[str, str | None] | None = None,
    match: OwnerMatch | None = None,
) -> Owners:
    """Owners for `staff` (LW user id -> Salesforce user id from the store), found the
    `match` way (default: `owner_match()`); `emails`: LW user id -> login email."""
    match = owner_match() if match is None else match
    if match is OwnerMatch.STORE_ID:
        return _by_store_id(query_all, staff)
    wanted = {lw_user_id: (emails or {}).get(lw_user_id) for lw_user_id in staff}
    return _by_user_field(query_all, wanted, _USER_FIELD[match])


def _by_store_id(query_all: QueryAll, staff: Mapping[str, str | None]) -> Owners:
    """The store's users that are active; ids match on their 15-character prefix."""
    wanted = sorted({user for user in staff.values() if user and is_salesforce_id(user)})
    active: set[str] = set()
    for chunk in chunked(wanted, IN_CLAUSE_SIZE):
        rows = query_all(_ACTIVE_USERS_SOQL.format(ids=id_list(chunk)))
        active.update(str(row["Id"])[:15] for row in rows)
    owners = Owners({}, {})
    for lw_user_id, user in staff.items():
        if user and user[:15] in active and is_salesforce_id(user):
            owners.owner_ids[lw_user_id] = user
        else:
            fallback = (
                OwnerFallback.NOT_AN_ACTIVE_USER if user else OwnerFallback.NO_SALESFORCE_USER
            )
            _fall_back(owners, lw_user_id, fallback)
    return owners


def _by_user_field(
    query_all: QueryAll, emails: Mapping[str, str | None], user_field: str
) -> Owners:
    """The active users whose `user_field` is each staff member's login email (any case)."""
    values = sorted(
        {email.strip().casefold() for email in emails.values() if email and email.strip()}
    )
    users: defaultdict[str, set[str]] = defaultdict(set)
    for chunk in chunked(values, IN_CLAUSE_SIZE):
        soql = _USERS_BY_SOQL.format(field=user_field, values=",".join(map(quote, chunk)))
        for row in query_all(soql):
            users[str(row.get(user_field) or "").casefold()].add(str(row["Id"]))
    owners = Owners({}, {})
    for lw_user_id, email in emails.items():
        found = users.get(email.strip().casefold(), set()) if email and email.strip() else None
        if found is None:
            _fall_back(owners, lw_user_id, OwnerFallback.NO_EMAIL)
        elif len(found) == 1:
            owners.owner_ids[lw_user_id] = next(iter(found))
        else:
            several = OwnerFallback.SEVERAL_ACTIVE_USERS
            _fall_back(owners, lw_user_id, several if found else OwnerFallback.NOT_AN_ACTIVE_USER)
    return owners


def _fall_back(owners: Owners, lw_user_id: str, reason: OwnerFallback) -> None:
    owners.owner_ids[lw_user_id] = None
    owners.fallbacks[lw_user_id] = reason
