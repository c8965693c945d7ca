"""The record store: validation with Salesforce's error codes, external id indexes, persistence."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from talklog_dev.emulator.ids import IdFactory, key_prefix, normalize_id
from talklog_dev.emulator.schema import (
    PERSON_ACCOUNT_RECORD_TYPE,
    RECORD_TYPES,
    Field,
    Schema,
    SObject,
)
from talklog_dev.emulator.validation import ValidationRule
from talklog_dev.emulator.values import FieldValueError, coerce, format_datetime, utcnow

DEFAULT_USER = {"Username": "integration@talklog.emulator", "LastName": "Integration"}
Record = dict[str, Any]


@dataclass(frozen=True)
class SfError:
    """One Salesforce error, shaped for REST, collections or Bulk (``CODE:msg:fields --``)."""

    code: str
    message: str
    fields: tuple[str, ...] = ()

    def rest(self) -> dict[str, Any]:
        return {"message": self.message, "errorCode": self.code, "fields": list(self.fields)}

    def collection(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}

    def bulk(self) -> str:
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


class RecordError(Exception):
    """A write Salesforce would reject."""

    def __init__(self, error: SfError) -> None:
        super().__init__(error.message)
        self.error = error


def fail(code: str, message: str, *fields: str) -> RecordError:
    return RecordError(SfError(code, message, tuple(fields)))


class RecordStore:
    """All records in memory with unique-field indexes; written through to SQLite given a path."""

    def __init__(self, schema: Schema, path: str | None = None) -> None:
        self.schema = schema
        self.ids = IdFactory()
        self._by_object: dict[str, dict[str, Record]] = {n: {} for n in schema.objects}
        self._by_id: dict[str, tuple[str, Record]] = {}
        self._unique: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(dict)
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self._tombstones: set[str] = set()
        self._journal: list[tuple[str, str, Record | None]] | None = None
        self._validation_rules: dict[str, tuple[ValidationRule, ...]] = {}
        self._db = self._open(path) if path and path != ":memory:" else None
        if self._db is not None:
            self._load()
        if not self._by_object["User"]:
            self.default_user_id = self.insert("User", dict(DEFAULT_USER), user_id=None)
        else:
            self.default_user_id = next(iter(self._by_object["User"]))
        self.flush()

    # -- reading -------------------------------------------------------------------------
    def scan(self, sobject: str) -> Iterable[Record]:
        """The live records of an object, in creation order."""
        return list(self._by_object.get(sobject, {}).values())

    def lookup(self, record_id: str) -> tuple[str, Record] | None:
        """(object name, record) for a 15- or 18-character id, any case."""
        normalized = normalize_id(record_id)
        return self._by_id.get(normalized) if normalized else None

    def get(self, sobject: str, record_id: str) -> Record | None:
        found = self.lookup(record_id)
        return found[1] if found and found[0] == sobject else None

    def find_external(self, sobject: str, field: Field, value: Any) -> list[str]:
        """Ids of the records whose external id field equals the value (case-insensitively
        unless the field is case-sensitive)."""
        if field.name == "Id":
            found = self.get(sobject, str(value))
            return [found["Id"]] if found else []
        if field.unique:
            return sorted(self._unique[sobject, field.name].get(field.key(value), ()))
        key = field.key(value)
        return [r["Id"] for r in self.scan(sobject) if field.key(r.get(field.name)) == key]

    def count(self, sobject: str) -> int:
        return len(self._by_object.get(sobject, {}))

    # -- writing -------------------------------------------------------------------------
    def insert(self, sobject: str, values: dict[str, Any], user_id: str | None) -> str:
        """Create a record; returns its id or raises :class:`RecordError`."""
        obj = self._object(sobject)
        changes = self._coerce(obj, values, creating=True)
        record_id = self.ids.new_id(obj.key_prefix)
        record = self._defaults(obj)
        record.update(changes)
        self._stamp(record, record_id, user_id, creating=True)
        self._check_owner(obj, record, changes, creating=True)
        self._apply_rules(obj, record, None)
        self._check_required(obj, record)
        self._check_validation_rules(obj, record)
        self._check_unique(obj, record, None)
        self._store(obj.name, record)
        if obj.name == "Account" and record.get("IsPersonAccount"):
            self._create_person_contact(record, user_id)
        return record_id

    def update(
        self, sobject: str, record_id: str, values: dict[str, Any], user_id: str | None
    ) -> None:
        """Change fields of an existing record or raise :class:`RecordError`."""
        obj = self._object(sobject)
        current = self._existing(obj, record_id)
        changes = self._coerce(obj, values, creating=False)
        record = {**current, **changes}
        self._stamp(record, current["Id"], user_id, creating=False)
        self._check_owner(obj, record, changes, creating=False)
        self._apply_rules(obj, record, current)
        self._check_required(obj, record)
        self._check_validation_rules(obj, record)
        self._check_unique(obj, record, current["Id"])
        self._store(obj.name, record, current)

    def upsert(
        self, sobject: str, field_name: str, value: Any, values: dict[str, Any], user_id: str | None
    ) -> tuple[str, bool]:
        """Insert or update by external id: (id, created). 300-style ambiguity raises MULTIPLE."""
        obj = self._object(sobject)
        field = self.external_field(obj, field_name)
        if (value is None or value == "") and field.name == "Id":
            # Upsert on Id: a record without an Id is created (Bulk and collections alike).
            values = {k: v for k, v in values.items() if k.lower() != "id"}
            return self.insert(obj.name, values, user_id), True
        if value is None or value == "":
            raise fail("MISSING_ARGUMENT", f"{field.name} not specified")
        matches = self.find_external(obj.name, field, value)
        if len(matches) > 1:
            raise MultipleMatches(matches)
        values = {k: v for k, v in values.items() if k.lower() != "id"}
        if matches:
            self.update(obj.name, matches[0], values, user_id)
            return matches[0], False
        if field.name != "Id":
            values = {**values, field.name: value}
        return self.insert(obj.name, values, user_id), True

    def delete(self, sobject: str, record_id: str, *, hard: bool = False) -> None:
        """Delete a record: into the recycle bin, or (``hard``) for good."""
        obj = self._object(sobject)
        record = self._existing(obj, record_id)
        self._remove(obj.name, record)
        if not hard:
            self._tombstones.add(record["Id"])

    def _remove(self, sobject: str, record: Record) -> None:
        if self._journal is not None:
            self._journal.append((sobject, record["Id"], record))
        self._unindex(sobject, record)
        del self._by_object[sobject][record["Id"]]
        del self._by_id[record["Id"]]
        self._deleted.add(record["Id"])
        self._dirty.discard(record["Id"])

    def begin(self) -> None:
        """Start journaling changes so that :meth:`rollback` can undo them (allOrNone)."""
        self._journal = []

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        """Undo every change since :meth:`begin`."""
        journal, self._journal = self._journal or [], None
        for sobject, record_id, previous in reversed(journal):
            current = self._by_id.get(record_id)
            if current is not None:
                self._remove(sobject, current[1])
            if previous is not None:
                self._store(sobject, previous)
                self._deleted.discard(record_id)
                self._tombstones.discard(record_id)

    def external_field(self, obj: SObject, field_name: str) -> Field:
        """The field an upsert matches on: Id or an external id field."""
        field = obj.field(field_name)
        if field is None or not (field.external_id or field.name == "Id"):
            raise fail(
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        return field

    def set_fields(self, sobject: str, record_id: str, values: dict[str, Any]) -> None:
        """Set fields without validation (system changes such as lead conversion)."""
        obj = self._object(sobject)
        current = self._existing(obj, record_id)
        record = {**current, **values}
        self._stamp(record, current["Id"], None, creating=False)
        self._store(obj.name, record, current)

    def set_validation_rules(self, rules: tuple[ValidationRule, ...]) -> None:
        """The org's active validation rules (compiled by `validation.compile_rules`)."""
        by_object: dict[str, list[ValidationRule]] = {}
        for rule in rules:
            by_object.setdefault(rule.object, []).append(rule)
        self._validation_rules = {name: tuple(found) for name, found in by_object.items()}

    def reset(self) -> None:
        """Delete every record except the default user, and empty the recycle bin."""
        for sobject, records in self._by_object.items():
            for record_id in list(records):
                if record_id != self.default_user_id:
                    self.delete(sobject, record_id, hard=True)
        self._tombstones.clear()
        self.flush()

    # -- validation ----------------------------------------------------------------------
    def _object(self, sobject: str) -> SObject:
        obj = self.schema.get(sobject)
        if obj is None:
            raise fail("NOT_FOUND", "The requested resource does not exist")
        return obj

    def _existing(self, obj: SObject, record_id: str) -> Record:
        normalized = normalize_id(record_id)
        if normalized is None:
            raise fail(
                "MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {record_id}", "Id"
            )
        found = self._by_id.get(normalized)
        if found is None or found[0] != obj.name:
            if key_prefix(normalized) != obj.key_prefix:
                raise fail(
                    "MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {record_id}", "Id"
                )
            if normalized in self._tombstones:
                raise fail("ENTITY_IS_DELETED", "entity is deleted")
            raise fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        return found[1]

    def _coerce(self, obj: SObject, values: dict[str, Any], *, creating: bool) -> Record:
        changes: Record = {}
        for name, value in values.items():
            if name == "attributes":
                continue
            field = obj.field(name)
            if field is None:
                raise fail(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}"
                )
            if not (field.createable if creating else field.updateable):
                raise fail(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {field.name}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile or "
                    "permission set.",
                    field.name,
                )
            try:
                stored = coerce(field, value)
            except FieldValueError as exc:
                raise fail(exc.code, exc.message, field.name) from None
            if field.is_reference and stored is not None:
                stored = self._check_reference(field, stored)
            changes[field.name] = stored
        return changes

    def _check_reference(self, field: Field, value: str) -> str:
        normalized = normalize_id(value)
        if normalized is None:
            raise fail(
                "MALFORMED_ID", f"{field.label}: id value of incorrect type: {value}", field.name
            )
        if field.reference_to == ("RecordType",):
            if normalized not in RECORD_TYPES:
                raise fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", field.name)
            return normalized
        target = self.schema.by_prefix(key_prefix(normalized))
        if target is None or target.name not in field.reference_to:
            raise fail(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{field.label}: id value of incorrect type: {value}",
                field.name,
            )
        if normalized in self._tombstones:  # in the recycle bin: Salesforce names no field
            raise fail("ENTITY_IS_DELETED", "entity is deleted")
        if normalized not in self._by_id:
            raise fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", field.name)
        return normalized

    def _defaults(self, obj: SObject) -> Record:
        return {
            f.name: False if f.default is None and f.type == "boolean" else f.default
            for f in obj.fields.values()
        }

    def _stamp(
        self, record: Record, record_id: str, user_id: str | None, *, creating: bool
    ) -> None:
        now = format_datetime(utcnow())
        user = user_id or getattr(self, "default_user_id", None) or record_id
        record["Id"] = record_id
        record["IsDeleted"] = False
        if creating:
            record["CreatedDate"] = now
            record["CreatedById"] = user
            if "OwnerId" in record and record["OwnerId"] is None:
                record["OwnerId"] = user
        record["LastModifiedDate"] = now
        record["LastModifiedById"] = user
        record["SystemModstamp"] = now

    def _apply_rules(self, obj: SObject, record: Record, current: Record | None) -> None:
        """Object-specific behaviour: names, person accounts, converted leads, Task Who/What."""
        if obj.name in ("Contact", "Lead", "User"):
            record["Name"] = _full_name(record)
        if obj.name == "Lead" and current is not None and current.get("IsConverted"):
            raise fail("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        if obj.name == "Account":
            self._account_rules(record, current)
        if obj.name == "Task":
            self._task_rules(record)
        if obj.custom and obj.field("Name") and not record.get("Name"):
            record["Name"] = record["Id"]

    def _account_rules(self, record: Record, current: Record | None) -> None:
        if not self.schema.person_accounts:
            self._business_account_only(record)
            return
        if current is None:
            person = record.get("RecordTypeId") == PERSON_ACCOUNT_RECORD_TYPE or (
                record.get("LastName") and not record.get("Name")
            )
            record["IsPersonAccount"] = bool(person)
        if record.get("IsPersonAccount"):
            if not record.get("LastName"):
                raise fail(
                    "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", "LastName"
                )
            record["Name"] = _full_name(record)
            record["RecordTypeId"] = PERSON_ACCOUNT_RECORD_TYPE
        elif not record.get("Name"):
            raise fail("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", "Name")

    def _business_account_only(self, record: Record) -> None:
        """An org without Person Accounts: every Account is a business account."""
        if record.get("RecordTypeId") == PERSON_ACCOUNT_RECORD_TYPE:
            raise fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", "RecordTypeId")
        if not record.get("Name"):
            raise fail("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", "Name")

    def _check_owner(self, obj: SObject, record: Record, changes: Record, creating: bool) -> None:
        """A record created with, or given, an inactive user as owner is refused."""
        if not (creating or "OwnerId" in changes) or obj.field("OwnerId") is None:
            return
        owner = self._by_id.get(str(record.get("OwnerId") or ""))
        if owner is not None and owner[0] == "User" and not owner[1].get("IsActive", True):
            raise fail(
                "INACTIVE_OWNER_OR_USER",
                f"operation performed with inactive user [{owner[1]['Id']}] as owner of "
                f"{obj.label.lower()}",
            )

    def _task_rules(self, record: Record) -> None:
        record["IsClosed"] = record.get("Status") == "Completed"
        who = record.get("WhoId")
        if not who:
            return
        who_type, who_record = self._by_id[who]
        if who_type != "Lead":
            return
        if who_record.get("IsConverted"):
            raise fail("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", "WhoId")
        if record.get("WhatId"):
            raise fail(
                "FIELD_INTEGRITY_EXCEPTION",
                "Related To ID: You can't associate a lead with a related record (WhatId must be "
                "empty when WhoId is a lead)",
                "WhatId",
            )

    def _create_person_contact(self, account: Record, user_id: str | None) -> None:
        contact = {
            "FirstName": account.get("FirstName"),
            "LastName": account.get("LastName"),
            "AccountId": account["Id"],
            "OwnerId": account.get("OwnerId"),
        }
        contact_id = self.insert("Contact", contact, user_id)
        self._by_id[contact_id][1]["IsPersonAccount"] = True
        account["PersonContactId"] = contact_id
        self._dirty.add(account["Id"])

    def _check_required(self, obj: SObject, record: Record) -> None:
        missing = [
            f.name
            for f in obj.fields.values()
            if f.required and f.createable and record.get(f.name) in (None, "")
        ]
        if missing:
            raise fail(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                *missing,
            )

    def _check_validation_rules(self, obj: SObject, record: Record) -> None:
        """The first active validation rule the row meets refuses it (after the system checks,
        before duplicates, as in Salesforce's order of execution)."""
        for rule in self._validation_rules.get(obj.name, ()):
            if rule.matches(record):
                shown = (rule.error_field,) if rule.error_field else ()
                raise fail("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, *shown)

    def _check_unique(self, obj: SObject, record: Record, own_id: str | None) -> None:
        for field in obj.fields.values():
            if not field.unique or record.get(field.name) in (None, ""):
                continue
            others = self._unique[obj.name, field.name].get(field.key(record[field.name]), set())
            clash = next((i for i in others if i != own_id), None)
            if clash:
                raise fail(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {field.name} duplicates value on record with id: "
                    f"{clash}",
                    field.name,
                )

    # -- indexes and persistence ----------------------------------------------------------
    def _store(self, sobject: str, record: Record, previous: Record | None = None) -> None:
        if self._journal is not None:
            self._journal.append((sobject, record["Id"], previous))
        if previous is not None:
            self._unindex(sobject, previous)
        self._by_object[sobject][record["Id"]] = record
        self._by_id[record["Id"]] = (sobject, record)
        obj = self.schema.objects[sobject]
        for field in obj.fields.values():
            if field.unique and record.get(field.name) not in (None, ""):
                index = self._unique[sobject, field.name]
                index.setdefault(field.key(record[field.name]), set()).add(record["Id"])
        self._dirty.add(record["Id"])

    def _unindex(self, sobject: str, record: Record) -> None:
        obj = self.schema.objects[sobject]
        for field in obj.fields.values():
            if field.unique and record.get(field.name) not in (None, ""):
                ids = self._unique[sobject, field.name].get(field.key(record[field.name]))
                if ids:
                    ids.discard(record["Id"])

    def _open(self, path: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False)
        db.execute(
            "CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, sobject TEXT NOT NULL, "
            "data TEXT NOT NULL)"
        )
        db.commit()
        return db

    def _load(self) -> None:
        assert self._db is not None
        for record_id, sobject, data in self._db.execute("SELECT id, sobject, data FROM records"):
            if sobject not in self.schema.objects:
                continue
            record = json.loads(data)
            self._store(sobject, record)
            self.ids.advance_past(record_id)
        self._dirty.clear()

    def flush(self) -> None:
        """Write changed records to the SQLite file (no-op in memory)."""
        if self._db is None:
            self._dirty.clear()
            self._deleted.clear()
            return
        rows = [
            (rid, found[0], json.dumps(found[1], ensure_ascii=False))
            for rid in self._dirty
            if (found := self._by_id.get(rid))
        ]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", rows)
            self._db.executemany("DELETE FROM records WHERE id = ?", [(i,) for i in self._deleted])
        self._dirty.clear()
        self._deleted.clear()

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()

    def iter_all(self) -> Iterator[tuple[str, Record]]:
        for sobject, records in self._by_object.items():
            for record in records.values():
                yield sobject, record


class MultipleMatches(Exception):
    """An upsert whose external id matches more than one record (HTTP 300)."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(f"{len(ids)} records match")
        self.ids = ids


def _full_name(record: Record) -> str:
    return " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
