"""Replay after the cause was fixed (issue 16): letters are rebuilt from today's store and org.

Each case makes one kind of cause happen, runs the link sync and the day's talk-log windows
through the production clients (dead letters open, `check_dead_letters` red), fixes the cause,
replays, and checks every letter closed, `check_dead_letters` green, and the Salesforce state
and the delivery ledger equal to a first run on the fixed data (a fresh emulator and store).

Causes: the staff member's Salesforce user (store), the link's target record (store), a field
the org lacks (the emulator started on metadata without it, then restarted with it: records
kept), a validation rule of the org (the emulator's `validation_rules` switch: a TalkLog's
transcript, a Task's comments or subject, a link's nickname; the admin then deactivates or
removes the rule).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException

from talklog.replay import ReplaySummary, replay_dead_letters
from talklog.salesforce.metadata import sfdx_root
from talklog.store.models import DeadLetter, LineWorksUser, Link, TalkLogClaim
from talklog.talklogs import TalkLogSettings
from talklog_airflow.dag_factory import check_dead_letters
from talklog_dev.emulator.process import EmulatorHandle, run_emulator
from tests.integration.talklog_world import World, build_world, labels
from tests.reliability.harness import (
    CONFIG,
    State,
    compare,
    hook_clients,
    message_entries,
    quarters,
    run_talklogs,
    state,
)

pytestmark = pytest.mark.reliability
MISSING_USER = "005000000000ZZZ"  # a well-formed User id that no user has
STORE_CONN = "talklog_store"
CUSTOM_VALIDATION = "FIELD_CUSTOM_VALIDATION_EXCEPTION"


# -- the world and its checks ------------------------------------------------------------


@contextlib.contextmanager
def pointed_at(emulator: EmulatorHandle, store_url: str) -> Generator[None]:
    """`salesforce_default` and `talklog_store` point at this emulator and store; the world's
    links are the store's (`TALKLOG_LINK_SOURCE=store`: replay pushes them as they are now)."""
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": store_url}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALKLOG_LINK_SOURCE", "store")
        for name, value in emulator.airflow_conn_env().items():
            patch.setenv(name, value)
        patch.setenv(f"AIRFLOW_CONN_{STORE_CONN.upper()}", json.dumps(store))
        yield


def new_world(emulator: EmulatorHandle, url: str) -> World:
    """A generated store linked to fresh targets; links not synced yet."""
    emulator.reset()
    return build_world(emulator, url, CONFIG, hook_clients, sync=False)


def first_run(world: World) -> int:
    """The link sync and the day's four windows; rows Salesforce rejected."""
    return world.sync_links().rejected + run_talklogs(world, "first run")


def check_is_red() -> bool:
    """`check_dead_letters` as the DAGs run it: True when it fails the run."""
    try:
        check_dead_letters.function({}, store_conn_id=STORE_CONN)
    except AirflowFailException:
        return True
    return False


def replay(world: World) -> ReplaySummary:
    return replay_dead_letters(
        sessions=world.sessions,
        store_url=world.url,
        query_all=world.clients.query_all,
        loader=world.loader,
        settings=TalkLogSettings(),
        run_id="replay",
    )


def delivered_claims(world: World) -> dict[str, str | None]:
    """Delivered TalkLogs (key -> first Task key), ids as labels."""
    names = labels(world.emulator)

    def label(text: str | None) -> str | None:
        for record_id, name in names.items():
            text = text.replace(record_id, name) if text else text
        return text

    with world.sessions() as session:
        rows = session.execute(
            sa.select(TalkLogClaim.talklog_key, TalkLogClaim.task_key).where(
                TalkLogClaim.delivered_at.is_not(None)
            )
        ).all()
    return {label(key): label(task) for key, task in rows}


def letter_errors(world: World, object_name: str) -> set[tuple[str, str, str, str | None]]:
    """(object, code, message, fields) of the object's letters."""
    columns = (DeadLetter.error_code, DeadLetter.error_message, DeadLetter.error_fields)
    with world.sessions() as session:
        rows = session.execute(sa.select(*columns).where(DeadLetter.object_name == object_name))
        return {(object_name, *row) for row in rows}


def letter_states(world: World) -> dict[tuple[str, str], str]:
    with world.sessions() as session:
        rows = session.execute(
            sa.select(DeadLetter.object_name, DeadLetter.record_key, DeadLetter.status)
        )
        return {(obj, key): status for obj, key, status in rows}


@dataclass(frozen=True)
class Baseline:
    salesforce: State
    claims: dict[str, str | None]


@pytest.fixture(scope="module")
def baseline(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """A first run on the fixed data: nothing rejected."""
    url = f"sqlite:///{tmp_path_factory.mktemp('replay-baseline')}/store.db"
    with pointed_at(emulator, url):
        world = new_world(emulator, url)
        assert first_run(world) == 0
        assert not check_is_red()
        return Baseline(state(emulator), delivered_claims(world))


# -- causes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """`break_` makes the cause happen before the first run; `fix` removes it before the
    replay (and may return a new emulator handle when the org was restarted)."""

    name: str
    break_: Callable[[World], Any]
    fix: Callable[[World, Any], EmulatorHandle | None]
    objects: frozenset[str]  # objects that must get letters
    metadata_without: str | None = None  # "Object/Field": the org starts without it
    refusal: tuple[str, str, str, str | None] | None = None
    """(object, code, message, fields) of every letter of that object, when the cause says."""


def _staff_with_links(world: World) -> str:
    with world.sessions() as session:
        return session.scalars(
            sa.select(Link.lw_user_id)
            .join(LineWorksUser, LineWorksUser.id == Link.lw_user_id)
            .where(LineWorksUser.salesforce_user_id.is_not(None))
            .group_by(Link.lw_user_id)
            .order_by(sa.func.count().desc(), Link.lw_user_id)
        ).first()


def _set_user(world: World, staff: str, user_id: str | None) -> None:
    with world.sessions.begin() as session:
        session.get(LineWorksUser, staff).salesforce_user_id = user_id


def wrong_owner(user_id: Callable[[World], str]) -> Cause:
    def break_(world: World) -> tuple[str, str | None]:
        staff = _staff_with_links(world)
        with world.sessions() as session:
            right = session.get(LineWorksUser, staff).salesforce_user_id
        _set_user(world, staff, user_id(world))
        return staff, right

    def fix(world: World, broken: tuple[str, str | None]) -> None:
        _set_user(world, *broken)

    return Cause("owner", break_, fix, frozenset({"Task"}))


def _only_link_of_customer(world: World, nth: int) -> Link:
    """The `nth` link whose customer no other staff member links
    (so that correcting it changes no row that was accepted)."""
    with world.sessions() as session:
        single = (
            sa.select(Link.line_user_id).group_by(Link.line_user_id).having(sa.func.count() == 1)
        )
        links = session.scalars(
            sa.select(Link).where(Link.line_user_id.in_(single)).order_by(Link.link_key)
        ).all()
        return links[nth]


def _retarget(world: World, link_key: str, target: tuple[str, str]) -> None:
    with world.sessions.begin() as session:
        link = session.scalar(sa.select(Link).where(Link.link_key == link_key))
        link.target_type, link.target_id = target


def converted_lead_without_contact(world: World) -> tuple[str, str]:
    """A lead converted, then its contact deleted: it places, but every row is refused."""
    em = world.emulator
    lead = em.create_record("Lead", LastName="Broken", Company="BrokenCo")
    em.salesforce().Contact.delete(em.convert_lead(lead)["contactId"])
    return "lead", lead


def person_account_deleted(world: World) -> tuple[str, str]:
    """A lead converted to a person account, then that account deleted."""
    em = world.emulator
    lead = em.create_record("Lead", LastName="Deleted", Company="DeletedCo")
    em.salesforce().Account.delete(em.convert_lead(lead, personAccount=True)["accountId"])
    return "lead", lead


def wrong_target(make: Callable[[World], tuple[str, str]], nth: int) -> Cause:
    def break_(world: World) -> tuple[str, tuple[str, str]]:
        link = _only_link_of_customer(world, nth)
        _retarget(world, link.link_key, make(world))
        return link.link_key, (link.target_type, link.target_id)

    def fix(world: World, broken: tuple[str, tuple[str, str]]) -> None:
        _retarget(world, *broken)

    return Cause(f"record: {make.__name__}", break_, fix, frozenset({"LineWorks__c", "Task"}))


def missing_field(path: str) -> Cause:
    """The org starts without the field; the fix deploys it (the emulator restarts with it)."""
    return Cause(
        f"missing field {path}",
        lambda world: None,
        lambda world, _: None,  # the restart is done by the test (see `restartable_org`)
        frozenset({path.split("/")[0].replace("Activity", "Task")}),
        metadata_without=path,
    )


def validation_rule(fix: str, objects: set[str], **spec: Any) -> Cause:
    """An admin's validation rule refuses some rows; the fix deactivates or removes it."""
    rule = {"name": "Admin_Rule", **spec}

    def break_(world: World) -> None:
        world.emulator.set_validation_rules(rule)

    def deactivate(world: World, _: None) -> None:
        world.emulator.set_validation_rules({**rule, "active": False})

    def remove(world: World, _: None) -> None:
        world.emulator.set_validation_rules()

    fixes = {"deactivated": deactivate, "removed": remove}
    name = f"validation rule {spec['object']}.{spec['field']} {spec['condition']} ({fix})"
    refusal = (spec["object"], CUSTOM_VALIDATION, spec["message"], spec.get("error_field"))
    return Cause(name, break_, fixes[fix], frozenset(objects), refusal=refusal)


WRONG_OWNERS = {
    "no such user": lambda world: MISSING_USER,
    "an account id": lambda world: world.emulator.records("Account")[0]["Id"],  # not a user
}
CAUSES = (
    wrong_target(converted_lead_without_contact, 0),
    wrong_target(person_account_deleted, 1),
    missing_field("TalkLog__c/MessageCount__c"),
    missing_field("Activity/LineWorksRoomId__c"),
    missing_field("LineWorks__c/AppLink__c"),
    validation_rule(
        "deactivated", {"TalkLog__c"}, object="TalkLog__c", field="Transcript__c",
        condition="longer_than", value=100_000, error_field="Transcript__c",
        message="Transcripts over 100,000 characters must be split",
    ),
    validation_rule(
        "removed", {"Task"}, object="Task", field="Description", condition="longer_than",
        value=20_000, error_field="Description", message="Comments stay under 20,000 characters",
    ),
    validation_rule(
        "removed", {"Task"}, object="Task", field="Subject", condition="contains",
        value="交換", message="No Tasks for contact exchanges",  # top of page: no field
    ),
    validation_rule(
        "deactivated", {"LineWorks__c", "TalkLog__c"}, object="LineWorks__c",
        field="Nickname__c", condition="contains", value="（", error_field="Nickname__c",
        message="Notes go in the description, not in the nickname",
    ),
)  # fmt: skip


# -- an org without a field, then with it ----------------------------------------------


def metadata_without(root: Path, path: str) -> Path:
    """A copy of the shipped SFDX project without one field."""
    copy = root / "sfdx"
    shutil.copytree(sfdx_root(), copy)
    obj, field = path.split("/")
    found = list(copy.glob(f"**/objects/{obj}/fields/{field}.field-meta.xml"))
    assert len(found) == 1, found
    found[0].unlink()
    return copy


# -- the test ----------------------------------------------------------------------------


@pytest.mark.parametrize("cause", CAUSES, ids=lambda cause: cause.name)
def test_replay_after_the_fix_equals_a_first_run(
    cause: Cause, emulator: EmulatorHandle, baseline: Baseline, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    with contextlib.ExitStack() as stack:
        org = emulator
        if cause.metadata_without:
            workdir = tmp_path / "org"
            workdir.mkdir()
            state_file = str(workdir / "org.db")
            env = {"TALKLOG_SFDX_ROOT": str(metadata_without(workdir, cause.metadata_without))}
            org = stack.enter_context(run_emulator(workdir / "a", "--state", state_file, env=env))
        stack.enter_context(pointed_at(org, url))
        world = new_world(org, url)
        broken = cause.break_(world)

        rejected = first_run(world)
        assert rejected > 0
        letters = letter_states(world)
        assert cause.objects <= {obj for obj, _ in letters}, letters
        if cause.refusal:
            assert letter_errors(world, cause.refusal[0]) == {cause.refusal}
        assert check_is_red()

        cause.fix(world, broken)
        if cause.metadata_without:
            port = org.instance_url.rsplit(":", 1)[1]
            stack.close()  # the field is deployed: the org comes back with it, records kept
            org = stack.enter_context(
                run_emulator(workdir / "b", "--state", state_file, "--port", port)
            )
            stack.enter_context(pointed_at(org, url))
            world = _rewired(world, org)
        summary = replay(world)

        assert summary.rejected == 0, summary.as_dict()
        after = letter_states(world)
        assert all(after[key] == "resolved" for key in letters), summary.as_dict()
        assert not check_is_red()
        final = with_nulls(state(org), baseline.salesforce)
        assert compare(final, baseline.salesforce).none, compare(final, baseline.salesforce)
        assert delivered_claims(world) == baseline.claims
        assert message_entries(world) == (0, 0)


def with_nulls(final: State, baseline: State) -> State:
    """`final` with the fields its records lack read as null, as Salesforce reads a field
    deployed after the record was written."""
    for obj, rows in final.items():
        fields = {name for records in baseline.get(obj, {}).values() for name in records[0]}
        for records in rows.values():
            for record in records:
                record.update({name: None for name in fields - record.keys()})
    return final


def _rewired(world: World, org: EmulatorHandle) -> World:
    """The world's runs on a restarted org (new sessions; same store)."""
    from talklog.loading import BulkLoader
    from talklog.salesforce.calls import ApiCallCounter

    clients = hook_clients()
    loader = BulkLoader(clients.bulk, world.sessions, sleep=lambda _: None)
    counter = ApiCallCounter(clients.http_session)
    return World(org, world.url, world.config, world.report, world.sessions, clients, loader,
                 counter, world.homes)  # fmt: skip


@pytest.mark.parametrize("owner", WRONG_OWNERS.values(), ids=WRONG_OWNERS.keys())
def test_a_wrong_owner_leaves_no_letter_and_a_rerun_after_the_fix_equals_a_first_run(
    owner: Callable[[World], str], emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """An owner cause never becomes a dead letter that cannot pass: the staff member's
    Tasks go to the integration user (counted), the check stays green, and once the store
    holds the right user, a re-run of the windows and the links gives the first run's state."""
    with pointed_at(emulator, f"sqlite:///{tmp_path}/fixed.db"):
        world, _, _ = world_with_a_rep(emulator, f"sqlite:///{tmp_path}/fixed.db")
        assert first_run(world) == 0
        expected, expected_claims = state(emulator), delivered_claims(world)
    url = f"sqlite:///{tmp_path}/store.db"
    with pointed_at(emulator, url):
        world, staff, rep = world_with_a_rep(emulator, url)
        _set_user(world, staff, owner(world))
        sync = world.sync_links()
        runs = [world.run(window, "first run") for window in quarters(world.window())]
        assert sync.rejected == 0 and all(run.rejected == 0 for run in runs)
        assert not check_is_red()
        assert sum(sum(run.tasks_owned_by_integration_user.values()) for run in runs) > 0
        assert sum(sync.tasks_owned_by_integration_user.values()) > 0
        assert not [t for t in emulator.records("Task") if t["OwnerId"] == rep]

        _set_user(world, staff, rep)
        with world.sessions() as session:
            link_keys = list(session.scalars(sa.select(Link.link_key)))
        assert sync_links_now(world, link_keys).rejected == 0
        assert run_talklogs(world, "re-run after the fix") == 0
        final = state(emulator)
        assert [t for t in emulator.records("Task") if t["OwnerId"] == rep]
        assert compare(final, expected).none, compare(final, expected)
        assert delivered_claims(world) == expected_claims


def world_with_a_rep(emulator: EmulatorHandle, url: str) -> tuple[World, str, str]:
    """A new world whose busiest staff member's Salesforce user is a rep of their own."""
    world = new_world(emulator, url)
    rep = emulator.create_record(
        "User", Username="rep@talklog.emulator", LastName="Rep", IsActive=True
    )
    staff = _staff_with_links(world)
    _set_user(world, staff, rep)
    return world, staff, rep


def sync_links_now(world: World, link_keys: list[str]) -> Any:
    """The link sync pushing these links as they are now (what replay does for link letters)."""
    from talklog.links import sync_links

    clients = world.clients
    return sync_links(
        sessions=world.sessions,
        query_all=clients.query_all,
        loader=world.loader,
        link_keys=link_keys,
        describe=clients.describe,
    )
