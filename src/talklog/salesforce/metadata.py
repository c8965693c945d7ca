"""Parse the SFDX source under ``salesforce`` into frozen field and object specs.

The SFDX files that admins deploy are the single source of truth for field names, types and
lengths; the rest of the code reads them through :func:`load_custom_schema`.
"""

from __future__ import annotations

import functools
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

METADATA_NS = "http://soap.sforce.com/2006/04/metadata"
SFDX_ROOT_ENV = "TALKLOG_SFDX_ROOT"
PROJECT_FILE = "sfdx-project.json"
_SOURCE_TREE = Path(__file__).resolve().parents[3] / "salesforce"
"""``salesforce`` when running from the repository (or an editable install)."""
NAME_FIELD_LENGTH = 80
"""Length of a custom object's Text Name field (fixed by Salesforce)."""

FIELD_TYPES = frozenset({
    "AutoNumber", "Checkbox", "Currency", "Date", "DateTime", "Email", "EncryptedText",
    "ExternalLookup", "Hierarchy", "Html", "IndirectLookup", "Location", "LongTextArea", "Lookup",
    "MasterDetail", "MetadataRelationship", "MultiselectPicklist", "Number", "Percent", "Phone",
    "Picklist", "Summary", "Text", "TextArea", "Time", "Url",
})  # fmt: skip
_FIXED_LENGTHS = {"Url": 255, "Email": 80, "Phone": 40, "TextArea": 255}
_OBJECT_ALIASES = {"Activity": "Task"}
"""Folders whose fields the pipeline sees under another object (Activity fields -> Task)."""


class MetadataError(ValueError):
    """The SFDX source is malformed or uses something this parser does not know."""


@dataclass(frozen=True)
class PicklistValueSpec:
    """One value of a picklist's value set."""

    value: str
    label: str
    default: bool = False
    active: bool = True


@dataclass(frozen=True)
class FieldSpec:
    """One field as deployed: the facts a writer needs (type, length, keys, lookups)."""

    object_name: str
    name: str
    type: str
    label: str
    length: int | None
    precision: int | None
    scale: int | None
    external_id: bool
    unique: bool
    required: bool
    reference_to: str | None
    relationship_name: str | None
    default_value: str | None
    case_sensitive: bool = False
    picklist_values: tuple[PicklistValueSpec, ...] = ()
    restricted_picklist: bool = False


@dataclass(frozen=True)
class ObjectSpec:
    """A custom object, or a standard object that receives custom fields.

    ``fields`` holds the custom fields and, for a custom object, its ``Name`` field.
    """

    name: str
    label: str
    custom: bool
    name_field_type: str | None
    fields: Mapping[str, FieldSpec]


def sfdx_root() -> Path:
    """The folder holding ``sfdx-project.json``: env override, source tree, or packaged copy."""
    override = os.environ.get(SFDX_ROOT_ENV)
    if override:
        return Path(override)
    if (_SOURCE_TREE / PROJECT_FILE).is_file():
        return _SOURCE_TREE
    import talklog

    return Path(talklog.__file__).resolve().parent / "_sfdx"


def source_dirs(root: Path | None = None) -> list[Path]:
    """The ``main/default`` folders of every package directory named in ``sfdx-project.json``."""
    root = Path(root) if root is not None else sfdx_root()
    project_file = root / PROJECT_FILE
    try:
        project = json.loads(project_file.read_text(encoding="utf-8"))
        packages = [entry["path"] for entry in project["packageDirectories"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MetadataError(f"{project_file}: not a readable SFDX project ({exc})") from exc
    return [root / package / "main" / "default" for package in packages]


def load_custom_schema(root: Path | None = None) -> dict[str, ObjectSpec]:
    """Object name -> spec for every object folder in the SFDX source (Activity as ``Task``)."""
    root = Path(root) if root is not None else sfdx_root()
    return dict(_load_schema(root.resolve()))


@functools.cache
def _load_schema(root: Path) -> Mapping[str, ObjectSpec]:
    objects: dict[str, ObjectSpec] = {}
    for folder in _object_folders(root):
        spec = _parse_object(folder)
        if spec.name in objects:
            raise MetadataError(f"{folder}: object {spec.name} defined twice")
        objects[spec.name] = spec
    return MappingProxyType(objects)


def _object_folders(root: Path) -> Iterator[Path]:
    for source in source_dirs(root):
        objects_dir = source / "objects"
        if objects_dir.is_dir():
            yield from sorted(p for p in objects_dir.iterdir() if p.is_dir())


def parse_xml(path: Path) -> ET.Element:
    """The root element of a metadata file; :class:`MetadataError` names the file on failure."""
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise MetadataError(f"{path}: malformed metadata XML ({exc})") from exc


def local_name(element: ET.Element) -> str:
    """The tag without its namespace; :class:`MetadataError` unless it is Salesforce's."""
    namespace, _, name = element.tag.rpartition("}")
    if namespace != "{" + METADATA_NS:
        raise MetadataError(f"<{element.tag}> is not in the namespace {METADATA_NS}")
    return name


def _parse_object(folder: Path) -> ObjectSpec:
    folder_name = folder.name
    name = _OBJECT_ALIASES.get(folder_name, folder_name)
    custom = folder_name.endswith("__c")
    label, name_field_type, name_label = name, None, "Name"
    object_file = folder / f"{folder_name}.object-meta.xml"
    if object_file.is_file():
        root = _expect_root(object_file, "CustomObject")
        label = _text(root, "label") or name
        name_field = root.find(_q("nameField"))
        if name_field is not None:
            name_field_type = _text(name_field, "type")
            name_label = _text(name_field, "label") or name_label
    elif custom:
        raise MetadataError(f"{object_file}: missing for custom object {folder_name}")
    fields = {}
    if custom and name_field_type is not None:
        fields["Name"] = _name_field(name, name_field_type, name_label)
    for path in sorted((folder / "fields").glob("*.field-meta.xml")):
        spec = _parse_field(path, name)
        fields[spec.name] = spec
    return ObjectSpec(name, label, custom, name_field_type, MappingProxyType(fields))


def _name_field(object_name: str, name_field_type: str, label: str) -> FieldSpec:
    length = NAME_FIELD_LENGTH if name_field_type == "Text" else None
    return FieldSpec(
        object_name, "Name", name_field_type, label, length, None, None,
        external_id=False, unique=False, required=name_field_type == "Text",
        reference_to=None, relationship_name=None, default_value=None,
    )  # fmt: skip


def _parse_field(path: Path, object_name: str) -> FieldSpec:
    root = _expect_root(path, "CustomField")
    name = _text(root, "fullName")
    expected = path.name.removesuffix(".field-meta.xml")
    if name != expected:
        raise MetadataError(f"{path}: fullName {name!r} does not match the file name")
    field_type = _text(root, "type")
    if field_type not in FIELD_TYPES:
        raise MetadataError(f"{path}: unknown field type {field_type!r}")
    length = _int(root, "length", path) or _FIXED_LENGTHS.get(field_type)
    return FieldSpec(
        object_name=object_name,
        name=name,
        type=field_type,
        label=_text(root, "label") or name,
        length=length,
        precision=_int(root, "precision", path),
        scale=_int(root, "scale", path),
        external_id=_bool(root, "externalId"),
        unique=_bool(root, "unique"),
        required=_bool(root, "required"),
        reference_to=_text(root, "referenceTo"),
        relationship_name=_text(root, "relationshipName"),
        default_value=_text(root, "defaultValue"),
        case_sensitive=_bool(root, "caseSensitive"),
        picklist_values=_picklist_values(root),
        restricted_picklist=_restricted(root),
    )


def _restricted(root: ET.Element) -> bool:
    value_set = root.find(_q("valueSet"))
    return value_set is not None and _bool(value_set, "restricted")


def _picklist_values(root: ET.Element) -> tuple[PicklistValueSpec, ...]:
    """The values of a picklist's own value set (none for a global value set)."""
    values = root.findall(f"{_q('valueSet')}/{_q('valueSetDefinition')}/{_q('value')}")
    return tuple(
        PicklistValueSpec(
            value=_text(value, "fullName") or "",
            label=_text(value, "label") or _text(value, "fullName") or "",
            default=_bool(value, "default"),
            active=(_text(value, "isActive") or "true").lower() == "true",
        )
        for value in values
    )


def _expect_root(path: Path, tag: str) -> ET.Element:
    root = parse_xml(path)
    try:
        found = local_name(root)
    except MetadataError as exc:
        raise MetadataError(f"{path}: {exc}") from exc
    if found != tag:
        raise MetadataError(f"{path}: root element is <{found}>, expected <{tag}>")
    return root


def _q(tag: str) -> str:
    return f"{{{METADATA_NS}}}{tag}"


def _text(element: ET.Element, tag: str) -> str | None:
    value = element.findtext(_q(tag))
    return value.strip() if value is not None and value.strip() else None


def _int(element: ET.Element, tag: str, path: Path) -> int | None:
    value = _text(element, tag)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise MetadataError(f"{path}: <{tag}> is not an integer: {value!r}") from exc


def _bool(element: ET.Element, tag: str) -> bool:
    return (_text(element, tag) or "false").lower() == "true"
