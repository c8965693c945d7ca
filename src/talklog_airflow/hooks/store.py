"""Reaching the LINE WORKS message store through an Airflow connection.

Cheap to import (the DAG factory does it at parse time): the store's ORM models and
migrations (`talklog.store`) are imported when a session factory is asked for.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa  # SQLAlchemy core: Airflow has imported it already
from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

_DRIVERS = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2"}


class MessageStoreHook(BaseHook):
    """The message store as a SQLAlchemy URL.

    The connection either carries the whole URL in its extra (`{"sqlalchemy_url": "..."}`, the
    way to name a SQLite file) or is a PostgreSQL connection (host, port, login, password,
    schema = database). Its form fields are declared in `talklog_airflow.get_provider_info`.
    """

    conn_name_attr = "store_conn_id"
    default_conn_name = "talklog_store"
    conn_type = "talklog_store"
    hook_name = "LINE WORKS message store"

    def __init__(self, store_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store_conn_id = store_conn_id

    @cached_property
    def url(self) -> str:
        """The store's SQLAlchemy URL (with its password: never log it)."""
        conn = self.get_connection(self.store_conn_id)
        explicit = conn.extra_dejson.get("sqlalchemy_url")
        if explicit:
            return explicit
        url = sa.URL.create(
            _DRIVERS.get(conn.conn_type, "postgresql+psycopg2"),
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        )
        return url.render_as_string(hide_password=False)

    def get_conn(self) -> sessionmaker[Session]:
        """A session factory bound to the store; `StoreNotMigratedError` (saying to run
        `talklog store upgrade`) when its tables are missing or older than the package."""
        from talklog.store import make_session_factory
        from talklog.store.migrate import require_current

        sessions = make_session_factory(self.url)
        require_current(sessions.kw["bind"])
        return sessions

    def test_connection(self) -> tuple[bool, str]:
        from talklog.store.migrate import StoreNotMigratedError

        try:
            with self.get_conn()() as session:
                session.execute(sa.text("SELECT 1"))
        except StoreNotMigratedError as error:  # reachable; the message has no password
            return False, str(error)
        except Exception as error:  # reported to the UI, not raised
            return False, f"{type(error).__name__}: cannot reach the message store"
        return True, "Connection successfully tested"
