"""The message store: models, engine and session factory (`talklog.store.migrate`: its
migrations, kept apart because they load Alembic, about half a second a process that only
reads or writes the store does not spend)."""

from talklog.store.engine import display_url, make_engine, make_session_factory

__all__ = ["display_url", "make_engine", "make_session_factory"]
