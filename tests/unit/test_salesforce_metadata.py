"""The SFDX source in salesforce: well-formed, holding every field the pipeline writes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from talklog.salesforce.fields import UPSERT_KEYS, WRITTEN_FIELDS
from talklog.salesforce.metadata import (
    METADATA_NS,
    FieldSpec,
    MetadataError,
    ObjectSpec,
    load_custom_schema,
    local_name,
    parse_xml,
    sfdx_root,
    source_dirs,
)

ROOT = sfdx_root()
SOURCE = source_dirs(ROOT)[0]
SCHEMA = load_custom_schema()
ROOT_ELEMENTS = {
    ".object-meta.xml": "CustomObject",
    ".field-meta.xml": "CustomField",
    ".listView-meta.xml": "ListView",
    ".layout-meta.xml": "Layout",
    ".permissionset-meta.xml": "PermissionSet",
    ".tab-meta.xml": "CustomTab",
}
STANDARD_RELATED_LISTS = {"RelatedActivityList", "RelatedHistoryList", "RelatedContactList"}
META_FILES = sorted(SOURCE.rglob("*-meta.xml"))
LAYOUTS = sorted((SOURCE / "layouts").glob("*.layout-meta.xml"))
PERMISSION_SET = SOURCE / "permissionsets" / "LineWorksTalkLog.permissionset-meta.xml"
WRITTEN = [
    (obj, name, *contract)
    for obj, fields in WRITTEN_FIELDS.items()
    for name, contract in fields.items()
]


def q(tag: str) -> str:
    return f"{{{METADATA_NS}}}{tag}"


def custom_fields() -> list[FieldSpec]:
    return [f for obj in SCHEMA.values() for f in obj.fields.values() if f.name.endswith("__c")]


def test_project_file_targets_api_66() -> None:
    project = json.loads((ROOT / "sfdx-project.json").read_text(encoding="utf-8"))
    assert project["sourceApiVersion"] == "66.0"
    assert [p["path"] for p in project["packageDirectories"]] == ["force-app"]
    assert SOURCE.is_dir()


@pytest.mark.parametrize("path", META_FILES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_meta_file_is_well_formed_with_the_right_root(path: Path) -> None:
    suffix = next((s for s in ROOT_ELEMENTS if path.name.endswith(s)), None)
    assert suffix is not None, f"unexpected metadata file {path.name}"
    assert local_name(parse_xml(path)) == ROOT_ELEMENTS[suffix]
    assert path.read_bytes().startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_schema_holds_the_custom_objects_task_and_the_linked_parents() -> None:
    parents = {"Lead", "Contact", "Account"}  # LineWorksUuid__c on the record a rep links
    assert set(SCHEMA) == {"ExternalContact__c", "LineWorks__c", "TalkLog__c", "Task", *parents}
    for name in ("ExternalContact__c", "LineWorks__c", "TalkLog__c"):
        assert SCHEMA[name].custom and SCHEMA[name].name_field_type == "Text"
    task = SCHEMA["Task"]
    assert not task.custom and task.name_field_type is None
    assert {f.object_name for f in task.fields.values()} == {"Task"}
    for name in parents:
        assert not SCHEMA[name].custom and set(SCHEMA[name].fields) == {"LineWorksUuid__c"}


@pytest.mark.parametrize(
    ("obj", "field", "type_", "min_length"), WRITTEN, ids=[f"{o}.{f}" for o, f, *_ in WRITTEN]
)
def test_written_field_exists(obj: str, field: str, type_: str, min_length: int | None) -> None:
    spec = SCHEMA[obj].fields.get(field)
    assert spec is not None, f"{obj}.{field} is written but not in the metadata"
    assert spec.type == type_
    if min_length is not None:
        assert spec.length is not None and spec.length >= min_length


@pytest.mark.parametrize(("obj", "key"), sorted(UPSERT_KEYS.items()))
def test_upsert_keys_are_unique_external_ids(obj: str, key: str) -> None:
    spec = SCHEMA[obj].fields[key]
    assert (spec.type, spec.external_id, spec.unique) == ("Text", True, True)


def test_every_external_id_is_unique() -> None:
    for spec in custom_fields():
        assert spec.unique == spec.external_id, f"{spec.object_name}.{spec.name}"


def test_transcript_is_a_max_size_long_text_area() -> None:
    spec = SCHEMA["TalkLog__c"].fields["Transcript__c"]
    assert (spec.type, spec.length) == ("LongTextArea", 131072)


def test_lookups_have_relationships_unique_per_parent() -> None:
    lookups = [f for f in custom_fields() if f.type == "Lookup"]
    assert all(f.reference_to and f.relationship_name for f in lookups)
    names = Counter((f.reference_to, f.relationship_name) for f in lookups)
    assert [key for key, count in names.items() if count > 1] == []


def test_lookups_clear_on_parent_delete() -> None:
    for path in sorted(SOURCE.glob("objects/*/fields/*.field-meta.xml")):
        root = parse_xml(path)
        if root.findtext(q("type")) == "Lookup":
            assert root.findtext(q("deleteConstraint")) == "SetNull", path.name


def test_layouts_cover_the_lineworks_parents() -> None:
    objects = {path.name.split("-", 1)[0] for path in LAYOUTS}
    assert objects == {
        "ExternalContact__c",
        "LineWorks__c",
        "TalkLog__c",
        "Lead",
        "Contact",
        "Account",
    }
    parents = {"Lead": "Lead__c", "Contact": "Contact__c", "Account": "Account__c"}
    parents["ExternalContact__c"] = "ExternalContact__c"
    for parent, lookup in parents.items():
        lists = related_lists(next(p for p in LAYOUTS if p.name.startswith(parent + "-")))
        assert {f"LineWorks__c.{lookup}", f"TalkLog__c.{lookup}"} <= set(lists)


def related_lists(path: Path) -> list[str]:
    return [e.text or "" for e in parse_xml(path).iter(q("relatedList"))]


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name)
def test_layout_related_lists_name_existing_relationships(path: Path) -> None:
    parent = path.name.split("-", 1)[0]
    for name in related_lists(path):
        if "." not in name:
            assert name in STANDARD_RELATED_LISTS
            continue
        child, field = name.split(".", 1)
        spec = SCHEMA[child].fields.get(field)
        assert spec is not None, name
        assert (spec.type, spec.reference_to) == ("Lookup", parent), name
        assert spec.relationship_name


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name)
def test_layout_custom_items_exist_and_required_ones_are_required(path: Path) -> None:
    parent = path.name.split("-", 1)[0]
    items = {
        i.findtext(q("field")): i.findtext(q("behavior"))
        for i in parse_xml(path).iter(q("layoutItems"))
    }
    assert items.get("Name") == "Required"
    fields = SCHEMA[parent].fields if parent in SCHEMA else {}
    for name, behavior in items.items():
        if name and name.endswith("__c"):
            assert name in fields, f"{parent}.{name}"
            assert (behavior == "Required") == fields[name].required, f"{parent}.{name}"
    assert {f.name for f in fields.values() if f.required} <= set(items)


def test_permission_set_covers_every_optional_custom_field() -> None:
    root = parse_xml(PERMISSION_SET)
    granted = {e.findtext(q("field")): e for e in root.iter(q("fieldPermissions"))}
    expected = {f"{f.object_name}.{f.name}" for f in custom_fields() if not f.required}
    assert set(granted) == expected
    assert all(
        e.findtext(q("editable")) == e.findtext(q("readable")) == "true" for e in granted.values()
    )


def test_permission_set_grants_the_custom_objects_and_their_tabs() -> None:
    root = parse_xml(PERMISSION_SET)
    custom = {name for name, spec in SCHEMA.items() if spec.custom}
    objects = {e.findtext(q("object")): e for e in root.iter(q("objectPermissions"))}
    assert custom <= set(objects)
    for name in custom:
        flags = {
            flag: objects[name].findtext(q(flag))
            for flag in ("allowCreate", "allowEdit", "allowRead")
        }
        assert set(flags.values()) == {"true"}, name
    tabs = {e.findtext(q("tab")) for e in root.iter(q("tabSettings"))}
    assert tabs == {p.name.removesuffix(".tab-meta.xml") for p in (SOURCE / "tabs").iterdir()}
    assert tabs <= custom


# ---- the parser itself -----------------------------------------------------------------------


def make_project(root: Path, field_xml: str) -> Path:
    (root / "sfdx-project.json").write_text(
        json.dumps({"packageDirectories": [{"path": "app", "default": True}]}), encoding="utf-8"
    )
    fields = root / "app/main/default/objects/Activity/fields"
    fields.mkdir(parents=True)
    (fields / "Key__c.field-meta.xml").write_text(field_xml, encoding="utf-8")
    return root


def field_xml(type_: str = "Text", name: str = "Key__c") -> str:
    body = f"<fullName>{name}</fullName><label>K</label><length>40</length><type>{type_}</type>"
    return f'<CustomField xmlns="{METADATA_NS}">{body}<externalId>true</externalId></CustomField>'


def test_parses_a_minimal_project(tmp_path: Path) -> None:
    schema = load_custom_schema(make_project(tmp_path, field_xml()))
    spec = schema["Task"].fields["Key__c"]
    assert spec == FieldSpec(
        "Task", "Key__c", "Text", "K", 40, None, None, True, False, False, None, None, None
    )
    assert schema["Task"] == ObjectSpec("Task", "Task", False, None, schema["Task"].fields)


def test_env_var_overrides_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALKLOG_SFDX_ROOT", str(make_project(tmp_path, field_xml())))
    assert sfdx_root() == tmp_path
    assert set(load_custom_schema()) == {"Task"}


def test_cache_hands_out_copies() -> None:
    first = load_custom_schema()
    first.pop("Task")
    assert "Task" in load_custom_schema()
    assert load_custom_schema()["TalkLog__c"] is SCHEMA["TalkLog__c"]


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (field_xml()[:-5], "malformed metadata XML"),
        (field_xml("Geolocation"), "unknown field type 'Geolocation'"),
        (field_xml(name="Other__c"), "does not match the file name"),
        ("<CustomField><fullName>Key__c</fullName></CustomField>", "not in the namespace"),
    ],
    ids=["malformed", "unknown-type", "name-mismatch", "no-namespace"],
)
def test_bad_metadata_names_the_file(tmp_path: Path, xml: str, message: str) -> None:
    with pytest.raises(MetadataError, match=message) as info:
        load_custom_schema(make_project(tmp_path, xml))
    assert "Key__c.field-meta.xml" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_project_file_is_a_metadata_error(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"sfdx-project\.json"):
        load_custom_schema(tmp_path)


def test_falls_back_to_the_packaged_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import talklog
    from talklog.salesforce import metadata

    monkeypatch.delenv("TALKLOG_SFDX_ROOT", raising=False)
    monkeypatch.setattr(metadata, "_SOURCE_TREE", tmp_path / "absent")
    assert sfdx_root() == Path(talklog.__file__).resolve().parent / "_sfdx"
