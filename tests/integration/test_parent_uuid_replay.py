"""A linked parent's `LineWorksUuid__c` refused by the org (issue 18) becomes a dead letter that
the replay fills again from today's state: the link as the store has it now, the record's
field as Salesforce has it now, `link_parents`' rules (an empty field only, never a converted
lead). Through the real clients against the HTTPS emulator: a rep links, an admin's validation
rule refuses the contact id, the admin removes it, something may change meanwhile, the replay
runs; every letter closes, filled or obsolete with its reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from talklog import deadletters
from talklog.replay import replay_dead_letters
from talklog.store.models import DeadLetter
from talklog.talklogs import TalkLogSettings
from tests.integration.test_salesforce_links import Org, org, parent_record

__all__ = ["org"]  # the fixture of test_salesforce_links


@dataclass(frozen=True)
class Case:
    object_name: str  # the parent a rep links
    meanwhile: Callable[[Org, str], None]  # after the fix, before the replay
    uuid: str | None  # the parent's LineWorksUuid__c after the replay (None: suzuki's id)
    obsolete: str | None  # the letter's reason when it is not filled


def nothing(org: Org, parent: str) -> None:
    return None


def a_person_fills_it(org: Org, parent: str) -> None:
    org.emulator.salesforce().Contact.update(parent, {"LineWorksUuid__c": "a-person"})


def the_rep_unlinks(org: Org, parent: str) -> None:
    org.click("suzuki", linked=False)
    assert org.sync().unlinked == 1


def the_lead_is_converted(org: Org, parent: str) -> None:
    org.emulator.convert_lead(parent)


CASES = {
    "fixed": Case("Contact", nothing, None, None),
    "a person filled the field meanwhile": Case(
        "Contact", a_person_fills_it, "a-person", "UUID_SET"
    ),
    "the rep unlinked meanwhile": Case("Contact", the_rep_unlinks, "", "NO_LINK"),
    "the lead was converted meanwhile": Case("Lead", the_lead_is_converted, "", "LEAD_CONVERTED"),
}
VALUES = {"Contact": {"LastName": "山田"}, "Lead": {"LastName": "山田", "Company": "山田商店"}}


@pytest.fixture(autouse=True)
def links_made_in_salesforce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TALKLOG_LINK_SOURCE", raising=False)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_refused_contact_id_is_filled_again_by_the_replay(org: Org, case: Case) -> None:
    rule = {
        "name": "No_Contact_Ids",
        "object": case.object_name,
        "field": "LineWorksUuid__c",
        "condition": "contains",
        "value": "contact",
        "error_field": "LineWorksUuid__c",
        "message": "LINE WORKS ids are entered by the sales desk",
    }
    org.emulator.set_validation_rules(rule)
    parent = org.emulator.create_record(case.object_name, **VALUES[case.object_name])
    org.click("suzuki", linked=True, parent=parent)
    refused = org.sync()
    assert refused.parent_uuids["loads"][case.object_name]["rejected"] == 1, refused
    with org.sessions() as session:
        (letter,) = session.scalars(sa.select(DeadLetter)).all()
        assert (letter.object_name, letter.record_key[:15]) == (case.object_name, parent[:15])
    org.emulator.set_validation_rules()  # the admin's fix
    case.meanwhile(org, parent)

    summary = replay_dead_letters(
        sessions=org.sessions,
        store_url=org.url,
        query_all=org.query_all,
        loader=org.loader,
        settings=TalkLogSettings(),
    )

    assert summary.letters == 1 and summary.rejected == 0, summary.as_dict()
    assert summary.obsolete == ({case.obsolete: 1} if case.obsolete else {}), summary.as_dict()
    uuid = case.uuid if case.uuid is not None else org.contact("suzuki")
    assert (parent_record(org, case.object_name, parent)["LineWorksUuid__c"] or "") == uuid
    with org.sessions() as session:
        assert deadletters.count_open(session) == {}
        message = session.scalars(sa.select(DeadLetter.error_message)).one()
    if case.obsolete:
        assert message.startswith(f"obsolete, not resent ({case.obsolete}: ")


def test_the_replay_dag_offers_every_object_the_replay_rebuilds() -> None:
    from talklog.replay import REPLAY_ORDER
    from talklog_airflow.dag_factory import REPLAY_OBJECTS

    assert REPLAY_OBJECTS == REPLAY_ORDER
