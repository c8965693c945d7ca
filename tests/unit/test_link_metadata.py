"""Metadata for links made in Salesforce (issue 18): the rep's list view and permission set,
and the emulator's schema built from them."""

from __future__ import annotations

from talklog.salesforce.metadata import METADATA_NS, load_custom_schema, parse_xml, source_dirs
from talklog_dev.emulator.schema import build_schema

SOURCE = source_dirs()[0]
LINKWORKS = SOURCE / "objects" / "LineWorks__c"
REP_FIELDS = ("Linked__c", "ExternalContact__c", "Lead__c", "Contact__c", "Account__c")
PROJECT_FIELDS = (
    "Nickname__c",
    "AppLink__c",
    "LineUserId__c",
    "LineWorksUserId__c",
    "LinkedSince__c",  # an admin's import of migrated links sets it, never a rep
)


def text(element, tag: str) -> str | None:
    return element.findtext(f"{{{METADATA_NS}}}{tag}")


def test_my_unlinked_list_view_shows_the_reps_own_unticked_records() -> None:
    view = parse_xml(LINKWORKS / "listViews" / "My_Unlinked.listView-meta.xml")
    assert text(view, "label") == "My unlinked LINE customers"
    assert text(view, "filterScope") == "Mine"
    (rule,) = view.findall(f"{{{METADATA_NS}}}filters")
    assert (text(rule, "field"), text(rule, "operation"), text(rule, "value")) == (
        "Linked__c",
        "equals",
        "0",
    )
    columns = {c.text for c in view.findall(f"{{{METADATA_NS}}}columns")}
    assert {"Nickname__c", "AppLink__c", "ExternalContact__c", "Lead__c"} <= columns


def test_linking_permission_set_lets_reps_edit_only_the_decision() -> None:
    root = parse_xml(SOURCE / "permissionsets" / "LineWorksLinking.permissionset-meta.xml")
    editable = {
        text(p, "field"): text(p, "editable") == "true"
        for p in root.findall(f"{{{METADATA_NS}}}fieldPermissions")
    }
    assert all(editable[f"LineWorks__c.{name}"] for name in REP_FIELDS)
    assert not any(editable[f"LineWorks__c.{name}"] for name in PROJECT_FIELDS)


def test_the_emulator_builds_linkworks_with_every_field_a_salesforce_link_needs() -> None:
    spec = load_custom_schema()["LineWorks__c"]
    obj = build_schema().get("LineWorks__c")
    assert obj is not None
    for name in (*REP_FIELDS, *PROJECT_FIELDS, "LinkKey__c", "OwnerId"):
        assert obj.field(name) is not None, name
    assert spec.fields["LinkKey__c"].external_id and spec.fields["LinkKey__c"].unique
    assert obj.field("Linked__c").default is False
    for name in ("SystemModstamp", "LastModifiedById", "LastModifiedDate"):
        assert not obj.field(name).updateable, name
