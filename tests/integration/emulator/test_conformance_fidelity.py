"""Conformance (issue 16) through simple-salesforce and BulkClient over HTTPS, one test per
behaviour: case-sensitive external ids, updateOnly, restricted picklists and number precision,
the upsert answer per API version, describe, and lookups to records in the recycle bin."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.api import DEFAULT_API_VERSION
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from talklog.salesforce.bulk import BulkClient, error_code


@pytest.fixture
def sf(sf_emulator) -> Salesforce:
    return sf_emulator.salesforce()


@pytest.fixture
def bulk(sf_emulator) -> BulkClient:
    return BulkClient(
        sf_emulator.session(), sf_emulator.instance_url, sf_emulator.token(), poll_interval=0.01
    )


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.content[0]["errorCode"]  # type: ignore[attr-defined]


def test_unique_case_sensitive_external_ids_match_exactly(sf, bulk):
    assert sf.TalkLog__c.upsert("TalkLogKey__c/Room-A", {"Name": "upper"}) == 201
    assert sf.TalkLog__c.upsert("TalkLogKey__c/room-a", {"Name": "lower"}) == 201
    assert sf.TalkLog__c.upsert("TalkLogKey__c/Room-A", {"Name": "upper 2"}) == 200
    assert sf.TalkLog__c.get_by_custom_id("TalkLogKey__c", "room-a")["Name"] == "lower"
    found = sf.query("SELECT Name FROM TalkLog__c WHERE TalkLogKey__c IN ('ROOM-A', 'Room-A')")
    assert [r["Name"] for r in found["records"]] == ["upper 2"]
    result = bulk.ingest(
        "LineWorks__c",
        "upsert",
        [{"LinkKey__c": "k"}, {"LinkKey__c": "K"}],
        external_id_field="LinkKey__c",
    )
    assert result.ok and result.succeeded_keys == ["k", "K"]


def test_update_only_upsert_updates_and_never_creates(sf, sf_emulator):
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.LineWorks__c.upsert("LinkKey__c/missing?updateOnly=true", {"Nickname__c": "x"})
    assert _code(exc) == "NOT_FOUND"
    assert sf_emulator.records("LineWorks__c") == []
    assert sf.LineWorks__c.upsert("LinkKey__c/k", {"Nickname__c": "a"}) == 201
    assert sf.LineWorks__c.upsert("LinkKey__c/k?updateOnly=true", {"Nickname__c": "b"}) == 200
    assert sf.LineWorks__c.get_by_custom_id("LinkKey__c", "k")["Nickname__c"] == "b"
    # Before API 61.0 the parameter does not exist: the upsert creates.
    older = sf_emulator.salesforce(version="60.0")
    assert older.LineWorks__c.upsert("LinkKey__c/new?updateOnly=true", {}) == 201


def test_restricted_picklists_and_number_precision(sf, bulk):
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Task.create({"Subject": "s", "Status": "Done"})
    assert _code(exc) == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    message = exc.value.content[0]["message"]
    assert message == "Status: bad value for restricted picklist field: Done"
    task = sf.Task.create({"Subject": "Something else", "Status": "Completed", "Priority": "High"})
    assert task["success"]  # Subject is a combobox: any text
    # MessageCount__c is Number(18, 0): 18 integer digits; the API keeps extra decimals.
    sf.TalkLog__c.upsert("TalkLogKey__c/n", {"Name": "n", "MessageCount__c": 3.75})
    stored = sf.TalkLog__c.get_by_custom_id("TalkLogKey__c", "n")["MessageCount__c"]
    assert stored == pytest.approx(3.75)
    assert sf.TalkLog__c.upsert("TalkLogKey__c/n", {"MessageCount__c": 10**17}) == 200
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.TalkLog__c.upsert("TalkLogKey__c/n", {"MessageCount__c": 10**18})
    assert _code(exc) == "NUMBER_OUTSIDE_VALID_RANGE"
    result = bulk.ingest(
        "TalkLog__c",
        "upsert",
        [{"TalkLogKey__c": "b", "Name": "b", "MessageCount__c": "1e18"}],
        external_id_field="TalkLogKey__c",
    )
    assert result.failed[0]["sf__Error"] == (
        "NUMBER_OUTSIDE_VALID_RANGE:メッセージ数: value outside of valid range on numeric "
        "field: 1e+18:MessageCount__c --"
    )


@pytest.mark.parametrize(
    ("version", "updated"), [("45.0", 204), ("50.0", 200), (DEFAULT_API_VERSION, 200)]
)
def test_upsert_answer_per_api_version(sf_emulator, version, updated):
    sf = sf_emulator.salesforce(version=version)
    created = sf.LineWorks__c.upsert("LinkKey__c/v", {"Nickname__c": "a"}, raw_response=True)
    assert created.status_code == 201
    assert created.json().get("created") is (None if version == "45.0" else True)
    assert sf.LineWorks__c.upsert("LinkKey__c/v", {"Nickname__c": "b"}) == updated


def test_describe_has_picklists_soap_types_and_child_relationships(sf):
    task = {f["name"]: f for f in sf.Task.describe()["fields"]}
    status = task["Status"]
    assert status["restrictedPicklist"] is True and status["soapType"] == "xsd:string"
    assert {"active": True, "defaultValue": True, "label": "Not Started", "validFor": None,
            "value": "Not Started"} in status["picklistValues"]  # fmt: skip
    assert task["Subject"]["restrictedPicklist"] is False and task["Subject"]["picklistValues"]
    assert (task["WhoId"]["soapType"], task["ActivityDate"]["soapType"]) == ("tns:ID", "xsd:date")
    talklog = {f["name"]: f for f in sf.TalkLog__c.describe()["fields"]}
    key = talklog["TalkLogKey__c"]
    assert (key["externalId"], key["unique"], key["caseSensitive"]) == (True, True, True)
    count = talklog["MessageCount__c"]
    assert (count["soapType"], count["precision"], count["scale"]) == ("xsd:double", 18, 0)
    assert talklog["RoomId__c"]["caseSensitive"] is False
    children = {
        (c["childSObject"], c["field"]): c for c in sf.Lead.describe()["childRelationships"]
    }
    assert children["TalkLog__c", "Lead__c"]["relationshipName"] == "TalkLogs__r"
    assert children["Task", "WhoId"]["relationshipName"] == "Tasks"
    assert children["TalkLog__c", "Lead__c"]["cascadeDelete"] is False


def test_lookup_to_a_record_in_the_recycle_bin_is_entity_is_deleted(sf, bulk, sf_emulator):
    lead = sf.Lead.create({"LastName": "L", "Company": "C"})["id"]
    sf.Lead.delete(lead)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.TalkLog__c.upsert("TalkLogKey__c/x", {"Name": "x", "Lead__c": lead})
    assert exc.value.content[0] == {
        "message": "entity is deleted",
        "errorCode": "ENTITY_IS_DELETED",
        "fields": [],
    }
    # A hard delete leaves no record in the recycle bin: the id is simply unknown.
    contact = sf.Contact.create({"LastName": "C"})["id"]
    assert bulk.ingest("Contact", "hardDelete", [{"Id": contact}]).ok
    result = bulk.ingest("Task", "insert", [{"Subject": "s", "WhoId": contact}])
    assert [error_code(row) for row in result.failed] == ["INVALID_CROSS_REFERENCE_KEY"]
