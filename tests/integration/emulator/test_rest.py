"""REST API of the emulator through the real simple-salesforce client over HTTPS."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)


@pytest.fixture
def sf(sf_emulator) -> Salesforce:
    return sf_emulator.salesforce()


def _error_code(exc: Exception) -> str:
    return exc.content[0]["errorCode"]  # type: ignore[attr-defined]


def test_versions_list_current_and_provider_default(sf_emulator):
    versions = sf_emulator.session().get(f"{sf_emulator.instance_url}/services/data").json()
    numbers = [v["version"] for v in versions]
    assert "66.0" in numbers and "59.0" in numbers
    assert {"label": "Spring '26", "url": "/services/data/v66.0", "version": "66.0"} in versions


def test_tls_is_verified_against_the_emulator_ca(sf_emulator):
    untrusting = requests.Session()
    untrusting.trust_env = False  # system CAs only: the emulator's certificate must be refused
    with pytest.raises(requests.exceptions.SSLError):
        untrusting.get(f"{sf_emulator.instance_url}/services/data", timeout=5)


def test_crud_round_trip_with_japanese_text(sf):
    created = sf.Account.create({"Name": "山田商事 🍣"})
    assert created["success"] and created["id"].startswith("001") and len(created["id"]) == 18
    record = sf.Account.get(created["id"][:15])  # 15-character ids work too
    assert record["Name"] == "山田商事 🍣"
    assert record["attributes"]["type"] == "Account"
    assert sf.Account.update(created["id"], {"Name": "山田"}) == 204
    assert sf.Account.get(created["id"])["Name"] == "山田"
    assert sf.Account.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(created["id"])


def test_describe_lists_custom_fields_with_types(sf):
    fields = {f["name"]: f for f in sf.TalkLog__c.describe()["fields"]}
    assert fields["Transcript__c"]["length"] == 131072
    assert fields["TalkLogKey__c"]["externalId"] and fields["TalkLogKey__c"]["unique"]
    assert fields["Lead__c"]["referenceTo"] == ["Lead"]
    assert fields["Lead__c"]["relationshipName"] == "Lead__r"
    task = {f["name"]: f for f in sf.Task.describe()["fields"]}
    assert task["LineWorksKey__c"]["externalId"]
    assert set(task["WhoId"]["referenceTo"]) == {"Lead", "Contact"}


def test_upsert_status_codes(sf):
    url = "LineWorksKey__c/key-1"
    assert sf.Task.upsert(url, {"Subject": "LINE WORKSログ", "Status": "Completed"}) == 201
    assert sf.Task.upsert(url, {"Subject": "LINE WORKSログ (2)"}) == 200
    response = sf.Task.upsert(url, {"Subject": "again"}, raw_response=True)
    assert response.status_code == 200 and response.json()["created"] is False
    tasks = sf.query("SELECT Id, Subject FROM Task WHERE LineWorksKey__c = 'key-1'")
    assert tasks["totalSize"] == 1 and tasks["records"][0]["Subject"] == "again"
    # LineWorksKey__c is unique and case-sensitive: SOQL compares it exactly.
    assert sf.query("SELECT Id FROM Task WHERE LineWorksKey__c = 'KEY-1'")["totalSize"] == 0
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Task.upsert("NoSuchField__c/x", {"Subject": "x"})
    assert _error_code(exc.value) == "NOT_FOUND"


def test_duplicate_unique_external_id_is_rejected(sf):
    first = sf.ExternalContact__c.create({"Name": "a", "LineWorksUuid__c": "u-1"})
    record = sf.ExternalContact__c.get_by_custom_id("LineWorksUuid__c", "u-1")
    assert record["Id"] == first["id"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.ExternalContact__c.create({"Name": "b", "LineWorksUuid__c": "u-1"})
    assert _error_code(exc.value) == "DUPLICATE_VALUE"
    # LineWorksUuid__c is case-sensitive: "U-1" is another value, not a duplicate.
    assert sf.ExternalContact__c.create({"Name": "c", "LineWorksUuid__c": "U-1"})["success"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.ExternalContact__c.get_by_custom_id("LineWorksUuid__c", "U-2")


@pytest.mark.parametrize(
    ("sobject", "values", "code"),
    [
        ("Contact", {"FirstName": "no last name"}, "REQUIRED_FIELD_MISSING"),
        ("Lead", {"LastName": "x"}, "REQUIRED_FIELD_MISSING"),
        ("Task", {"Subject": "x" * 256}, "STRING_TOO_LONG"),
        ("Task", {"Description": "あ" * 32001}, "STRING_TOO_LONG"),
        ("Task", {"WhoId": "not-an-id"}, "MALFORMED_ID"),
        ("Task", {"WhoId": "00QEm0000000zzz"}, "INVALID_CROSS_REFERENCE_KEY"),
        ("Task", {"NoSuchField__c": "x"}, "INVALID_FIELD"),
        ("Task", {"ActivityDate": "tomorrow"}, "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        (
            "Lead",
            {"LastName": "x", "Company": "y", "IsConverted": True},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
    ],
)
def test_validation_errors_have_salesforce_shape(sf, sobject, values, code):
    with pytest.raises(SalesforceMalformedRequest) as exc:
        getattr(sf, sobject).create(values)
    error = exc.value.content[0]
    assert error["errorCode"] == code
    assert set(error) == {"message", "errorCode", "fields"}


def test_references_checked_for_type_and_existence(sf_emulator, sf):
    account = sf.Account.create({"Name": "ACME"})["id"]
    lead = sf.Lead.create({"LastName": "佐藤", "Company": "ACME"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Task.create({"WhoId": account})  # WhoId is Lead or Contact only
    assert _error_code(exc.value) == "FIELD_INTEGRITY_EXCEPTION"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Task.create({"WhoId": lead, "WhatId": account})  # a lead's task has no WhatId
    assert _error_code(exc.value) == "FIELD_INTEGRITY_EXCEPTION"
    deleted = sf.Contact.create({"LastName": "gone"})["id"]
    sf.Contact.delete(deleted)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Task.create({"WhoId": deleted})  # in the recycle bin
    assert _error_code(exc.value) == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Task.create({"WhoId": deleted[:3] + "Em000009ZZZZ"})  # never existed
    assert _error_code(exc.value) == "INVALID_CROSS_REFERENCE_KEY"
    assert sf.Task.create({"WhoId": lead, "Subject": "ok"})["success"]


def test_soql_relationships_filters_order_and_paging(sf_emulator, sf):
    lead = sf.Lead.create({"LastName": "Lead", "Company": "C"})["id"]
    sf_emulator.create_records(
        "TalkLog__c",
        [
            {
                "Name": f"log {i:04d}",
                "TalkLogKey__c": f"k{i}",
                "Lead__c": lead,
                "MessageCount__c": i,
                "WindowStart__c": "2024-01-09T00:00:00+09:00",
            }
            for i in range(2500)
        ],
    )
    result = sf.query(
        "SELECT Id, Name, Lead__r.LastName, Lead__r.ConvertedContactId FROM TalkLog__c "
        "WHERE Lead__r.IsConverted = false AND MessageCount__c >= 100 "
        "AND (Name LIKE 'log 1%' OR Name IN ('log 0100', 'log 0101')) "
        "AND WindowStart__c = 2024-01-08T15:00:00Z AND CreatedDate = LAST_N_DAYS:1 "
        "ORDER BY MessageCount__c DESC LIMIT 3"
    )
    assert [r["Name"] for r in result["records"]] == ["log 1999", "log 1998", "log 1997"]
    first = result["records"][0]
    assert first["Lead__r"]["LastName"] == "Lead" and first["Lead__r"]["ConvertedContactId"] is None
    everything = sf.query_all("SELECT Id FROM TalkLog__c WHERE NOT Name LIKE 'x%'")
    assert everything["totalSize"] == 2500 and len(everything["records"]) == 2500
    page = sf.query("SELECT Id FROM TalkLog__c")
    assert not page["done"] and len(page["records"]) == 2000 and "nextRecordsUrl" in page
    more = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert more["done"] and len(more["records"]) == 500


def test_soql_errors(sf):
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Task WHERE")
    assert _error_code(exc.value) == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Nope__c FROM Task")
    assert _error_code(exc.value) == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Nope__c")
    assert _error_code(exc.value) == "INVALID_TYPE"


def test_limits_and_limit_info_header(sf_emulator, sf):
    sf.query("SELECT Id FROM Account")
    assert sf.api_usage["api-usage"].used == 1
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100_000
    assert limits["DailyApiRequests"]["Remaining"] == 100_000 - 2
    stats = sf_emulator.stats()
    assert stats["api_calls"]["GET /services/data/v{version}/query"] == 1
    assert stats["total_api_calls"] == 2


def test_collections_create_update_upsert_delete(sf):
    records = [
        {"attributes": {"type": "Lead"}, "LastName": f"L{i}", "Company": "C"} for i in range(200)
    ]
    created = sf.restful("composite/sobjects", method="POST", json={"records": records})
    assert len(created) == 200 and all(r["success"] for r in created)
    too_many = [*records, records[0]]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite/sobjects", method="POST", json={"records": too_many})
    assert _error_code(exc.value) == "EXCEEDED_ID_LIMIT"
    updates = [
        {"attributes": {"type": "Lead"}, "id": r["id"], "Status": "Working - Contacted"}
        for r in created[:3]
    ]
    assert all(
        r["success"]
        for r in sf.restful("composite/sobjects", method="PATCH", json={"records": updates})
    )
    upserts = [
        {"attributes": {"type": "LineWorks__c"}, "LinkKey__c": "a", "Nickname__c": "ヤマダ"},
        {"attributes": {"type": "LineWorks__c"}, "LinkKey__c": "b"},
    ]
    result = sf.restful(
        "composite/sobjects/LineWorks__c/LinkKey__c", method="PATCH", json={"records": upserts}
    )
    assert [r["created"] for r in result] == [True, True]
    result = sf.restful(
        "composite/sobjects/LineWorks__c/LinkKey__c", method="PATCH", json={"records": upserts}
    )
    assert [r["created"] for r in result] == [False, False]
    ids = ",".join(r["id"] for r in created[:5])
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": ids})
    assert all(r["success"] for r in deleted)


def test_collection_all_or_none_rolls_back(sf):
    records = [
        {"attributes": {"type": "Contact"}, "LastName": "ok"},
        {"attributes": {"type": "Contact"}, "FirstName": "missing last name"},
    ]
    body = {"allOrNone": True, "records": records}
    result = sf.restful("composite/sobjects", method="POST", json=body)
    assert [r["success"] for r in result] == [False, False]
    assert result[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert result[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.query("SELECT Id FROM Contact")["totalSize"] == 0
    partial = sf.restful("composite/sobjects", method="POST", json={"records": records})
    assert [r["success"] for r in partial] == [True, False]


def test_password_flow_and_bad_credentials(sf_emulator):
    session = sf_emulator.session()
    token_url = f"{sf_emulator.instance_url}/services/oauth2/token"
    good = session.post(
        token_url,
        data={
            "grant_type": "password",
            "client_id": sf_emulator.client_id,
            "client_secret": sf_emulator.client_secret,
            "username": sf_emulator.username,
            "password": sf_emulator.password,
        },
    )
    assert good.status_code == 200 and good.json()["instance_url"] == sf_emulator.instance_url
    bad = session.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": sf_emulator.client_id,
            "client_secret": "wrong",
        },
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client"
