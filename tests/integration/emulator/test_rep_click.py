"""The emulator's rep click (`POST /__emulator__/rep-click`, issue 18) and the parents'
`LineWorksUuid__c`: what docs/emulator.md's conformance rows say."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from talklog_dev.emulator.process import EmulatorHandle


@pytest.fixture
def mirrored(sf_emulator: EmulatorHandle) -> dict[str, str]:
    """One unlinked `LineWorks__c` and a rep."""
    sf_emulator.create_record("LineWorks__c", LinkKey__c="contact-1", Name="c")
    rep = sf_emulator.create_record("User", Username="rep@talklog.example", LastName="Rep")
    return {"rep": rep}


def click(emulator: EmulatorHandle, **body: Any) -> dict[str, Any]:
    return emulator.admin("POST", "rep-click", {"linkKey": "contact-1", **body})


def error_of(emulator: EmulatorHandle, **body: Any) -> str:
    with pytest.raises(requests.HTTPError) as refused:
        click(emulator, **body)
    return str(refused.value.response.json())


@pytest.mark.parametrize(
    ("sobject", "values", "lookup"),
    [
        ("ExternalContact__c", {"Name": "山田"}, "ExternalContact__c"),
        ("Lead", {"LastName": "山田", "Company": "山田商店"}, "Lead__c"),
        ("Contact", {"LastName": "山田"}, "Contact__c"),
        ("Account", {"LastName": "山田"}, "Account__c"),
    ],
)
def test_a_click_sets_the_lookup_of_the_parents_object_as_the_rep(
    sf_emulator: EmulatorHandle, mirrored: dict[str, str], sobject: str, values: dict, lookup: str
) -> None:
    parent = sf_emulator.create_record(sobject, **values)
    saved = click(sf_emulator, parentId=parent, userId=mirrored["rep"])
    assert saved[lookup] == parent and saved["Linked__c"] is True
    assert saved["LastModifiedById"] == mirrored["rep"]
    unticked = click(sf_emulator, linked=False, userId=mirrored["rep"])
    assert unticked["Linked__c"] is False and unticked[lookup] == parent  # the parent stays
    assert unticked["SystemModstamp"] >= saved["SystemModstamp"]


def test_a_click_is_refused_like_a_save(
    sf_emulator: EmulatorHandle, mirrored: dict[str, str]
) -> None:
    rep = mirrored["rep"]
    assert "NOT_FOUND" in error_of(sf_emulator, linkKey="contact-2", linked=False, userId=rep)
    other = sf_emulator.create_record("User", Username="u2@talklog.example", LastName="U")
    assert "FIELD_INTEGRITY_EXCEPTION" in error_of(sf_emulator, parentId=other, userId=rep)
    gone = sf_emulator.create_record("ExternalContact__c", Name="消えた")
    sf_emulator.salesforce().ExternalContact__c.delete(gone)
    assert "ENTITY_IS_DELETED" in error_of(sf_emulator, parentId=gone, userId=rep)
    sf_emulator.set_validation_rules(
        {"object": "LineWorks__c", "field": "Linked__c", "condition": "equals", "value": True,
         "message": "no links today"}
    )  # fmt: skip
    target = sf_emulator.create_record("ExternalContact__c", Name="山田")
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in error_of(sf_emulator, parentId=target, userId=rep)


@pytest.mark.parametrize("sobject", ["Lead", "Contact", "Account"])
def test_the_linked_parents_have_the_line_works_uuid_field(
    sf_emulator: EmulatorHandle, sobject: str
) -> None:
    fields = {
        f["name"]: f for f in sf_emulator.salesforce().__getattr__(sobject).describe()["fields"]
    }
    uuid = fields["LineWorksUuid__c"]
    assert (uuid["type"], uuid["length"], uuid["externalId"], uuid["unique"]) == (
        "string",
        64,
        True,
        True,
    )
