"""Task owners by email or Federation ID (TALKLOG_OWNER_MATCH) through the real clients
against the Salesforce emulator: the link sync's exchange Tasks and a talk-log run's Tasks
are owned by the one active user with the staff member's login email (any case); staff
without an email, with only an inactive user or with two active users get the integration
user, counted per reason, and nothing is rejected."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa

from talklog.owners import MATCH_ENV
from talklog.store.models import LineWorksUser
from tests.integration.talklog_world import build_world
from tests.reliability.harness import CONFIG

FIELDS = {"email": "Email", "federation_id": "FederationIdentifier"}


def staff_in_order(world) -> list[str]:
    """The generator's staff ids, in its order (staff n talks in most windows for n = 1, 2)."""
    with world.sessions() as session:
        return list(session.scalars(sa.select(LineWorksUser.id).order_by(LineWorksUser.id)))


def owners(emulator, kind: str) -> Counter[str]:
    tasks = emulator.records("Task")
    return Counter(t["OwnerId"] for t in tasks if t.get("LineWorksKind__c") == kind)


@pytest.mark.parametrize("match", ["email", "federation_id"])
def test_tasks_are_owned_by_the_active_user_with_the_staff_members_email(
    sf_emulator, tmp_path, monkeypatch, match
):
    sf_emulator.reset()
    world = build_world(sf_emulator, f"sqlite:///{tmp_path}/s.db", CONFIG, sync=False)
    staff = staff_in_order(world)
    emails = {lw: f"staff{n}@example-sales.co.jp" for n, lw in enumerate(staff)}
    emails[staff[-1]] = None  # the directory never gave this one an email
    with world.sessions.begin() as session:
        for lw_user_id, email in emails.items():
            session.get(LineWorksUser, lw_user_id).email = email
    field = FIELDS[match]
    users = sf_emulator.create_records(
        "User",
        [
            {"Username": "u0@t.test", "LastName": "A", field: emails[staff[0]].upper()},
            {"Username": "u1@t.test", "LastName": "B", field: emails[staff[1]], "IsActive": False},
            {"Username": "u2a@t.test", "LastName": "C", field: emails[staff[2]]},
            {"Username": "u2b@t.test", "LastName": "D", field: emails[staff[2]]},
        ],
    )  # staff 3: no user at all
    integration = sf_emulator.admin("GET", "info")["default_user_id"]
    monkeypatch.setenv(MATCH_ENV, match)

    synced = world.sync_links()
    summary = world.run(world.window())

    assert synced.rejected == 0 and summary.rejected == 0
    expected = {
        staff[1]: "not_an_active_user",  # only an inactive user has the email
        staff[2]: "several_active_users",  # never guessed between two
        staff[3]: "not_an_active_user",  # no user has it
        staff[4]: "no_email",
    }
    reasons: dict[str, str] = {}
    for kind, job in (("Exchange", synced), ("TalkLog", summary)):
        owned = owners(sf_emulator, kind)
        assert set(owned) <= {users[0], integration}, owned
        assert owned[users[0]] > 0  # staff 0, whose email differs in case only
        assert sum(job.tasks_owned_by_integration_user.values()) == owned[integration] > 0
        found = {lw: why for why, ids in job.staff_without_active_user.items() for lw in ids}
        assert found == {lw: expected[lw] for lw in found}, found
        reasons.update(found)
    assert set(reasons.values()) == set(expected.values())
