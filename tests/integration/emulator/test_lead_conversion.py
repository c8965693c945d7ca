"""Lead conversion through the admin endpoint, observed with simple-salesforce."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest


@pytest.fixture
def sf(sf_emulator):
    return sf_emulator.salesforce()


def _lead_with_history(sf) -> tuple[str, str, str]:
    lead = sf.Lead.create({"FirstName": "太郎", "LastName": "山田", "Company": "山田商事"})["id"]
    task = sf.Task.create({"Subject": "LINE WORKSログ", "WhoId": lead, "Status": "Completed"})["id"]
    link = sf.LineWorks__c.create({"LinkKey__c": "k1", "Lead__c": lead, "Linked__c": True})["id"]
    return lead, task, link


def test_business_conversion_moves_activities_not_custom_lookups(sf_emulator, sf):
    lead, task, link = _lead_with_history(sf)
    converted = sf_emulator.convert_lead(lead)
    assert converted["personAccount"] is False and converted["movedTaskIds"] == [task]
    row = sf.query(
        f"SELECT IsConverted, ConvertedAccountId, ConvertedContactId, ConvertedDate, Status "
        f"FROM Lead WHERE Id = '{lead}'"
    )["records"][0]
    assert row["IsConverted"] is True and row["ConvertedDate"]
    assert row["ConvertedAccountId"] == converted["accountId"]
    assert row["ConvertedContactId"] == converted["contactId"]
    moved = sf.Task.get(task)
    assert moved["WhoId"] == converted["contactId"] and moved["WhatId"] == converted["accountId"]
    assert sf.Account.get(converted["accountId"])["Name"] == "山田商事"
    contact = sf.Contact.get(converted["contactId"])
    assert contact["AccountId"] == converted["accountId"] and contact["Name"] == "太郎 山田"
    assert sf.LineWorks__c.get(link)["Lead__c"] == lead  # custom lookups are not changed
    via_lead = sf.query(
        "SELECT Id, Lead__r.ConvertedContactId, Lead__r.ConvertedAccountId FROM LineWorks__c "
        "WHERE Lead__r.IsConverted = true"
    )["records"]
    assert via_lead[0]["Lead__r"]["ConvertedContactId"] == converted["contactId"]


def test_person_account_conversion(sf_emulator, sf):
    lead, task, _ = _lead_with_history(sf)
    converted = sf_emulator.convert_lead(lead, personAccount=True)
    account = sf.Account.get(converted["accountId"])
    assert account["IsPersonAccount"] is True
    assert account["PersonContactId"] == converted["contactId"]
    moved = sf.Task.get(task)
    assert moved["WhoId"] == account["PersonContactId"] and moved["WhatId"] == account["Id"]


def test_converted_lead_rejects_writes_and_new_activities(sf_emulator, sf):
    lead, _, _ = _lead_with_history(sf)
    sf_emulator.convert_lead(lead)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.update(lead, {"Company": "other"})
    assert exc.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Task.create({"Subject": "x", "WhoId": lead})
    assert exc.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    with pytest.raises(Exception, match="400"):
        sf_emulator.convert_lead(lead)  # already converted
