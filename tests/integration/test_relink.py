"""Re-links, one case per row of the spec's section 7 table, against the running emulator."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from talklog.links import sync_links
from talklog.loading import BulkLoader
from talklog.pipeline import write_talk_logs
from talklog.relink import relink
from talklog.salesforce.calls import ApiCallCounter
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import Link, TargetType
from talklog.talklogs import TalkLogSettings
from talklog.windows import TalkWindow
from talklog_dev.synth.examples import Target, one_to_one_linked
from tests.integration.talklog_world import direct_clients

DAY = dt.date(2026, 1, 9)


@dataclass
class Customer:
    """One linked customer, its TalkLog and Tasks already written on the linked record."""

    sf: object
    store_url: str
    sessions: object
    loader: BulkLoader
    clients: object
    counter: ApiCallCounter
    window: TalkWindow
    external_contact: str | None = None
    lead: str | None = None

    def relink(self):
        return relink(
            sessions=self.sessions,
            query_all=self.clients.query_all,
            bulk_query=self.clients.bulk.query,
            loader=self.loader,
        )

    def write_talk_logs(self):
        return write_talk_logs(
            sessions=self.sessions,
            store_url=self.store_url,
            query_all=self.clients.query_all,
            loader=self.loader,
            window=self.window,
            settings=TalkLogSettings(),
        )

    def parents(self) -> dict[str, tuple]:
        """Lookups of LineWorks__c and TalkLog__c, and (WhoId, WhatId) of every LINE WORKS Task."""
        lookups = ("ExternalContact__c", "Lead__c", "Account__c", "Contact__c")
        result = {}
        for sobject in ("LineWorks__c", "TalkLog__c"):
            rows = self.sf.records(sobject)
            result[sobject] = {tuple(row.get(name) for name in lookups) for row in rows}
        tasks = [t for t in self.sf.records("Task") if t.get("LineWorksKind__c")]
        result["Task"] = {
            (t.get("LineWorksKind__c"), t.get("WhoId"), t.get("WhatId")) for t in tasks
        }
        return result


def linked_customer(sf_emulator, sqlite_url, target: Target, **ids) -> Customer:
    upgrade(sqlite_url)
    example = one_to_one_linked(sqlite_url, DAY, {"yamada": target})
    clients = direct_clients(sf_emulator)
    counter = ApiCallCounter(clients.http_session)
    sessions = make_session_factory(sqlite_url)
    loader = BulkLoader(clients.bulk, sessions, sleep=lambda _: None)
    customer = Customer(
        sf_emulator, sqlite_url, sessions, loader, clients, counter,
        TalkWindow(example.window_start, example.window_end), **ids,
    )  # fmt: skip
    sync_links(sessions=sessions, query_all=clients.query_all, loader=loader)
    assert customer.write_talk_logs().rejected == 0
    return customer


@pytest.fixture
def external_contact(sf_emulator, sqlite_url) -> Customer:
    ec = sf_emulator.create_record("ExternalContact__c", Name="山田 太郎")
    customer = linked_customer(
        sf_emulator, sqlite_url, Target(TargetType.EXTERNAL_CONTACT, ec), external_contact=ec
    )
    assert customer.parents() == {
        "LineWorks__c": {(ec, None, None, None)},
        "TalkLog__c": {(ec, None, None, None)},
        "Task": {("Exchange", None, ec), ("TalkLog", None, ec)},
    }
    return customer


def update(sf_emulator, sobject: str, record_id: str, **values) -> None:
    getattr(sf_emulator.salesforce(), sobject).update(record_id, values)


def give_lead_link(customer: Customer) -> str:
    lead = customer.sf.create_record("Lead", LastName="山田", Company="山田商店")
    update(customer.sf, "ExternalContact__c", customer.external_contact, Lead__c=lead)
    return lead


def converted(customer: Customer, lead: str, person: bool) -> tuple[str, str]:
    result = customer.sf.convert_lead(lead, personAccount=person)
    return result["accountId"], result["contactId"]


def test_external_contact_gets_a_lead_link(external_contact):
    ec = external_contact.external_contact
    lead = give_lead_link(external_contact)
    summary = external_contact.relink()
    assert summary.moved == {"LineWorks__c": 1, "TalkLog__c": 1, "Task": 2}
    assert external_contact.parents() == {
        "LineWorks__c": {(ec, lead, None, None)},
        "TalkLog__c": {(ec, lead, None, None)},
        "Task": {("Exchange", lead, None), ("TalkLog", lead, None)},
    }


@pytest.mark.parametrize("person", [False, True], ids=["business account", "person account"])
def test_that_lead_is_converted(external_contact, person):
    ec = external_contact.external_contact
    lead = give_lead_link(external_contact)
    external_contact.relink()
    account, contact = converted(external_contact, lead, person)
    external_contact.relink()
    assert external_contact.parents() == {
        "LineWorks__c": {(ec, None, account, contact)},
        "TalkLog__c": {(ec, None, account, contact)},
        "Task": {("Exchange", contact, account), ("TalkLog", contact, account)},
    }


def test_external_contact_gets_an_account_link(external_contact):
    ec = external_contact.external_contact
    account = external_contact.sf.create_record("Account", Name="山田商事")
    contact = external_contact.sf.create_record("Contact", LastName="山田", AccountId=account)
    update(external_contact.sf, "ExternalContact__c", ec, Account__c=account, Contact__c=contact)
    external_contact.relink()
    assert external_contact.parents() == {
        "LineWorks__c": {(ec, None, account, contact)},
        "TalkLog__c": {(ec, None, account, contact)},
        "Task": {("Exchange", contact, ec), ("TalkLog", contact, ec)},
    }


def test_external_contact_gets_a_person_account_link(external_contact):
    ec = external_contact.external_contact
    person = external_contact.sf.create_record("Account", LastName="山田 太郎")
    person_contact = external_contact.sf.records("Account")[0]["PersonContactId"]
    update(external_contact.sf, "ExternalContact__c", ec, Account__c=person)
    external_contact.relink()
    assert external_contact.parents() == {
        "LineWorks__c": {(ec, None, person, person_contact)},
        "TalkLog__c": {(ec, None, person, person_contact)},
        "Task": {("Exchange", person_contact, person), ("TalkLog", person_contact, person)},
    }


def test_record_linked_directly_to_a_lead_that_is_converted(sf_emulator, sqlite_url):
    lead = sf_emulator.create_record("Lead", LastName="山田", Company="山田商店")
    customer = linked_customer(sf_emulator, sqlite_url, Target(TargetType.LEAD, lead), lead=lead)
    assert customer.parents()["Task"] == {("Exchange", lead, None), ("TalkLog", lead, None)}
    account, contact = converted(customer, lead, person=False)
    customer.relink()
    assert customer.parents() == {
        "LineWorks__c": {(None, None, account, contact)},
        "TalkLog__c": {(None, None, account, contact)},
        "Task": {("Exchange", contact, account), ("TalkLog", contact, account)},
    }


def test_a_second_run_moves_nothing_and_only_reads(external_contact):
    lead = give_lead_link(external_contact)
    external_contact.relink()
    converted(external_contact, lead, person=True)
    first = external_contact.relink()
    assert sum(first.moved.values()) > 0
    before = dict(external_contact.counter.by_kind)
    records = {o: external_contact.sf.records(o) for o in ("LineWorks__c", "TalkLog__c", "Task")}
    second = external_contact.relink()
    assert sum(second.moved.values()) == 0
    writes = {
        kind: count - before.get(kind, 0)
        for kind, count in external_contact.counter.by_kind.items()
        if not kind.startswith("GET") and count != before.get(kind, 0)
    }
    assert writes == {"POST jobs": 3}  # the three Bulk *query* jobs; no ingest job at all
    assert {o: external_contact.sf.records(o) for o in records} == records


def test_a_new_transcript_after_conversion_lands_on_the_converted_record(external_contact):
    lead = give_lead_link(external_contact)
    account, contact = converted(external_contact, lead, person=False)
    tasks_before = len(external_contact.sf.records("Task"))
    external_contact.write_talk_logs()  # re-run of the window: the same TalkLog, now moved
    assert external_contact.parents()["TalkLog__c"] == {
        (external_contact.external_contact, None, account, contact)
    }
    assert len(external_contact.sf.records("Task")) == tasks_before


def _relink_calls(customer: Customer) -> int:
    give_lead_link(customer)
    before = customer.counter.total
    customer.relink()
    return customer.counter.total - before


def test_api_calls_do_not_grow_with_the_number_of_talklogs(external_contact, sf_emulator):
    calls_for_one = _relink_calls(external_contact)
    (linkworks,) = sf_emulator.records("LineWorks__c")
    ec = sf_emulator.create_record("ExternalContact__c", Name="佐藤 花子")
    sf_emulator.salesforce().LineWorks__c.update(linkworks["Id"], {"ExternalContact__c": ec})
    parents = {"LineWorks__c": linkworks["Id"], "ExternalContact__c": ec}
    sf_emulator.create_records(
        "TalkLog__c",
        [
            {"Name": f"LINE WORKS {n}", "TalkLogKey__c": f"bulk-{n}|1", **parents}
            for n in range(2000)
        ],
    )
    external_contact.external_contact = ec
    with external_contact.sessions.begin() as session:
        session.query(Link).update({"target_id": ec})
    calls_for_2001 = _relink_calls(external_contact)
    assert len([t for t in sf_emulator.records("TalkLog__c") if t["Lead__c"]]) == 2_001
    assert calls_for_2001 == calls_for_one
