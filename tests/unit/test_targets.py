"""Where a linked customer lives now: one case per row of the spec's section 7 table."""

from __future__ import annotations

import pytest

from talklog.salesforce.soql import id_list, quote
from talklog.targets import (
    Placement,
    external_contact_soql,
    person_accounts_enabled,
    resolve_customers,
)

EC = "a00000000000001AAA"
LEAD = "00Q000000000001AAA"
ACCOUNT = "001000000000001AAA"
CONTACT = "003000000000001AAA"
PERSON = "001000000000002AAA"
PERSON_CONTACT = "003000000000002AAA"


def answer(rows_by_object):
    """A query function over fixed rows, keyed by the FROM object (plain data, no server)."""

    def query_all(soql):
        sobject = soql.split(" FROM ")[1].split()[0]
        return rows_by_object.get(sobject, [])

    return query_all


def external_contact(**fields):
    return {"ExternalContact__c": [{"Id": EC, **fields}]}


# (case, linked kind, linked id, Salesforce rows, placement, lookups, (WhoId, WhatId))
SECTION_7 = [
    (
        "external contact, no link yet",
        "external_contact",
        EC,
        external_contact(),
        Placement.EXTERNAL_CONTACT,
        {"ExternalContact__c": EC, "Lead__c": None, "Account__c": None, "Contact__c": None},
        (None, EC),
    ),
    (
        "external contact got a lead link",
        "external_contact",
        EC,
        external_contact(Lead__c=LEAD, Lead__r={"IsConverted": False}),
        Placement.LEAD,
        {"ExternalContact__c": EC, "Lead__c": LEAD, "Account__c": None, "Contact__c": None},
        (LEAD, None),
    ),
    (
        "that lead was converted to a business account",
        "external_contact",
        EC,
        external_contact(
            Lead__c=LEAD,
            Lead__r={
                "IsConverted": True,
                "ConvertedAccountId": ACCOUNT,
                "ConvertedContactId": CONTACT,
            },
        ),
        Placement.CONVERTED,
        {"ExternalContact__c": EC, "Lead__c": None, "Account__c": ACCOUNT, "Contact__c": CONTACT},
        (CONTACT, ACCOUNT),
    ),
    (
        "that lead was converted to a person account",
        "external_contact",
        EC,
        external_contact(
            Lead__c=LEAD,
            Lead__r={
                "IsConverted": True,
                "ConvertedAccountId": PERSON,
                "ConvertedContactId": PERSON_CONTACT,
            },
        ),
        Placement.CONVERTED,
        {
            "ExternalContact__c": EC,
            "Lead__c": None,
            "Account__c": PERSON,
            "Contact__c": PERSON_CONTACT,
        },
        (PERSON_CONTACT, PERSON),
    ),
    (
        "external contact got an account link",
        "external_contact",
        EC,
        external_contact(
            Account__c=ACCOUNT, Contact__c=CONTACT, Account__r={"IsPersonAccount": False}
        ),
        Placement.ACCOUNT_LINK,
        {"ExternalContact__c": EC, "Lead__c": None, "Account__c": ACCOUNT, "Contact__c": CONTACT},
        (CONTACT, EC),
    ),
    (
        "external contact got a person-account link",
        "external_contact",
        EC,
        external_contact(
            Account__c=PERSON,
            Account__r={"IsPersonAccount": True, "PersonContactId": PERSON_CONTACT},
        ),
        Placement.PERSON_ACCOUNT,
        {
            "ExternalContact__c": EC,
            "Lead__c": None,
            "Account__c": PERSON,
            "Contact__c": PERSON_CONTACT,
        },
        (PERSON_CONTACT, PERSON),
    ),
    (
        "record linked directly to a lead",
        "lead",
        LEAD,
        {"Lead": [{"Id": LEAD, "IsConverted": False}]},
        Placement.LEAD,
        {"ExternalContact__c": None, "Lead__c": LEAD, "Account__c": None, "Contact__c": None},
        (LEAD, None),
    ),
    (
        "record linked directly to a lead, lead converted",
        "lead",
        LEAD,
        {
            "Lead": [
                {
                    "Id": LEAD,
                    "IsConverted": True,
                    "ConvertedAccountId": ACCOUNT,
                    "ConvertedContactId": CONTACT,
                }
            ]
        },
        Placement.CONVERTED,
        {"ExternalContact__c": None, "Lead__c": None, "Account__c": ACCOUNT, "Contact__c": CONTACT},
        (CONTACT, ACCOUNT),
    ),
    (
        "record linked directly to a contact",
        "contact",
        CONTACT,
        {"Contact": [{"Id": CONTACT, "AccountId": ACCOUNT}]},
        Placement.CONTACT,
        {"ExternalContact__c": None, "Lead__c": None, "Account__c": ACCOUNT, "Contact__c": CONTACT},
        (CONTACT, ACCOUNT),
    ),
    (
        "record linked directly to a person account",
        "person_account",
        PERSON,
        {"Account": [{"Id": PERSON, "IsPersonAccount": True, "PersonContactId": PERSON_CONTACT}]},
        Placement.PERSON_ACCOUNT,
        {
            "ExternalContact__c": None,
            "Lead__c": None,
            "Account__c": PERSON,
            "Contact__c": PERSON_CONTACT,
        },
        (PERSON_CONTACT, PERSON),
    ),
]


@pytest.mark.parametrize(
    ("kind", "linked_id", "rows", "placement", "lookups", "task_parents"),
    [case[1:] for case in SECTION_7],
    ids=[case[0] for case in SECTION_7],
)
def test_customer_placement(kind, linked_id, rows, placement, lookups, task_parents):
    placed, unresolved = resolve_customers(answer(rows), [(kind, linked_id)])
    assert unresolved == []
    record = placed[linked_id]
    assert record.placement is placement
    assert record.parent_lookups() == lookups
    assert record.task_parents() == task_parents


def test_two_links_to_the_same_record_resolve_to_one_record_id():
    rows = {
        **external_contact(Lead__c=LEAD, Lead__r={"IsConverted": False}),
        "Lead": [{"Id": LEAD, "IsConverted": False}],
    }
    placed, _ = resolve_customers(answer(rows), [("external_contact", EC), ("lead", LEAD)])
    assert placed[EC].record_id == placed[LEAD].record_id == LEAD


def test_fifteen_character_ids_match_their_eighteen_character_records():
    placed, unresolved = resolve_customers(
        answer({"Lead": [{"Id": LEAD, "IsConverted": False}]}), [("lead", LEAD[:15])]
    )
    assert unresolved == [] and placed[LEAD[:15]].lead_id == LEAD


def test_malformed_deleted_and_wrong_kind_records_are_reported_not_dropped():
    rows = {"Account": [{"Id": ACCOUNT, "IsPersonAccount": False}]}
    linked = [("lead", "00Q' OR Id != '"), ("contact", CONTACT), ("person_account", ACCOUNT)]
    placed, unresolved = resolve_customers(answer(rows), linked)
    assert placed == {}
    reasons = {item.linked_id: item.reason.split(":")[0] for item in unresolved}
    assert reasons == {
        "00Q' OR Id != '": "MALFORMED_ID",
        CONTACT: "ENTITY_IS_DELETED",
        ACCOUNT: "INVALID_TARGET",
    }


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("O'Brien", r"'O\'Brien'"),
        ("back\\slash", r"'back\\slash'"),
        ("' OR Name != '", r"'\' OR Name != \''"),
        ("line\nbreak", r"'line\nbreak'"),
        ('say "hi"', r"'say \"hi\"'"),
    ],
)
def test_soql_values_are_escaped(value, literal):
    assert quote(value) == literal


def test_id_lists_refuse_anything_but_ids():
    assert id_list([LEAD]) == f"('{LEAD}')"
    with pytest.raises(ValueError, match="not Salesforce ids"):
        id_list(["00Q000000000001') OR ('1'='1"])


# -- orgs with and without Person Accounts --------------------------------------------------

PERSON_FIELDS = ("IsPersonAccount", "PersonContactId")


def recording(rows_by_object):
    """`answer`, also keeping every SOQL it was asked."""
    asked: list[str] = []
    inner = answer(rows_by_object)

    def query_all(soql):
        asked.append(soql)
        return inner(soql)

    return query_all, asked


def describe_with(*names):
    calls: list[str] = []

    def describe(sobject):
        calls.append(sobject)
        return {"name": sobject, "fields": [{"name": name} for name in ("Id", "Name", *names)]}

    return describe, calls


@pytest.mark.parametrize(
    ("fields", "enabled"),
    [
        (("IsPersonAccount", "PersonContactId", "PersonEmail"), True),
        (("IsPersonAccount",), True),
        ((), False),
        (("PersonalNote__c", "IsPartner"), False),
    ],
)
def test_person_accounts_are_found_with_one_describe_of_account(fields, enabled):
    describe, calls = describe_with(*fields)
    assert person_accounts_enabled(describe) is enabled
    assert calls == ["Account"]


def test_without_a_describe_person_accounts_are_assumed():
    assert person_accounts_enabled(None) is True


LINKED_EVERY_KIND = [
    ("external_contact", EC),
    ("lead", LEAD),
    ("contact", CONTACT),
    ("person_account", PERSON),
]


@pytest.mark.parametrize("person_accounts", [True, False])
def test_soql_names_person_account_fields_only_where_they_exist(person_accounts):
    query_all, asked = recording({})
    resolve_customers(query_all, LINKED_EVERY_KIND, person_accounts=person_accounts)
    named = [soql for soql in asked if any(field in soql for field in PERSON_FIELDS)]
    assert bool(named) is person_accounts
    assert [soql.split(" FROM ")[1].split()[0] for soql in asked] == (
        ["ExternalContact__c", "Lead", "Contact", "Account"]
        if person_accounts
        else ["ExternalContact__c", "Lead", "Contact"]
    )


@pytest.mark.parametrize("person_accounts", [True, False])
def test_the_external_contact_query_shape(person_accounts):
    soql = external_contact_soql(person_accounts)
    head = (
        "SELECT Id, Lead__c, Account__c, Contact__c, Lead__r.IsConverted,"
        " Lead__r.ConvertedAccountId, Lead__r.ConvertedContactId"
    )
    person = ", Account__r.IsPersonAccount, Account__r.PersonContactId" if person_accounts else ""
    assert soql == head + person + " FROM ExternalContact__c WHERE Id IN {ids}"


@pytest.mark.parametrize(
    ("case", "rows", "placement", "lookups"),
    [
        (
            "account link",
            external_contact(Account__c=ACCOUNT, Contact__c=CONTACT),
            Placement.ACCOUNT_LINK,
            (ACCOUNT, CONTACT),
        ),
        (
            "lead link",
            external_contact(Lead__c=LEAD, Lead__r={"IsConverted": False}),
            Placement.LEAD,
            (None, None),
        ),
        (
            "converted lead",
            external_contact(
                Lead__c=LEAD,
                Lead__r={
                    "IsConverted": True,
                    "ConvertedAccountId": ACCOUNT,
                    "ConvertedContactId": CONTACT,
                },
            ),
            Placement.CONVERTED,
            (ACCOUNT, CONTACT),
        ),
        ("no link yet", external_contact(), Placement.EXTERNAL_CONTACT, (None, None)),
    ],
)
def test_without_person_accounts_external_contacts_are_placed_as_before(
    case, rows, placement, lookups
):
    placed, unresolved = resolve_customers(
        answer(rows), [("external_contact", EC)], person_accounts=False
    )
    assert unresolved == []
    record = placed[EC]
    assert record.placement is placement
    assert (record.account_id, record.contact_id) == lookups


@pytest.mark.parametrize("linked_id", [PERSON, ACCOUNT, PERSON[:15]])
def test_a_person_account_link_in_an_org_without_them_is_unresolved_with_its_reason(linked_id):
    rows = {"Lead": [{"Id": LEAD, "IsConverted": False}]}
    linked = [("person_account", linked_id), ("lead", LEAD), ("person_account", "bad id")]
    placed, unresolved = resolve_customers(answer(rows), linked, person_accounts=False)
    assert set(placed) == {LEAD}
    reasons = {item.linked_id: item.reason for item in unresolved}
    assert reasons[linked_id].startswith("PERSON_ACCOUNTS_DISABLED: ")
    assert "Person Accounts disabled" in reasons[linked_id]
    assert reasons["bad id"].startswith("MALFORMED_ID")
