"""Upgrade order (issue 18): an org still on the metadata before `LineWorks__c.LinkedSince__c`
(the code upgraded first). The link sync asks once per run (a describe of `LineWorks__c`) and
then reads no `LinkedSince__c`; `talklog links import` refuses `linked_since` row by row and
applies the other rows. Against an emulator started on the shipped metadata without the field,
through the real clients."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from simple_salesforce.exceptions import SalesforceError

from talklog.links_admin import import_links
from talklog.loading import BulkLoader
from talklog.salesforce_links import NO_LINKED_SINCE, SalesforceLinkSummary, sync_salesforce_links
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import LineContact, LineUser, LineWorksUser, Link
from talklog_dev.emulator.process import EmulatorHandle, run_emulator
from tests.integration.talklog_world import Clients, direct_clients
from tests.reliability.test_replay_after_fix import metadata_without

CONTACTS = 3


@pytest.fixture(scope="module")
def old_org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """An org whose `LineWorks__c` has no `LinkedSince__c` (its own emulator)."""
    root = tmp_path_factory.mktemp("org-without-linked-since")
    sfdx = metadata_without(root, "LineWorks__c/LinkedSince__c")
    with run_emulator(root / "org", env={"TALKLOG_SFDX_ROOT": str(sfdx)}) as handle:
        yield handle


def suzukis_contacts(url: str) -> None:
    upgrade(url)
    sessions = make_session_factory(url)
    with sessions.begin() as session:
        session.add(LineWorksUser(id="lw-suzuki", display_name="鈴木"))
        session.add_all(LineUser(id=f"U{n}", display_name=f"客{n}") for n in range(CONTACTS))
        session.flush()
        session.add_all(
            LineContact(
                contact_id=f"contact-{n}",
                line_user_id=f"U{n}",
                master_lw_user_id="lw-suzuki",
                display_name=f"客{n}様",
            )
            for n in range(CONTACTS)
        )


def sync(url: str, clients: Clients, loader: BulkLoader, *, ask: bool) -> SalesforceLinkSummary:
    return sync_salesforce_links(
        sessions=make_session_factory(url),
        query_all=clients.query_all,
        loader=loader,
        describe=clients.describe if ask else None,
    )


def test_the_link_sync_and_the_import_work_without_the_field(
    old_org: EmulatorHandle, sqlite_url: str, tmp_path: Path
) -> None:
    old_org.reset()
    suzukis_contacts(sqlite_url)
    sessions = make_session_factory(sqlite_url)
    clients = direct_clients(old_org)
    loader = BulkLoader(clients.bulk, sessions, sleep=lambda _: None)
    with pytest.raises(SalesforceError):  # naming the field fails: why the sync asks first
        sync(sqlite_url, clients, loader, ask=False)
    assert sync(sqlite_url, clients, loader, ask=True).mirror["created_or_changed"] == CONTACTS

    targets = [old_org.create_record("Contact", LastName=f"顧客{n}") for n in range(2)]
    path = tmp_path / "links.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["contact_id", "target_id", "linked_since"])
        writer.writerow(["contact-0", targets[0], "2025-06-01T09:30:00+00:00"])
        writer.writerow(["contact-1", targets[1], ""])
    report = import_links(
        path,
        sessions=sessions,
        query_all=clients.query_all,
        loader=loader,
        describe=clients.describe,
    )
    assert report.errors == [(2, f"linked_since refused: {NO_LINKED_SINCE}")], report.render()
    assert report.linked == 1
    assert "deploy the shipped metadata" in report.render()

    summary = sync(sqlite_url, clients, loader, ask=True)
    assert summary.linked == 1 and summary.exchange_tasks["written"] == 1, summary
    with sessions() as session:
        assert session.scalars(sa.select(Link.link_key)).all() == ["contact-1"]
