"""Orgs as they are: an org without Person Accounts, and users who are inactive (issue 16).

Through the real clients over HTTPS: simple-salesforce for REST and describe, the project's
BulkClient for Bulk API 2.0.
"""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from talklog_dev.emulator.faults import parse_fault_option

PERSON_FIELDS = {"Account": {"IsPersonAccount", "PersonContactId"}, "Contact": {"IsPersonAccount"}}


def _fields(sf, sobject: str) -> set[str]:
    return {field["name"] for field in getattr(sf, sobject).describe()["fields"]}


@pytest.mark.parametrize("sobject", sorted(PERSON_FIELDS))
def test_an_org_without_person_accounts_describes_no_person_fields(sf_emulator, sf, sobject):
    assert PERSON_FIELDS[sobject] <= _fields(sf, sobject)
    sf_emulator.set_faults(person_accounts=False)
    assert not PERSON_FIELDS[sobject] & _fields(sf, sobject)
    sf_emulator.reset()
    assert PERSON_FIELDS[sobject] <= _fields(sf, sobject)


@pytest.mark.parametrize(
    ("soql", "column", "entity"),
    [
        ("SELECT Id, IsPersonAccount FROM Account", "IsPersonAccount", "Account"),
        ("SELECT Id, PersonContactId FROM Account", "PersonContactId", "Account"),
        ("SELECT Id FROM Account WHERE IsPersonAccount = true", "IsPersonAccount", "Account"),
        ("SELECT Id, IsPersonAccount FROM Contact", "IsPersonAccount", "Contact"),
        (
            "SELECT Id, Account__r.IsPersonAccount FROM ExternalContact__c",
            "Account__r.IsPersonAccount",
            "ExternalContact__c",
        ),
    ],
)
def test_an_org_without_person_accounts_refuses_their_fields_in_soql(
    sf_emulator, sf, bulk, soql, column, entity
):
    sf_emulator.set_faults(person_accounts=False)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query_all(soql)
    (error,) = refused.value.content
    assert error["errorCode"] == "INVALID_FIELD"
    assert error["message"].startswith(f"No such column '{column}' on entity '{entity}'")
    with pytest.raises(Exception, match="INVALID_FIELD"):
        list(bulk.query(soql))


def test_an_org_without_person_accounts_makes_business_accounts_only(sf_emulator, sf):
    sf_emulator.set_faults(person_accounts=False)
    assert sf.Account.create({"Name": "Acme"})["success"]
    with pytest.raises(SalesforceMalformedRequest, match="REQUIRED_FIELD_MISSING"):
        sf.Account.create({"LastName": "Yamada"})
    assert sf_emulator.stats()["records"]["Contact"] == 0


@pytest.mark.parametrize(
    ("text", "value"), [("false", False), ("0", False), ("true", True), ("1", True)]
)
def test_the_switch_is_a_server_option(text, value):
    assert parse_fault_option(f"person_accounts={text}") == {"person_accounts": value}


# -- inactive users ---------------------------------------------------------------------------


@pytest.fixture
def users(sf_emulator) -> tuple[str, str]:
    """(an active user, an inactive user)."""
    active = sf_emulator.create_record("User", Username="a@talklog.test", LastName="A")
    inactive = sf_emulator.create_record(
        "User", Username="i@talklog.test", LastName="I", IsActive=False
    )
    return active, inactive


def _row(sobject: str, n: int, owner: str) -> dict[str, str]:
    rows = {
        "Task": {"LineWorksKey__c": f"k{n}", "Subject": "s", "Status": "Completed"},
        "TalkLog__c": {"TalkLogKey__c": f"k{n}", "Name": "t"},
        "LineWorks__c": {"LinkKey__c": f"k{n}", "Name": "l"},
    }
    return {**rows[sobject], "OwnerId": owner}


KEYS = {"Task": "LineWorksKey__c", "TalkLog__c": "TalkLogKey__c", "LineWorks__c": "LinkKey__c"}


@pytest.mark.parametrize("sobject", sorted(KEYS))
def test_a_bulk_row_owned_by_an_inactive_user_fails_with_inactive_owner(bulk, users, sobject):
    active, inactive = users
    rows = [_row(sobject, 1, active), _row(sobject, 2, inactive), _row(sobject, 3, "")]
    result = bulk.ingest(sobject, "upsert", rows, external_id_field=KEYS[sobject])
    (failed,) = result.failed
    assert failed[KEYS[sobject]] == "k2"
    assert failed["sf__Error"].startswith(
        f"INACTIVE_OWNER_OR_USER:operation performed with inactive user [{inactive}] as owner"
    )
    assert result.succeeded == 2


@pytest.mark.parametrize("sobject", sorted(KEYS))
def test_a_rest_write_owned_by_an_inactive_user_fails_with_inactive_owner(sf, users, sobject):
    active, inactive = users
    row = _row(sobject, 1, inactive)
    key = row.pop(KEYS[sobject])
    with pytest.raises(SalesforceMalformedRequest, match="INACTIVE_OWNER_OR_USER"):
        getattr(sf, sobject).upsert(f"{KEYS[sobject]}/{key}", row)
    created = getattr(sf, sobject).upsert(f"{KEYS[sobject]}/{key}", {**row, "OwnerId": active})
    assert created == 201


def test_a_user_deactivated_later_refuses_new_owners(sf, users):
    active, _ = users
    sf.User.update(active, {"IsActive": False})
    with pytest.raises(SalesforceMalformedRequest, match="INACTIVE_OWNER_OR_USER"):
        sf.Task.create({"Subject": "s", "Status": "Completed", "OwnerId": active})
    soql = f"SELECT Id FROM User WHERE IsActive = true AND Id IN ('{active}')"
    assert sf.query(soql)["totalSize"] == 0
