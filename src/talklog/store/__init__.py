"""The message store: models, engine/session factory and migrations."""

from talklog.store.engine import display_url, make_engine, make_session_factory
from talklog.store.migrate import StoreNotMigratedError, downgrade, require_current, upgrade

__all__ = [
    "StoreNotMigratedError",
    "display_url",
    "downgrade",
    "make_engine",
    "make_session_factory",
    "require_current",
    "upgrade",
]
