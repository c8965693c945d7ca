"""Emulator fidelity (issue 16): requests a real org refuses or answers otherwise, per class.

Each class runs the requests through the real clients (simple-salesforce or `requests` over
HTTPS for REST, `talklog.salesforce.bulk.BulkClient` for Bulk API 2.0) and checks that the
emulator answers as Salesforce documents: case-sensitive external ids, ``updateOnly=true``,
restricted picklists, number precision, the upsert answer per API version, describe and
lookups to records in the recycle bin.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from talklog.salesforce.bulk import BulkClient, error_code

pytestmark = pytest.mark.reliability

CASE_SENSITIVE_KEYS = [
    ("TalkLog__c", "TalkLogKey__c", {"Name": "log"}),
    ("LineWorks__c", "LinkKey__c", {"Nickname__c": "n"}),
    ("ExternalContact__c", "LineWorksUuid__c", {"Name": "c"}),
    ("Task", "LineWorksKey__c", {"Subject": "s", "Status": "Completed"}),
]
CASE_PAIRS = [("room-AbC", "room-abc"), ("U-1", "u-1"), ("Ärger", "ärger")]


@pytest.fixture
def api(sf_emulator):
    """A function (method, path, version, **kw) -> response on /services/data/vXX.X/..."""
    session = sf_emulator.session()
    session.headers["Authorization"] = f"Bearer {sf_emulator.token()}"

    def call(method: str, path: str, version: str = "66.0", **kw: Any) -> requests.Response:
        url = f"{sf_emulator.instance_url}/services/data/v{version}/{path}"
        return session.request(method, url, timeout=30, **kw)

    return call


@pytest.fixture
def bulk(sf_emulator) -> BulkClient:
    return BulkClient(
        sf_emulator.session(), sf_emulator.instance_url, sf_emulator.token(), poll_interval=0.01
    )


def _code(response: requests.Response) -> str:
    return response.json()[0]["errorCode"]


# -- 1. case-sensitive external ids --------------------------------------------------------
@pytest.mark.parametrize(("sobject", "key", "values"), CASE_SENSITIVE_KEYS)
@pytest.mark.parametrize(("first", "second"), CASE_PAIRS)
def test_case_sensitive_external_ids_do_not_match_another_case(
    api, sf_emulator, sobject, key, values, first, second
):
    created = api("PATCH", f"sobjects/{sobject}/{key}/{first}", json=values)
    assert created.status_code == 201, created.text
    other = api("PATCH", f"sobjects/{sobject}/{key}/{second}", json=values)
    assert other.status_code == 201 and other.json()["created"] is True, other.text
    assert api("GET", f"sobjects/{sobject}/{key}/{second}").json()["Id"] == other.json()["id"]
    soql = f"SELECT Id FROM {sobject} WHERE {key} = '{first}'"
    assert api("GET", "query", params={"q": soql}).json()["totalSize"] == 1
    assert sorted(r[key] for r in sf_emulator.records(sobject)) == sorted([first, second])


@pytest.mark.parametrize(("sobject", "key", "values"), CASE_SENSITIVE_KEYS)
def test_bulk_rows_differing_only_by_case_are_two_records(bulk, sf_emulator, sobject, key, values):
    rows = [{key: first, **values} for first, _ in CASE_PAIRS]
    rows += [{key: second, **values} for _, second in CASE_PAIRS]
    result = bulk.ingest(sobject, "upsert", rows, external_id_field=key)
    assert result.ok, result.failed
    assert len(sf_emulator.records(sobject)) == len(rows)


# -- 2. updateOnly=true ---------------------------------------------------------------------
@pytest.mark.parametrize(("sobject", "key", "values"), CASE_SENSITIVE_KEYS)
@pytest.mark.parametrize("version", ["61.0", "66.0"])
def test_update_only_upsert_refuses_to_create(api, sf_emulator, sobject, key, values, version):
    missing = api("PATCH", f"sobjects/{sobject}/{key}/nope", version, params={"updateOnly": "true"})
    assert missing.status_code == 404 and _code(missing) == "NOT_FOUND", missing.text
    assert sf_emulator.records(sobject) == []
    assert api("PATCH", f"sobjects/{sobject}/{key}/k1", version, json=values).status_code == 201
    updated = api(
        "PATCH", f"sobjects/{sobject}/{key}/k1", version, params={"updateOnly": "true"}, json=values
    )
    assert updated.status_code == 200 and updated.json()["created"] is False, updated.text


# -- 3. restricted picklists and number precision ------------------------------------------
BAD_PICKLISTS = [
    ("Task", {"Subject": "s", "Status": "Done"}, "Status"),
    ("Task", {"Subject": "s", "Priority": "Urgent"}, "Priority"),
    ("Task", {"Subject": "s", "Status": "Closed"}, "Status"),
    ("Lead", {"LastName": "L", "Company": "C", "Status": "Working"}, "Status"),
]
OUT_OF_RANGE = [10**18, -(10**18), 1e20, "1000000000000000000"]


@pytest.mark.parametrize(("sobject", "values", "field"), BAD_PICKLISTS)
def test_bad_value_for_a_restricted_picklist_is_refused(api, bulk, sobject, values, field):
    response = api("POST", f"sobjects/{sobject}", json=values)
    assert response.status_code == 400, response.text
    assert _code(response) == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert response.json()[0]["fields"] == [field]
    result = bulk.ingest(sobject, "insert", [values])
    assert [error_code(row) for row in result.failed] == ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]


@pytest.mark.parametrize("number", OUT_OF_RANGE)
def test_number_over_the_field_precision_is_refused(api, bulk, number):
    values = {"TalkLogKey__c": "k", "Name": "n", "MessageCount__c": number}
    response = api("PATCH", "sobjects/TalkLog__c/TalkLogKey__c/k", json=values)
    assert response.status_code == 400, response.text
    assert _code(response) == "NUMBER_OUTSIDE_VALID_RANGE"
    assert response.json()[0]["fields"] == ["MessageCount__c"]
    result = bulk.ingest("TalkLog__c", "upsert", [values], external_id_field="TalkLogKey__c")
    assert [error_code(row) for row in result.failed] == ["NUMBER_OUTSIDE_VALID_RANGE"]


# -- 4. the REST upsert answer per API version ---------------------------------------------
@pytest.mark.parametrize(
    ("version", "updated_status"),
    [("31.0", 204), ("45.0", 204), ("46.0", 200), ("50.0", 200), ("59.0", 200), ("66.0", 200)],
)
def test_upsert_answers_as_the_api_version_documents(api, version, updated_status):
    path = "sobjects/LineWorks__c/LinkKey__c/link-1"
    created = api("PATCH", path, version, json={"Nickname__c": "a"})
    assert created.status_code == 201, created.text
    assert ("created" in created.json()) is (updated_status == 200)
    updated = api("PATCH", path, version, json={"Nickname__c": "b"})
    assert updated.status_code == updated_status, updated.text
    if updated_status == 204:
        assert updated.content == b""
    else:
        body = updated.json()
        assert body == {"id": created.json()["id"], "success": True, "errors": [], "created": False}


# -- 5. describe ------------------------------------------------------------------------------
FIELD_PROPERTIES = {
    "picklistValues",
    "soapType",
    "caseSensitive",
    "restrictedPicklist",
    "precision",
    "scale",
    "externalId",
    "unique",
}


@pytest.mark.parametrize(
    "sobject", ["Account", "Contact", "Lead", "Task", "TalkLog__c", "LineWorks__c"]
)
def test_describe_carries_the_field_properties_clients_read(api, sobject):
    described = api("GET", f"sobjects/{sobject}/describe").json()
    assert "childRelationships" in described
    for field in described["fields"]:
        assert set(field) >= FIELD_PROPERTIES, (field["name"], FIELD_PROPERTIES - set(field))
        assert field["soapType"].startswith(("xsd:", "tns:")), field


# -- 6. lookups to a record in the recycle bin ---------------------------------------------
LOOKUPS = [
    ("TalkLog__c", "Lead__c", "Lead", {"TalkLogKey__c": "k", "Name": "n"}),
    ("LineWorks__c", "Contact__c", "Contact", {"LinkKey__c": "k"}),
    ("ExternalContact__c", "Account__c", "Account", {"LineWorksUuid__c": "k", "Name": "n"}),
    ("Task", "WhoId", "Contact", {"Subject": "s"}),
]
PARENTS = {
    "Lead": {"LastName": "L", "Company": "C"},
    "Contact": {"LastName": "C"},
    "Account": {"Name": "A"},
}


@pytest.mark.parametrize(("sobject", "lookup", "parent", "values"), LOOKUPS)
def test_lookup_to_a_deleted_record_is_entity_is_deleted(
    api, bulk, sf_emulator, sobject, lookup, parent, values
):
    deleted = sf_emulator.create_record(parent, **PARENTS[parent])
    assert api("DELETE", f"sobjects/{parent}/{deleted}").status_code == 204
    never = deleted[:3] + "Em00000ZZZZZ"
    answers = {}
    for target in (deleted, deleted[:15], never, "not-an-id"):
        response = api("POST", f"sobjects/{sobject}", json={**values, lookup: target})
        assert response.status_code == 400, response.text
        answers[target] = _code(response)
    assert answers == {
        deleted: "ENTITY_IS_DELETED",
        deleted[:15]: "ENTITY_IS_DELETED",
        never: "INVALID_CROSS_REFERENCE_KEY",
        "not-an-id": "MALFORMED_ID",
    }
    result = bulk.ingest(sobject, "insert", [{**values, lookup: deleted}])
    assert [error_code(row) for row in result.failed] == ["ENTITY_IS_DELETED"]
