"""The LINE WORKS contact id on the record a rep linked (issue 18, spec section 6).

As the seed product does, the parent a rep chose for a `LineWorks__c` (an external contact, a
lead, a contact or a person account) carries the LINE WORKS contact id in its "LINE WORKS UUID"
field (`LineWorksUuid__c`, unique per object). The project only fills an empty field: a value
already there (a person's, or another staff member's link to the same customer) stays, and so
does an id another record of that object already holds (the record the link pointed at
before keeps it). A converted lead is never written (its contact carries the link now).
One SOQL per object and 300 records reads the values right before the one Bulk load per
object that fills them; only `Id` and `LineWorksUuid__c` are sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from talklog.batching import chunked
from talklog.loading import BulkLoader
from talklog.salesforce.soql import id_list, is_salesforce_id, quote
from talklog.store.models import TargetType
from talklog.targets import IN_CLAUSE_SIZE, QueryAll

UUID_FIELD = "LineWorksUuid__c"
PARENT_OBJECTS = {
    TargetType.EXTERNAL_CONTACT: "ExternalContact__c",
    TargetType.LEAD: "Lead",
    TargetType.CONTACT: "Contact",
    TargetType.PERSON_ACCOUNT: "Account",
}
FILLED = "filled"
_SOQL = "SELECT Id, {fields} FROM {object} WHERE Id IN {ids} OR {uuid} IN ({contacts})"


@dataclass
class ParentUuidSummary:
    """What filling the parents' `LineWorksUuid__c` found and wrote."""

    filled: int = 0
    already_set: int = 0  # the record holds a contact id already (kept)
    held_elsewhere: int = 0  # another record of the object holds this contact id (kept there)
    converted_leads: int = 0  # never written; the link follows the converted contact
    missing: int = 0  # deleted, or not a record of the object its prefix names
    loads: dict[str, dict[str, Any]] = field(default_factory=dict)  # object -> load summary
    by_record: dict[str, str] = field(default_factory=dict)
    """Record id (15) -> what its first contact found: `filled` (sent), or the count's name
    that kept it (a replay closes its letter with it); not in `as_dict`."""

    def as_dict(self) -> dict[str, Any]:
        counts = {
            "filled": self.filled,
            "already_set": self.already_set,
            "held_elsewhere": self.held_elsewhere,
            "converted_leads": self.converted_leads,
            "missing": self.missing,
        }
        return {**counts, "loads": self.loads} if self.loads else counts


def fill_parent_uuids(
    query_all: QueryAll,
    loader: BulkLoader,
    linked: Mapping[str, tuple[TargetType, str]],
) -> ParentUuidSummary:
    """Fill `LineWorksUuid__c` on each linked parent (contact id -> (kind, record id)) whose
    field is empty."""
    summary = ParentUuidSummary()
    for kind, object_name in PARENT_OBJECTS.items():
        wanted = {
            contact: record_id
            for contact, (found_kind, record_id) in sorted(linked.items())
            if found_kind is kind and is_salesforce_id(record_id)
        }
        rows = _rows_to_fill(query_all, object_name, wanted, summary)
        if rows:
            outcome = loader.upsert(object_name, "Id", rows)
            summary.loads[object_name] = outcome.summary()
            summary.filled += outcome.written
    return summary


def _rows_to_fill(
    query_all: QueryAll,
    object_name: str,
    wanted: Mapping[str, str],
    summary: ParentUuidSummary,
) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}  # record id (15) -> row: one contact per record
    for chunk in chunked(sorted(wanted), IN_CLAUSE_SIZE):
        found = _current(query_all, object_name, {c: wanted[c] for c in chunk})
        holders = {str(r[UUID_FIELD]): str(r["Id"]) for r in found.values() if r.get(UUID_FIELD)}
        for contact in chunk:
            record = found.get(wanted[contact][:15])
            outcome = _outcome(record, contact, holders, rows)
            if outcome == FILLED:
                assert record is not None
                rows[record["Id"][:15]] = {"Id": record["Id"], UUID_FIELD: contact}
            else:
                setattr(summary, outcome, getattr(summary, outcome) + 1)
            summary.by_record.setdefault(wanted[contact][:15], outcome)
    return list(rows.values())


def _outcome(
    record: Mapping[str, Any] | None,
    contact: str,
    holders: Mapping[str, str],
    rows: Mapping[str, Any],
) -> str:
    """What filling this contact id into this record does (a `ParentUuidSummary` count)."""
    if record is None:
        return "missing"
    if record.get("IsConverted"):
        return "converted_leads"
    if record.get(UUID_FIELD) or record["Id"][:15] in rows:
        return "already_set"
    return "held_elsewhere" if contact in holders else FILLED


def _current(
    query_all: QueryAll, object_name: str, wanted: Mapping[str, str]
) -> dict[str, Mapping[str, Any]]:
    """Record id (15) -> the record, for the wanted records and those holding their contacts."""
    fields = UUID_FIELD + (", IsConverted" if object_name == "Lead" else "")
    soql = _SOQL.format(
        fields=fields,
        object=object_name,
        ids=id_list(sorted(set(wanted.values()))),
        uuid=UUID_FIELD,
        contacts=",".join(map(quote, wanted)),
    )
    return {str(row["Id"])[:15]: row for row in query_all(soql)}
