"""A sales rep's click on a `LineWorks__c` record (issue 18), for tests and the demo.

Linking sets the parent lookup that fits the chosen record (an external contact, a lead, a
contact or a person account) and ticks `Linked__c`; "do not link" unticks it. The write goes
through the record store's validation as the rep (`LastModifiedById` = the rep's user), as the
record page's Save does.
"""

from __future__ import annotations

from typing import Any

from talklog_dev.emulator.ids import key_prefix, normalize_id
from talklog_dev.emulator.records import RecordStore, fail

PARENT_LOOKUPS = {
    "ExternalContact__c": "ExternalContact__c",
    "Lead": "Lead__c",
    "Contact": "Contact__c",
    "Account": "Account__c",
}


def rep_click(
    store: RecordStore,
    link_key: str,
    *,
    linked: bool,
    user_id: str,
    parent_id: str | None = None,
) -> dict[str, Any]:
    """Link (`linked` with `parent_id`: that parent, ticked) or untick the record whose
    `LinkKey__c` is `link_key`, as `user_id`; returns the record as saved."""
    obj = store.schema.objects["LineWorks__c"]
    matches = store.find_external(obj.name, obj.fields["LinkKey__c"], link_key)
    if len(matches) != 1:
        raise fail("NOT_FOUND", f"no LineWorks__c with LinkKey__c {link_key!r}")
    if store.get("User", user_id) is None:
        raise fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", "LastModifiedById")
    values: dict[str, Any] = {"Linked__c": linked}
    if parent_id:
        values[_lookup_for(store, parent_id)] = parent_id
    store.update(obj.name, matches[0], values, store.get("User", user_id)["Id"])  # type: ignore[index]
    store.flush()
    return dict(store.get(obj.name, matches[0]) or {})


def _lookup_for(store: RecordStore, parent_id: str) -> str:
    normalized = normalize_id(parent_id)
    target = store.schema.by_prefix(key_prefix(normalized)) if normalized else None
    lookup = PARENT_LOOKUPS.get(target.name) if target else None
    if lookup is None:
        raise fail("FIELD_INTEGRITY_EXCEPTION", f"not a LINE customer's record: {parent_id}")
    return lookup
