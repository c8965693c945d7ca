"""Who owns a staff member's Tasks: their Salesforce user while it is active, else the
integration user.

A Task's OwnerId is the LW user's Salesforce user where known (spec section 3). Salesforce
refuses a record owned by an inactive user (INACTIVE_OWNER_OR_USER), so a run asks once, in
bulk, which of its staff users are active; a staff member without one gets Tasks with no
OwnerId (the default owner: the integration user), and the run counts them per reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from talklog.batching import chunked
from talklog.salesforce.soql import id_list, is_salesforce_id
from talklog.targets import IN_CLAUSE_SIZE, QueryAll

_ACTIVE_USERS_SOQL = "SELECT Id FROM User WHERE IsActive = true AND Id IN {ids}"


class OwnerFallback(StrEnum):
    """Why the integration user owns a staff member's Tasks."""

    NO_SALESFORCE_USER = "no_salesforce_user"  # the store knows no Salesforce user for them
    NOT_AN_ACTIVE_USER = "not_an_active_user"  # inactive, deleted, or no user of this org
    REFUSED_AS_INACTIVE = "refused_as_inactive"  # deactivated during the run: resent in the load


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


def staff_owners(query_all: QueryAll, staff: Mapping[str, str | None]) -> Owners:
    """Owners for `staff` (LW user id -> Salesforce user id from the store): one query per
    300 users asks which are active; ids match on their 15-character prefix."""
    wanted = sorted({user for user in staff.values() if user and is_salesforce_id(user)})
    active: set[str] = set()
    for chunk in chunked(wanted, IN_CLAUSE_SIZE):
        rows = query_all(_ACTIVE_USERS_SOQL.format(ids=id_list(chunk)))
        active.update(str(row["Id"])[:15] for row in rows)
    owner_ids: dict[str, str | None] = {}
    fallbacks: dict[str, OwnerFallback] = {}
    for lw_user_id, user in staff.items():
        if user and user[:15] in active and is_salesforce_id(user):
            owner_ids[lw_user_id] = user
            continue
        owner_ids[lw_user_id] = None
        fallbacks[lw_user_id] = (
            OwnerFallback.NOT_AN_ACTIVE_USER if user else OwnerFallback.NO_SALESFORCE_USER
        )
    return Owners(owner_ids, fallbacks)
