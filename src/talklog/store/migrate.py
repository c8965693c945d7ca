"""Alembic migrations of the message store, run programmatically from a store URL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An Alembic config for the store at `url` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the store at `url` up to `revision` (creating the tables on a new database)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Take the store at `url` down to `revision` (base: drop every table)."""
    command.downgrade(alembic_config(url), revision)


class StoreNotMigratedError(RuntimeError):
    """The store's tables are missing or older than this version of the package needs."""


def head_revision() -> str:
    """The revision this version of the package needs."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def require_current(engine: sa.Engine) -> None:
    """Raise `StoreNotMigratedError`, saying what to run, unless the store is at the head."""
    from talklog.store.engine import display_url  # engine imports models; keep this cheap

    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if current == head:
        return
    where = display_url(engine.url)
    state = "has no tables yet" if current is None else f"is at revision {current}"
    raise StoreNotMigratedError(
        f"the message store at {where} {state}; this version needs revision {head}:"
        f" run `talklog store upgrade --url {where}` (password left out)"
    )
