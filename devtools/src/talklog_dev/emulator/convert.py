"""Lead conversion as Salesforce does it (the emulator's stand-in for the Convert button)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from talklog_dev.emulator.records import RecordStore, fail


@dataclass(frozen=True)
class Conversion:
    """The records a lead became."""

    lead_id: str
    account_id: str
    contact_id: str
    person_account: bool
    moved_task_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "leadId": self.lead_id,
            "accountId": self.account_id,
            "contactId": self.contact_id,
            "personAccount": self.person_account,
            "movedTaskIds": list(self.moved_task_ids),
        }


def convert_lead(
    store: RecordStore,
    lead_id: str,
    *,
    person_account: bool = False,
    account_id: str | None = None,
    contact_id: str | None = None,
    converted_status: str = "Closed - Converted",
    today: dt.date | None = None,
) -> Conversion:
    """Convert a lead to a business account + contact, or to a person account.

    Activities whose WhoId is the lead move to the new contact, with the account as WhatId;
    custom lookups to the lead keep pointing at it, as in Salesforce.
    """
    lead = store.get("Lead", lead_id)
    if lead is None:
        raise fail(
            "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {lead_id}", "leadId"
        )
    if lead.get("IsConverted"):
        raise fail("CANNOT_UPDATE_CONVERTED_LEAD", "This lead was already converted", "leadId")
    owner = lead.get("OwnerId")
    if person_account:
        account_id, contact_id = _person_account(store, lead, account_id, owner)
    else:
        account_id, contact_id = _business(store, lead, account_id, contact_id, owner)
    store.set_fields(
        "Lead",
        lead["Id"],
        {
            "IsConverted": True,
            "ConvertedAccountId": account_id,
            "ConvertedContactId": contact_id,
            "ConvertedDate": (today or dt.datetime.now(dt.UTC).date()).isoformat(),
            "Status": converted_status,
        },
    )
    moved = _move_activities(store, lead["Id"], account_id, contact_id)
    store.flush()
    return Conversion(lead["Id"], account_id, contact_id, person_account, moved)


def _person_account(
    store: RecordStore, lead: dict, account_id: str | None, owner: str | None
) -> tuple[str, str]:
    if account_id is None:
        values = {"FirstName": lead.get("FirstName"), "LastName": lead.get("LastName")}
        account_id = store.insert("Account", {**values, "OwnerId": owner}, owner)
    account = store.get("Account", account_id)
    if account is None or not account.get("IsPersonAccount"):
        raise fail("FIELD_INTEGRITY_EXCEPTION", "accountId is not a person account", "accountId")
    return account["Id"], account["PersonContactId"]


def _business(
    store: RecordStore,
    lead: dict,
    account_id: str | None,
    contact_id: str | None,
    owner: str | None,
) -> tuple[str, str]:
    if account_id is None:
        account_id = store.insert("Account", {"Name": lead.get("Company"), "OwnerId": owner}, owner)
    account = store.get("Account", account_id)
    if account is None or account.get("IsPersonAccount"):
        raise fail("FIELD_INTEGRITY_EXCEPTION", "accountId is not a business account", "accountId")
    if contact_id is None:
        values = {
            "FirstName": lead.get("FirstName"),
            "LastName": lead.get("LastName"),
            "Email": lead.get("Email"),
            "AccountId": account["Id"],
            "OwnerId": owner,
        }
        contact_id = store.insert("Contact", values, owner)
    contact = store.get("Contact", contact_id)
    if contact is None or contact.get("AccountId") != account["Id"]:
        raise fail(
            "FIELD_INTEGRITY_EXCEPTION", "contactId does not belong to accountId", "contactId"
        )
    return account["Id"], contact["Id"]


def _move_activities(
    store: RecordStore, lead_id: str, account_id: str, contact_id: str
) -> tuple[str, ...]:
    moved = []
    for task in store.scan("Task"):
        if task.get("WhoId") != lead_id:
            continue
        changes = {"WhoId": contact_id}
        if not task.get("WhatId"):
            changes["WhatId"] = account_id
        store.set_fields("Task", task["Id"], changes)
        moved.append(task["Id"])
    return tuple(moved)
