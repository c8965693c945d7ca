"""One way to reach the message store: a SQLAlchemy URL."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Generator

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


# Bytes that are not UTF-8 kept as lone surrogates U+DC80-U+DCFF (Python's "surrogateescape").
_ESCAPED_UTF8 = functools.partial(str, encoding="utf-8", errors="surrogateescape")


def is_undecodable_text(error: BaseException) -> bool:
    """True when SQLite could not return a text value because it is not valid UTF-8 (another
    tool wrote those bytes); its message quotes the value, so never show it."""
    orig = getattr(error, "orig", error)
    return isinstance(orig, sqlite3.OperationalError) and str(orig).startswith(
        "Could not decode to UTF-8"
    )


@contextlib.contextmanager
def tolerant_text(connection: sa.Connection) -> Generator[None]:
    """Within the block, SQLite returns text that is not valid UTF-8 with each bad byte as a
    lone surrogate (U+DC80-U+DCFF) instead of failing the query (`is_undecodable_text`);
    callers find such values with `talklog.transcripts.is_undecoded` and quarantine the row.

    The default (strict) decoding stays outside the block: it is done in C, a Python text
    factory costs about a fifth of a window's read. Other dialects are unchanged: a
    PostgreSQL UTF8 database holds valid UTF-8 only.
    """
    if dialect_of(connection) != "sqlite":
        yield
        return
    raw = connection.connection.dbapi_connection
    previous = raw.text_factory
    raw.text_factory = _ESCAPED_UTF8
    try:
        yield
    finally:
        raw.text_factory = previous


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
