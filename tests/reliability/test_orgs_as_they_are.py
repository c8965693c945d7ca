"""Orgs as they are (issue 16): orgs without Person Accounts, staff whose Salesforce user is
inactive.

Most B2B orgs have Person Accounts off: `Account.IsPersonAccount` and `PersonContactId` do not
exist there and a query naming them fails with INVALID_FIELD. The link sync and the talk-log
runs must work in both kinds of org: every target is placed, a person-account link in an org
without them is reported unresolved with its reason.

A staff member whose Salesforce user is inactive (or not a user of the org) cannot own a
Task (INACTIVE_OWNER_OR_USER): the integration user owns it, the run counts it, and nothing
becomes a dead letter, also when the user is deactivated between the owner check and the load.

Everything runs through the real clients against the emulator (a real HTTPS server).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from talklog import deadletters
from talklog.loading import BulkLoader
from talklog.salesforce.calls import ApiCallCounter
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import Link, TargetType
from talklog_dev.synth import generate
from tests.integration.talklog_world import (
    World,
    delivered_lines,
    direct_clients,
    expected,
)
from tests.reliability.harness import CONFIG, quarters

pytestmark = pytest.mark.reliability
PER_KIND = 12


# -- an org and a store linked to it -----------------------------------------------------------


def _targets(emulator: Any, person_accounts: bool) -> dict[TargetType, list[str]]:
    """Records of every link target kind. External contacts: plain, with a lead link, with an
    account link (business account + contact). Person-account links point at person accounts,
    or, in an org without them, at business accounts (a link that cannot be placed)."""
    accounts = emulator.create_records("Account", [{"Name": f"B{n}"} for n in range(PER_KIND)])
    contacts = emulator.create_records(
        "Contact", [{"LastName": f"C{n}", "AccountId": accounts[n]} for n in range(PER_KIND)]
    )
    leads = emulator.create_records(
        "Lead", [{"LastName": f"L{n}", "Company": f"Co{n}"} for n in range(2 * PER_KIND)]
    )
    external = []
    for n in range(PER_KIND):
        link = {1: {"Lead__c": leads[PER_KIND + n]}, 2: {"Account__c": accounts[n]}}.get(n % 3)
        if n % 3 == 2:
            link = {**(link or {}), "Contact__c": contacts[n]}
        external.append({"Name": f"EC{n}", **(link or {})})
    persons = (
        [{"LastName": f"P{n}"} for n in range(PER_KIND)]
        if person_accounts
        else [{"Name": f"NP{n}"} for n in range(PER_KIND)]
    )
    return {
        TargetType.EXTERNAL_CONTACT: emulator.create_records("ExternalContact__c", external),
        TargetType.LEAD: leads[:PER_KIND],
        TargetType.CONTACT: contacts,
        TargetType.PERSON_ACCOUNT: emulator.create_records("Account", persons),
    }


def _homes(emulator: Any, ids: dict[TargetType, list[str]]) -> dict[str, str]:
    """Where each linked record's customer lives now (its transcripts' record)."""
    leads = {r["Id"]: r for r in emulator.records("Lead")}
    accounts = {r["Id"]: r for r in emulator.records("Account")}
    homes = {record_id: record_id for kind_ids in ids.values() for record_id in kind_ids}
    for lead_id in ids[TargetType.LEAD]:
        if str(leads[lead_id]["IsConverted"]).lower() == "true":
            homes[lead_id] = leads[lead_id]["ConvertedContactId"]
    for record in emulator.records("ExternalContact__c"):
        if record.get("Contact__c"):
            homes[record["Id"]] = record["Contact__c"]
        elif record.get("Lead__c"):
            homes[record["Id"]] = record["Lead__c"]
    for account_id in ids[TargetType.PERSON_ACCOUNT]:
        homes[account_id] = accounts[account_id].get("PersonContactId") or account_id
    return homes


def org_world(
    emulator: Any,
    url: str,
    *,
    person_accounts: bool = True,
    staff_users: Callable[[list[str]], Callable[[int], str | None]] | None = None,
) -> World:
    """A fresh org (with or without Person Accounts) and a store linked to it; not synced.

    `staff_users` gets the ids of two Salesforce users made here (the first active, the
    second inactive) and returns the generator's staff -> Salesforce user mapping."""
    emulator.reset()
    emulator.set_faults(person_accounts=person_accounts)
    upgrade(url)
    ids = _targets(emulator, person_accounts)
    emulator.convert_lead(ids[TargetType.LEAD][0])
    emulator.convert_lead(ids[TargetType.LEAD][1], personAccount=person_accounts)
    users = emulator.create_records(
        "User",
        [
            {"Username": "active@talklog.test", "LastName": "Active"},
            {"Username": "inactive@talklog.test", "LastName": "Gone", "IsActive": False},
        ],
    )
    default_user = emulator.admin("GET", "info")["default_user_id"]
    config = CONFIG.replace(
        target_ids=lambda kind, n: ids[kind][n],
        salesforce_user_ids=(
            staff_users(users) if staff_users else (lambda n: default_user if n % 4 else None)
        ),
    )
    report = generate(url, config)
    clients = direct_clients(emulator)
    sessions = make_session_factory(url)
    loader = BulkLoader(clients.bulk, sessions, sleep=lambda _: None)
    counter = ApiCallCounter(clients.http_session)
    homes = _homes(emulator, ids)
    return World(emulator, url, config, report, sessions, clients, loader, counter, homes)


def person_account_links(world: World) -> set[str]:
    with world.sessions() as session:
        rows = session.scalars(
            sa.select(Link.target_id).where(Link.target_type == TargetType.PERSON_ACCOUNT)
        )
        return set(rows)


def open_letters(world: World) -> dict[str, int]:
    with world.sessions() as session:
        return deadletters.count_open(session)


def run_day(world: World) -> list[Any]:
    """The day's four 6-hourly talk-log runs."""
    return [world.run(window, f"run {n}") for n, window in enumerate(quarters(world.window()))]


# -- 1. orgs with and without Person Accounts ---------------------------------------------------


@pytest.mark.parametrize("person_accounts", [True, False], ids=["person-accounts", "b2b-org"])
def test_link_sync_places_every_target_in_both_kinds_of_org(sf_emulator, tmp_path, person_accounts):
    world = org_world(sf_emulator, f"sqlite:///{tmp_path}/s.db", person_accounts=person_accounts)
    synced = world.sync_links()
    person_links = person_account_links(world)
    assert person_links, "the store links some customers to person accounts"
    if person_accounts:
        assert synced.unresolved_targets == {}
    else:
        assert synced.unresolved_targets == {"PERSON_ACCOUNTS_DISABLED": len(person_links)}
    assert synced.rejected == 0 and open_letters(world) == {}
    placed = {r["LinkKey__c"] for r in sf_emulator.records("LineWorks__c")}
    with world.sessions() as session:
        links = session.scalars(sa.select(Link)).all()
    wanted = {
        link.link_key for link in links if person_accounts or link.target_id not in person_links
    }
    assert placed == wanted


@pytest.mark.parametrize("person_accounts", [True, False], ids=["person-accounts", "b2b-org"])
def test_talk_log_runs_place_every_target_in_both_kinds_of_org(
    sf_emulator, tmp_path, person_accounts
):
    world = org_world(sf_emulator, f"sqlite:///{tmp_path}/s.db", person_accounts=person_accounts)
    world.sync_links()
    summaries = run_day(world)
    assert sum(s.rejected for s in summaries) == 0 and open_letters(world) == {}
    unresolved = Counter[str]()
    for summary in summaries:
        unresolved.update(summary.unresolved_targets)
    assert (set(unresolved) == {"PERSON_ACCOUNTS_DISABLED"}) is not person_accounts
    lines = expected(world).lines
    if not person_accounts:  # a person-account link there is unresolved: nothing reaches it
        for target in person_account_links(world):
            lines.pop(world.homes[target], None)
    assert delivered_lines(sf_emulator) == lines
    kinds = {
        ("Contact__c" if r.get("Contact__c") else "Lead__c" if r.get("Lead__c") else "other")
        for r in sf_emulator.records("TalkLog__c")
    }
    assert {"Contact__c", "Lead__c", "other"} <= kinds


# -- 2. staff whose Salesforce user is inactive -------------------------------------------------


def _staff_inactive(users: list[str]) -> Callable[[int], str | None]:
    """Staff 1: the active user; 2, 4: the inactive one; 0, 3: none in the store (staff 1
    and 2 talk in every window of the generated day)."""
    return lambda n: [None, users[0], users[1], None, users[1]][n % 5]


def _staff_not_in_org(users: list[str]) -> Callable[[int], str | None]:
    """Staff 2, 4: an id that is no user of this org (deleted, or another org's)."""
    return lambda n: [None, users[0], "005000000000999AAA", None, "005000000000999"][n % 5]


def _staff_active(users: list[str]) -> Callable[[int], str | None]:
    return lambda n: [None, users[0], users[0], None, users[0]][n % 5]


def _deactivate_when_the_load_starts(world: World, user_id: str) -> None:
    """The user is deactivated once the run's first Bulk job is created: after the run
    checked its staff users, before Salesforce processes the rows."""
    done: list[bool] = []

    def deactivate(response: Any, *args: Any, **kwargs: Any) -> None:
        url = response.url.rstrip("/")
        creates_job = response.request.method == "POST" and url.endswith("/jobs/ingest")
        if creates_job and not done:
            done.append(True)
            world.emulator.salesforce().User.update(user_id, {"IsActive": False})

    world.clients.http_session.hooks["response"].append(deactivate)


def _owners(emulator: Any, kind: str) -> Counter[str]:
    """Owners of the LINE WORKS Tasks of `kind` (TalkLog or Exchange)."""
    return Counter(
        t["OwnerId"] for t in emulator.records("Task") if t.get("LineWorksKind__c") == kind
    )


STAFF_CASES = {
    "inactive user": (_staff_inactive, False),
    "user not in the org": (_staff_not_in_org, False),
    "deactivated between owner check and load": (_staff_active, True),
}


def _job_tasks(world: World, job: str, arm: Callable[[], None]) -> tuple[list[Any], str]:
    """Run `job` (talk-log runs after a link sync) with `arm` called right before it."""
    if job == "link sync":
        arm()
        return [world.sync_links()], "Exchange"
    world.sync_links()
    arm()
    return run_day(world), "TalkLog"


@pytest.mark.parametrize("job", ["talk-log runs", "link sync"])
@pytest.mark.parametrize(
    ("staff_users", "deactivate"), STAFF_CASES.values(), ids=STAFF_CASES.keys()
)
def test_tasks_of_staff_without_an_active_user_are_owned_by_the_integration_user(
    sf_emulator, tmp_path, job, staff_users, deactivate
):
    world = org_world(sf_emulator, f"sqlite:///{tmp_path}/s.db", staff_users=staff_users)
    users = [u["Id"] for u in sf_emulator.records("User") if u["Username"].endswith(".test")]
    integration = sf_emulator.admin("GET", "info")["default_user_id"]

    def arm() -> None:
        if deactivate:
            _deactivate_when_the_load_starts(world, users[0])

    summaries, kind = _job_tasks(world, job, arm)
    assert sum(s.rejected for s in summaries) == 0, [s.as_dict() for s in summaries]
    assert open_letters(world) == {}
    owners = _owners(sf_emulator, kind)
    assert owners and set(owners) <= {users[0], integration}
    assert users[1] not in owners
    fallbacks = Counter[str]()
    for summary in summaries:
        fallbacks.update(summary.tasks_owned_by_integration_user)
    assert sum(fallbacks.values()) == owners[integration] > 0
    if deactivate:
        assert fallbacks["refused_as_inactive"] > 0  # resent in the load, without OwnerId
    else:
        assert fallbacks["not_an_active_user"] > 0 and owners[users[0]] > 0
        staff = {
            reason: ids for s in summaries for reason, ids in s.staff_without_active_user.items()
        }
        assert staff.get("not_an_active_user")
