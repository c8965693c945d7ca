"""Staff (``GET /users``) and contacts (``GET /contacts``) as the client yields them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LINE = "LINE"
"""`linkedExternalUser.type` of a LINE user (a contact of another LINE WORKS company: WORKS)."""


def _name(names: Any) -> str:
    if not isinstance(names, Mapping):
        return ""
    parts = (str(names.get(key) or "").strip() for key in ("lastName", "firstName"))
    return " ".join(part for part in parts if part)


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class StaffUser:
    """A LINE WORKS member: `user_id` (stable), `email` (the login id), display name."""

    user_id: str
    email: str | None
    display_name: str
    external_key: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> StaffUser:
        return cls(
            user_id=str(item["userId"]),
            email=item.get("email"),
            display_name=_name(item.get("userName")),
            external_key=item.get("userExternalKey"),
            raw=item,
        )


@dataclass(frozen=True)
class Contact:
    """One address-book entry: the same LINE user in two staff members' books is two
    contacts, each with its master (`master_user_id`)."""

    contact_id: str
    master_user_id: str | None
    display_name: str
    external_user_id: str | None = None
    external_type: str | None = None
    modified_time: dt.datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_line_user(self) -> bool:
        return self.external_type == LINE and self.external_user_id is not None

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> Contact:
        external = item.get("linkedExternalUser") or {}
        permission = item.get("permission") or {}
        return cls(
            contact_id=str(item["contactId"]),
            master_user_id=permission.get("masterUserId"),
            display_name=_name(item.get("contactName")),
            external_user_id=external.get("id"),
            external_type=external.get("type"),
            modified_time=_time(item.get("modifiedTime")),
            raw=item,
        )
