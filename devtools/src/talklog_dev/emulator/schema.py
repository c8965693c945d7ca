"""Object and field definitions: standard objects as data, custom ones from the SFDX metadata."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from talklog.salesforce.metadata import (
    FieldSpec,
    ObjectSpec,
    PicklistValueSpec,
    load_custom_schema,
)
from talklog_dev.emulator.ids import custom_prefixes, to18

# SFDX field types -> the type names describe() and the REST API use.
SFDX_TYPES = {
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Html": "textarea",
    "Lookup": "reference",
    "MasterDetail": "reference",
    "Checkbox": "boolean",
    "Url": "url",
    "Email": "email",
    "Phone": "phone",
    "Number": "double",
    "Currency": "currency",
    "Percent": "percent",
    "DateTime": "datetime",
    "Date": "date",
    "Picklist": "picklist",
    "AutoNumber": "string",
}
STANDARD_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Lead": "00Q",
    "Task": "00T",
}
RECORD_TYPE_PREFIX = "012"
PERSON_ACCOUNT_RECORD_TYPE = to18("012Em0000000001")
"""The record type id that makes a new Account a person account."""
BUSINESS_ACCOUNT_RECORD_TYPE = to18("012Em0000000002")
RECORD_TYPES = {
    PERSON_ACCOUNT_RECORD_TYPE: "PersonAccount",
    BUSINESS_ACCOUNT_RECORD_TYPE: "Business",
}
PERSON_ACCOUNT_FIELDS = {
    "Account": ("IsPersonAccount", "PersonContactId"),
    "Contact": ("IsPersonAccount",),
}
"""The fields that exist only in an org with Person Accounts enabled."""


@dataclass(frozen=True)
class Field:
    """One field as describe() shows it and as the record store enforces it."""

    name: str
    type: str
    label: str
    length: int | None = None
    required: bool = False
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    default: object = None
    precision: int | None = None
    scale: int | None = None
    auto_number: bool = False
    case_sensitive: bool = False
    """Matched and kept unique case-sensitively (a unique field with caseSensitive)."""
    picklist_values: tuple[PicklistValueSpec, ...] = ()
    restricted_picklist: bool = False
    child_relationship: str | None = None
    """The parent's name for the records that point at it through this lookup."""
    cascade_delete: bool = False

    @property
    def is_reference(self) -> bool:
        return self.type in ("reference", "id")

    def key(self, value: object) -> object:
        """The form in which values of this field match (folded unless case-sensitive)."""
        return value.lower() if isinstance(value, str) and not self.case_sensitive else value


@dataclass
class SObject:
    """One object: its key prefix and fields (looked up case-insensitively)."""

    name: str
    label: str
    key_prefix: str
    custom: bool
    fields: dict[str, Field]
    _by_lower: dict[str, Field] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_lower = {name.lower(): f for name, f in self.fields.items()}

    def field(self, name: str) -> Field | None:
        """The field with this API name, any case."""
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> Field | None:
        """The reference field whose relationship name is this (e.g. ``Lead__r``, ``Who``)."""
        lower = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == lower:
                return f
        return None

    def add(self, new: Field) -> None:
        self.fields[new.name] = new
        self._by_lower[new.name.lower()] = new

    def remove(self, name: str) -> Field | None:
        """Take the field off the object (describe, SOQL and writes no longer know it)."""
        found = self._by_lower.pop(name.lower(), None)
        if found is not None:
            del self.fields[found.name]
        return found


def _system_fields(owner: bool = True) -> list[Field]:
    ro = {"createable": False, "updateable": False}
    fields = [
        Field("Id", "id", "Record ID", 18, **ro),
        Field("IsDeleted", "boolean", "Deleted", **ro),
        Field("CreatedDate", "datetime", "Created Date", **ro),
        Field(
            "CreatedById",
            "reference",
            "Created By ID",
            18,
            reference_to=("User",),
            relationship_name="CreatedBy",
            **ro,
        ),
        Field("LastModifiedDate", "datetime", "Last Modified Date", **ro),
        Field(
            "LastModifiedById",
            "reference",
            "Last Modified By ID",
            18,
            reference_to=("User",),
            relationship_name="LastModifiedBy",
            **ro,
        ),
        Field("SystemModstamp", "datetime", "System Modstamp", **ro),
    ]
    if owner:
        fields.append(
            Field(
                "OwnerId",
                "reference",
                "Owner ID",
                18,
                reference_to=("User",),
                relationship_name="Owner",
            )
        )
    return fields


LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
TASK_PRIORITIES = ("High", "Normal", "Low")
TASK_SUBJECTS = ("Call", "Send Letter", "Send Quote", "Other")


def picklist(values: tuple[str, ...], default: str | None = None) -> tuple[PicklistValueSpec, ...]:
    """A standard value set: each value is its own label."""
    return tuple(PicklistValueSpec(v, v, v == default) for v in values)


def _ro(name: str, type_: str, label: str, **kw: object) -> Field:
    return Field(name, type_, label, createable=False, updateable=False, **kw)  # type: ignore[arg-type]


def _restricted_picklist(
    name: str,
    label: str,
    length: int,
    values: tuple[str, ...],
    default: str,
    *,
    required: bool = False,
) -> Field:
    """A restricted picklist of a standard value set, `default` its default value."""
    return Field(
        name,
        "picklist",
        label,
        length,
        required=required,
        default=default,
        picklist_values=picklist(values, default),
        restricted_picklist=True,
    )


def _standard_objects() -> dict[str, list[Field]]:
    name = _ro("Name", "string", "Full Name", length=121)
    return {
        "User": [
            *_system_fields(owner=False),
            Field("Username", "string", "Username", 80, required=True, unique=True),
            Field("FirstName", "string", "First Name", 40),
            Field("LastName", "string", "Last Name", 80, required=True),
            name,
            Field("Email", "email", "Email", 128),
            Field("FederationIdentifier", "string", "SAML Federation ID", 512),
            Field("IsActive", "boolean", "Active", default=True),
        ],
        "Account": [
            *_system_fields(),
            Field("Name", "string", "Account Name", 255),
            Field("FirstName", "string", "First Name", 40),
            Field("LastName", "string", "Last Name", 80),
            Field(
                "RecordTypeId",
                "reference",
                "Record Type ID",
                18,
                reference_to=("RecordType",),
                relationship_name="RecordType",
            ),
            _ro("IsPersonAccount", "boolean", "Is Person Account"),
            _ro(
                "PersonContactId",
                "reference",
                "Person Contact ID",
                length=18,
                reference_to=("Contact",),
                relationship_name="PersonContact",
            ),
        ],
        "Contact": [
            *_system_fields(),
            Field("FirstName", "string", "First Name", 40),
            Field("LastName", "string", "Last Name", 80, required=True),
            name,
            Field(
                "AccountId",
                "reference",
                "Account ID",
                18,
                reference_to=("Account",),
                relationship_name="Account",
                child_relationship="Contacts",
            ),
            Field("Email", "email", "Email", 80),
            _ro("IsPersonAccount", "boolean", "Is Person Account"),
        ],
        "Lead": [
            *_system_fields(),
            Field("FirstName", "string", "First Name", 40),
            Field("LastName", "string", "Last Name", 80, required=True),
            name,
            Field("Company", "string", "Company", 255, required=True),
            Field("Email", "email", "Email", 80),
            _restricted_picklist(
                "Status", "Lead Status", 255, LEAD_STATUSES, "Open - Not Contacted"
            ),
            _ro("IsConverted", "boolean", "Converted"),
            _ro(
                "ConvertedAccountId",
                "reference",
                "Converted Account ID",
                length=18,
                reference_to=("Account",),
                relationship_name="ConvertedAccount",
            ),
            _ro(
                "ConvertedContactId",
                "reference",
                "Converted Contact ID",
                length=18,
                reference_to=("Contact",),
                relationship_name="ConvertedContact",
            ),
            _ro("ConvertedDate", "date", "Converted Date"),
        ],
        "Task": [
            *_system_fields(),
            Field("Subject", "combobox", "Subject", 255, picklist_values=picklist(TASK_SUBJECTS)),
            Field("Description", "textarea", "Description", 32000),
            _restricted_picklist(
                "Status", "Status", 255, TASK_STATUSES, "Not Started", required=True
            ),
            _restricted_picklist(
                "Priority", "Priority", 40, TASK_PRIORITIES, "Normal", required=True
            ),
            Field("ActivityDate", "date", "Due Date Only"),
            Field(
                "WhoId",
                "reference",
                "Name ID",
                18,
                reference_to=("Contact", "Lead"),
                relationship_name="Who",
                child_relationship="Tasks",
            ),
            Field(
                "WhatId",
                "reference",
                "Related To ID",
                18,
                reference_to=("Account",),
                relationship_name="What",
                child_relationship="Tasks",
            ),
            _ro("IsClosed", "boolean", "Closed"),
        ],
    }


def _from_spec(spec: FieldSpec) -> Field:
    """Convert a metadata ``FieldSpec`` into a :class:`Field`."""
    is_ref = spec.type in ("Lookup", "MasterDetail")
    auto = spec.type == "AutoNumber"
    return Field(
        name=spec.name,
        type=SFDX_TYPES.get(spec.type, "string"),
        label=spec.label,
        length=18 if is_ref else spec.length,
        # A custom object's Name defaults to the record id when an API call leaves it out.
        required=spec.required and spec.name != "Name",
        createable=not auto,
        updateable=not auto,
        external_id=spec.external_id,
        unique=spec.unique,
        reference_to=(spec.reference_to,) if is_ref and spec.reference_to else (),
        relationship_name=spec.name.removesuffix("__c") + "__r" if is_ref else None,
        default=_default(spec.type, spec.default_value),
        precision=spec.precision,
        scale=spec.scale,
        auto_number=auto,
        case_sensitive=spec.case_sensitive and spec.unique,
        picklist_values=spec.picklist_values,
        restricted_picklist=spec.restricted_picklist,
        child_relationship=f"{spec.relationship_name}__r" if spec.relationship_name else None,
        cascade_delete=spec.type == "MasterDetail",
    )


def _default(sfdx_type: str, value: str | None) -> object:
    if value is None:
        return None
    if sfdx_type == "Checkbox":
        return value.strip().lower() == "true"
    return value.strip().strip('"')


class Schema:
    """All objects the emulator knows, by name (any case) and by key prefix."""

    def __init__(self, objects: Iterable[SObject]) -> None:
        self.objects = {o.name: o for o in objects}
        self._by_lower = {name.lower(): o for name, o in self.objects.items()}
        self._by_prefix = {o.key_prefix: o for o in self.objects.values()}
        self._hidden: dict[tuple[str, str], Field] = {}

    def get(self, name: str) -> SObject | None:
        """The object with this API name, any case."""
        return self._by_lower.get(name.lower())

    def children(self, parent: str) -> list[tuple[SObject, Field]]:
        """(object, lookup field) for every lookup that can point at a record of ``parent``."""
        return [
            (child, f)
            for child in self.objects.values()
            for f in child.fields.values()
            if f.type == "reference" and parent in f.reference_to
        ]

    def by_prefix(self, prefix: str) -> SObject | None:
        """The object whose ids start with this key prefix."""
        return self._by_prefix.get(prefix)

    @property
    def person_accounts(self) -> bool:
        """Whether this org has Person Accounts enabled (``Account.IsPersonAccount`` exists)."""
        account = self.get("Account")
        return account is not None and account.field("IsPersonAccount") is not None

    def set_person_accounts(self, enabled: bool) -> None:
        """Enable or disable Person Accounts: their fields are added back or taken away."""
        for object_name, names in PERSON_ACCOUNT_FIELDS.items():
            obj = self.objects[object_name]
            for name in names:
                if enabled and (object_name, name) in self._hidden:
                    obj.add(self._hidden.pop((object_name, name)))
                elif not enabled and (removed := obj.remove(name)) is not None:
                    self._hidden[object_name, name] = removed


def build_schema(custom: Mapping[str, ObjectSpec] | None = None) -> Schema:
    """Standard objects plus the custom objects and fields of the shipped SFDX metadata."""
    if custom is None:
        custom = load_custom_schema()
    standard = _standard_objects()
    custom_names = [name for name, spec in custom.items() if spec.custom]
    prefixes = {**STANDARD_PREFIXES, **custom_prefixes(custom_names)}
    objects: dict[str, SObject] = {}
    for name, fields in standard.items():
        objects[name] = SObject(name, name, prefixes[name], False, {f.name: f for f in fields})
    for name, spec in custom.items():
        obj = objects.get(name)
        if obj is None:
            system = {f.name: f for f in _system_fields()}
            obj = SObject(name, spec.label, prefixes[name], True, system)
            objects[name] = obj
        for spec_field in spec.fields.values():
            obj.add(_from_spec(spec_field))
    # Task.WhatId may point at an Account or any custom object.
    task = objects["Task"]
    what = task.fields["WhatId"]
    task.add(replace(what, reference_to=("Account", *sorted(custom_names))))
    return Schema(objects.values())
