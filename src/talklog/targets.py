"""Where a linked customer lives now in Salesforce.

A LW user links a LINE user to an external contact, a lead, a contact or a person account.
The customer then moves through the funnel (external contact -> lead -> converted contact or
person account, or an account link on the external contact). This module resolves each
linked record to its current place with a few bulk SOQL queries. The talk-log DAGs and the
re-link DAG share it, so both agree on where a customer lives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from talklog.batching import chunked
from talklog.salesforce.failures import call_with_policy
from talklog.salesforce.soql import id_list, is_salesforce_id
from talklog.store.models import TargetType

QueryAll = Callable[[str], Iterable[Mapping[str, Any]]]
"""Runs a SOQL query and yields every record (REST shape: relationships as nested dicts)."""
Describe = Callable[[str], Mapping[str, Any]]
"""Describes an object by name (the REST ``sobjects/{name}/describe`` answer)."""

IN_CLAUSE_SIZE = 300


class Placement(StrEnum):
    """How the customer's record is reached now (spec section 7)."""

    EXTERNAL_CONTACT = "external_contact"  # not yet in the funnel
    LEAD = "lead"  # a lead, directly or through the external contact's lead link
    CONVERTED = "converted"  # a converted lead: its contact and account
    ACCOUNT_LINK = "account_link"  # external contact linked to an account + contact
    PERSON_ACCOUNT = "person_account"  # a person account (directly or linked)
    CONTACT = "contact"  # a contact linked directly


@dataclass(frozen=True)
class CustomerRecord:
    """The current Salesforce home of a linked record, with what each writer needs."""

    linked_id: str
    placement: Placement
    external_contact_id: str | None = None
    lead_id: str | None = None
    account_id: str | None = None
    contact_id: str | None = None

    @property
    def record_id(self) -> str:
        """The one record the customer lives on now: transcripts are per this record."""
        if self.placement is Placement.EXTERNAL_CONTACT:
            return self.external_contact_id or self.linked_id
        if self.placement is Placement.LEAD:
            return self.lead_id or self.linked_id
        return self.contact_id or self.account_id or self.linked_id

    def parent_lookups(self) -> dict[str, str | None]:
        """`ExternalContact__c`, `Lead__c`, `Account__c`, `Contact__c` for LineWorks/TalkLog."""
        return {
            "ExternalContact__c": self.external_contact_id,
            "Lead__c": self.lead_id if self.placement is Placement.LEAD else None,
            "Account__c": self.account_id,
            "Contact__c": self.contact_id,
        }

    def task_parents(self) -> tuple[str | None, str | None]:
        """(WhoId, WhatId) of the customer's Tasks, per the spec's section 7 table."""
        if self.placement is Placement.EXTERNAL_CONTACT:
            return None, self.external_contact_id
        if self.placement is Placement.LEAD:
            return self.lead_id, None  # a Task whose WhoId is a Lead can have no WhatId
        if self.placement is Placement.ACCOUNT_LINK:
            return self.contact_id, self.external_contact_id
        return self.contact_id, self.account_id


@dataclass(frozen=True)
class Unresolved:
    """A linked record that cannot be placed, with the reason an operator reads."""

    linked_id: str
    reason: str


_PERSON_ACCOUNT_FIELDS = ("IsPersonAccount", "PersonContactId")
"""Account fields that exist only in orgs with Person Accounts enabled (most B2B orgs: not)."""
_EXTERNAL_CONTACT_FIELDS = (
    "Id, Lead__c, Account__c, Contact__c, Lead__r.IsConverted,"
    " Lead__r.ConvertedAccountId, Lead__r.ConvertedContactId"
)
_LEAD_SOQL = (
    "SELECT Id, IsConverted, ConvertedAccountId, ConvertedContactId FROM Lead WHERE Id IN {ids}"
)
_CONTACT_SOQL = "SELECT Id, AccountId FROM Contact WHERE Id IN {ids}"
_ACCOUNT_SOQL = "SELECT Id, IsPersonAccount, PersonContactId FROM Account WHERE Id IN {ids}"
PERSON_ACCOUNTS_DISABLED = "PERSON_ACCOUNTS_DISABLED"


def person_accounts_enabled(
    describe: Describe | None, *, sleep: Callable[[float], None] = time.sleep
) -> bool:
    """Whether the org has Person Accounts (`Account.IsPersonAccount` exists): one describe
    call under the failure policy; ask once per run. Without a describe callable they are
    assumed enabled."""
    if describe is None:
        return True
    answer = call_with_policy(lambda: describe("Account"), sleep=sleep)
    fields = answer.get("fields") or ()
    return any(field.get("name") == _PERSON_ACCOUNT_FIELDS[0] for field in fields)


def external_contact_soql(person_accounts: bool) -> str:
    """The external contacts' query, naming person-account fields only where they exist."""
    person = "".join(f", Account__r.{name}" for name in _PERSON_ACCOUNT_FIELDS)
    fields = _EXTERNAL_CONTACT_FIELDS + (person if person_accounts else "")
    return f"SELECT {fields} FROM ExternalContact__c WHERE Id IN {{ids}}"


def resolve_customers(
    query_all: QueryAll,
    linked: Iterable[tuple[TargetType | str, str]],
    *,
    person_accounts: bool = True,
) -> tuple[dict[str, CustomerRecord], list[Unresolved]]:
    """Place every linked record `(target type, id)`; ids are matched on their 15-char prefix.

    `person_accounts` says whether the org has them (`person_accounts_enabled`); without
    them no query names their fields, an account link is a business account link and a
    person-account link is unresolved (PERSON_ACCOUNTS_DISABLED).

    Returns the placed records keyed by the linked id as given, and the ones that could not
    be placed (malformed id, deleted record, person-account link to a business account).
    """
    by_type: dict[TargetType, set[str]] = {kind: set() for kind in TargetType}
    unresolved: list[Unresolved] = []
    for kind, record_id in linked:
        if not is_salesforce_id(record_id):
            unresolved.append(Unresolved(record_id, f"MALFORMED_ID: {record_id!r}"))
        else:
            by_type[TargetType(kind)].add(record_id)
    if not person_accounts:
        unresolved += [_no_person_accounts(i) for i in sorted(by_type[TargetType.PERSON_ACCOUNT])]
        by_type[TargetType.PERSON_ACCOUNT].clear()
    placed: dict[str, CustomerRecord] = {}
    for kind, (soql, place) in _resolvers(person_accounts).items():
        ids = sorted(by_type[kind])
        for chunk in chunked(ids, IN_CLAUSE_SIZE):
            rows = {_id15(row["Id"]): row for row in query_all(soql.format(ids=id_list(chunk)))}
            for record_id in chunk:
                row = rows.get(_id15(record_id))
                outcome = place(record_id, row) if row else _missing(kind, record_id)
                if isinstance(outcome, Unresolved):
                    unresolved.append(outcome)
                else:
                    placed[record_id] = outcome
    return placed, unresolved


def _no_person_accounts(record_id: str) -> Unresolved:
    return Unresolved(
        record_id,
        f"{PERSON_ACCOUNTS_DISABLED}: person-account link to {record_id}, but this org has"
        " Person Accounts disabled (link the customer's contact or external contact instead)",
    )


def _id15(record_id: str) -> str:
    return record_id[:15]


def _missing(kind: TargetType, record_id: str) -> Unresolved:
    return Unresolved(record_id, f"ENTITY_IS_DELETED: {kind.value} {record_id} not found")


def _place_external_contact(record_id: str, row: Mapping[str, Any]) -> CustomerRecord | Unresolved:
    lead = row.get("Lead__r") or {}
    account = row.get("Account__r") or {}
    base = {"linked_id": record_id, "external_contact_id": row["Id"]}
    if row.get("Account__c"):
        if account.get("IsPersonAccount"):
            contact = account.get("PersonContactId")
            return CustomerRecord(
                **base,
                placement=Placement.PERSON_ACCOUNT,
                account_id=row["Account__c"],
                contact_id=contact,
            )
        return CustomerRecord(
            **base,
            placement=Placement.ACCOUNT_LINK,
            account_id=row["Account__c"],
            contact_id=row.get("Contact__c"),
        )
    if row.get("Lead__c") and lead.get("IsConverted"):
        return CustomerRecord(
            **base,
            placement=Placement.CONVERTED,
            lead_id=row["Lead__c"],
            account_id=lead.get("ConvertedAccountId"),
            contact_id=lead.get("ConvertedContactId"),
        )
    if row.get("Lead__c"):
        return CustomerRecord(**base, placement=Placement.LEAD, lead_id=row["Lead__c"])
    return CustomerRecord(**base, placement=Placement.EXTERNAL_CONTACT)


def _place_lead(record_id: str, row: Mapping[str, Any]) -> CustomerRecord:
    if row.get("IsConverted"):
        return CustomerRecord(
            record_id,
            Placement.CONVERTED,
            lead_id=row["Id"],
            account_id=row.get("ConvertedAccountId"),
            contact_id=row.get("ConvertedContactId"),
        )
    return CustomerRecord(record_id, Placement.LEAD, lead_id=row["Id"])


def _place_contact(record_id: str, row: Mapping[str, Any]) -> CustomerRecord:
    return CustomerRecord(
        record_id, Placement.CONTACT, account_id=row.get("AccountId"), contact_id=row["Id"]
    )


def _place_person_account(record_id: str, row: Mapping[str, Any]) -> CustomerRecord | Unresolved:
    if not row.get("IsPersonAccount"):
        return Unresolved(record_id, f"INVALID_TARGET: account {record_id} is not a person account")
    return CustomerRecord(
        record_id,
        Placement.PERSON_ACCOUNT,
        account_id=row["Id"],
        contact_id=row.get("PersonContactId"),
    )


Resolver = tuple[str, Callable[[str, Mapping[str, Any]], CustomerRecord | Unresolved]]


def _resolvers(person_accounts: bool) -> dict[TargetType, Resolver]:
    """Per linked kind: its SOQL (with `{ids}`) and how a row is placed."""
    return {
        TargetType.EXTERNAL_CONTACT: (
            external_contact_soql(person_accounts),
            _place_external_contact,
        ),
        TargetType.LEAD: (_LEAD_SOQL, _place_lead),
        TargetType.CONTACT: (_CONTACT_SOQL, _place_contact),
        TargetType.PERSON_ACCOUNT: (_ACCOUNT_SOQL, _place_person_account),
    }
