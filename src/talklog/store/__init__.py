"""The message store: models, engine/session factory and migrations."""

from talklog.store.engine import display_url, make_engine, make_session_factory
from talklog.store.migrate import downgrade, upgrade

__all__ = ["display_url", "downgrade", "make_engine", "make_session_factory", "upgrade"]
