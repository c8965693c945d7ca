"""Whole DAG runs: a migrated Airflow metadata DB (SQLite, in the test AIRFLOW_HOME), the
store and emulator connections of `dag.test()` runs, and the live Airflow of the console tests.

`console_airflow` is `make airflow`'s topology (api-server, scheduler, dag-processor, triggerer
on 127.0.0.1) with its own emulator and a store holding the spec's examples of 2026-01-09. The
browser test and the `talklog backfill` test share one start (~25 s): it is started by the first
test that asks for it and stopped after the last of the tests in a row that use it, so its
scheduler does not keep a core busy for the rest of the suite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from talklog.store.migrate import upgrade
from tests.fixtures.databases import POSTGRES_ADMIN_URL, postgres_answers

EXAMPLES_DAY = dt.date(2026, 1, 9)
LIVE_FIXTURE = "console_airflow"
_LIVE = pytest.StashKey["LiveConsoleAirflow"]()


@pytest.fixture(scope="session")
def airflow_metadata_db() -> None:
    """Migrate the test Airflow metadata database once per session (~5 s on SQLite)."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def airflow_db(airflow_metadata_db) -> None:
    """No DAG runs left over from another test: each test starts its runs afresh."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).all():
            session.delete(run)


@pytest.fixture
def connections(sf_emulator, sqlite_url, monkeypatch) -> str:
    """`dag.test()` runs reach the emulator and a migrated SQLite store whose links are the
    store's own (the examples', `TALKLOG_LINK_SOURCE=store`); the store's URL."""
    upgrade(sqlite_url)
    monkeypatch.setenv("TALKLOG_LINK_SOURCE", "store")
    for key, value in sf_emulator.airflow_conn_env().items():
        monkeypatch.setenv(key, value)
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": sqlite_url}}
    monkeypatch.setenv("AIRFLOW_CONN_TALKLOG_STORE", json.dumps(store))
    return sqlite_url


# -- the live Airflow of the console tests -------------------------------------------------------


@dataclass(frozen=True)
class ConsoleAirflow:
    topology: Any  # talklog_dev.localstack.LocalAirflow
    store_url: str
    emulator: Any  # its own Salesforce emulator (the session's is reset by other tests)


class LiveConsoleAirflow:
    """Starts the topology on first use, again after a stop; `stop` ends every process."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.starts = 0
        self._stack: contextlib.ExitStack | None = None
        self._live: ConsoleAirflow | None = None

    def get(self) -> ConsoleAirflow:
        if self._live is None:
            self.starts += 1
            stack = contextlib.ExitStack()
            try:
                self._live = _start(stack, self.workdir / f"start-{self.starts}")
            except BaseException:
                stack.close()
                raise
            self._stack = stack
        return self._live

    def stop(self) -> None:
        stack, self._stack, self._live = self._stack, None, None
        if stack is not None:
            stack.close()


def _start(stack: contextlib.ExitStack, workdir: Path) -> ConsoleAirflow:
    from talklog_dev.emulator.process import run_emulator
    from talklog_dev.localstack import TopologyConfig, free_port, running
    from talklog_dev.synth.examples import write_examples

    emulator = stack.enter_context(run_emulator(workdir / "emulator"))
    store_url = f"sqlite:///{workdir / 'store.db'}"
    upgrade(store_url)
    targets = {
        name: emulator.create_record("ExternalContact__c", Name=label)
        for name, label in (("yamada", "山田 太郎"), ("sato", "佐藤 花子"))
    }
    write_examples(store_url, EXAMPLES_DAY, targets)
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": store_url}}
    config = TopologyConfig(
        home=workdir / "airflow",
        database_url=_metadata_url(stack, workdir),
        api_port=free_port(),
        fast_scheduling=True,
        env={
            **emulator.airflow_conn_env(),
            "AIRFLOW_CONN_TALKLOG_STORE": json.dumps(store),
            "TALKLOG_LINK_SOURCE": "store",  # the examples' links are the store's
            "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
        },
    )
    topology = stack.enter_context(running(config))
    return ConsoleAirflow(topology, store_url, emulator)


def _metadata_url(stack: contextlib.ExitStack, workdir: Path) -> str:
    """A throw-away PostgreSQL metadata DB (Airflow refuses backfills on a busy SQLite)."""
    from talklog_dev.localstack import drop_postgres_database, ensure_postgres_database

    if not postgres_answers():
        return f"sqlite:///{workdir / 'airflow.db'}"
    name = f"talklog_console_test_{uuid.uuid4().hex[:10]}"
    url = ensure_postgres_database(POSTGRES_ADMIN_URL, name)
    stack.callback(drop_postgres_database, POSTGRES_ADMIN_URL, name)
    return url


@pytest.fixture(scope="session")
def live_console_airflow(request, tmp_path_factory) -> Iterator[LiveConsoleAirflow]:
    live = LiveConsoleAirflow(tmp_path_factory.mktemp("console-airflow"))
    request.config.stash[_LIVE] = live
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def console_airflow(live_console_airflow) -> ConsoleAirflow:
    """The live topology, started when no earlier test left it running."""
    return live_console_airflow.get()


@pytest.hookimpl(trylast=True)  # after the test's own fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the live topology once the next test does not use it."""
    live = item.config.stash.get(_LIVE, None)
    used = LIVE_FIXTURE in getattr(item, "fixturenames", ())
    if live is not None and used and LIVE_FIXTURE not in getattr(nextitem, "fixturenames", ()):
        live.stop()
