"""One way to reach the message store: a SQLAlchemy URL."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

SUPPORTED_DIALECTS = frozenset({"postgresql", "sqlite"})


def display_url(url: str | sa.URL) -> str:
    """`url` fit for output, logs and errors: the password masked as ``***``."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "<store URL that is not a SQLAlchemy URL>"


def dialect_of(bind: sa.Engine | sa.Connection | sa.Dialect) -> str:
    """The SQL dialect's name (`sqlite`, `postgresql`, ...) of an engine, connection or dialect."""
    return (bind if isinstance(bind, sa.Dialect) else bind.dialect).name


def store_dialect(bind: sa.Engine | sa.Connection, user: str) -> str:
    """`dialect_of(bind)`, refused unless the store supports it; `user` names who needs it."""
    name = dialect_of(bind)
    if name not in SUPPORTED_DIALECTS:
        raise NotImplementedError(f"{user} supports PostgreSQL and SQLite, not {name}")
    return name


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL's recommended durability: a power cut may lose the last commits, never consistency
    # (a lost claim or delivery mark only means the window writes the same keys again).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: ledger index inserts stay in memory
    cursor.close()


def make_engine(url: str | sa.URL, **kwargs) -> sa.Engine:
    """An engine for the store at `url`; SQLite gets foreign keys, WAL, a busy timeout
    and a 64 MiB page cache."""
    engine = sa.create_engine(url, **kwargs)
    if dialect_of(engine) == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@functools.cache
def cached_engine(url: str) -> sa.Engine:
    """A process-wide engine per URL (tasks in one worker share the pool)."""
    return make_engine(url, pool_pre_ping=True)


def make_session_factory(url: str | sa.URL) -> sessionmaker[Session]:
    """A session factory bound to the store at `url`."""
    engine = cached_engine(url) if isinstance(url, str) else make_engine(url)
    return sessionmaker(engine, expire_on_commit=False)
