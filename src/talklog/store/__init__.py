"""The message store: models, engine/session factory and migrations."""

from talklog.store.engine import make_engine, make_session_factory
from talklog.store.migrate import downgrade, upgrade

__all__ = ["downgrade", "make_engine", "make_session_factory", "upgrade"]
