"""The directory sync into an empty store (a new deployment's first run), through the real
client against the LINE WORKS emulator, on SQLite and PostgreSQL: staff, LINE users and their
contacts land in one run (the contacts' foreign key to their LINE user holds); a contact
renamed in an address book is read again by the next run, its LINE user keeps its name."""

from __future__ import annotations

import sqlalchemy as sa

from talklog.directory_sync import sync_directory
from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import LineContact, LineUser, LineWorksUser
from talklog_airflow.hooks.lineworks import LineWorksHook


def test_the_first_sync_fills_an_empty_store_and_the_next_reads_a_renamed_contact(
    lineworks_conn, store_url
):
    upgrade(store_url)
    sessions = make_session_factory(store_url)
    hook = LineWorksHook()
    first = sync_directory(sessions, hook.client, domain_id=hook.domain_id)
    with sessions() as session:
        staff = session.scalar(sa.select(sa.func.count()).select_from(LineWorksUser))
        users = {u.id: u.display_name for u in session.scalars(sa.select(LineUser))}
        contacts = session.scalars(sa.select(LineContact)).all()
    assert staff == first.staff_read == first.staff_created == 5
    assert len(contacts) == first.contacts_read - first.contacts_skipped > len(users) > 0
    assert first.line_users_created == len(users) and {c.line_user_id for c in contacts} == set(
        users
    )

    contact = contacts[0]
    lineworks_conn.rename_contact(contact.contact_id, "改名", "様")
    second = sync_directory(sessions, hook.client, domain_id=hook.domain_id)
    assert second.contacts_since is not None and second.contacts_read == 1
    assert second.line_users_created == 0
    with sessions() as session:
        assert session.get(LineContact, contact.contact_id).display_name == "改名 様"
        assert (
            session.get(LineUser, contact.line_user_id).display_name == users[contact.line_user_id]
        )
