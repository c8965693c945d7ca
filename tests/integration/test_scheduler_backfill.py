"""A real scheduler-driven backfill: `make airflow`'s topology, the emulator and a message store.

The local topology (`talklog_dev.localstack`: scheduler, dag-processor, api-server on
127.0.0.1, plus a Celery worker in the Celery variant) runs on a throw-away PostgreSQL metadata
database (SQLite with LocalExecutor when PostgreSQL does not answer). The test unpauses the link
sync and the hourly DAG, lets the link sync run, backfills the 24 hourly windows of a generated
day with `airflow backfill create`, waits for every run through the REST API and checks that
Salesforce (the emulator) holds every linked message of the day exactly once per record.
Every process is stopped by its process group id, also when the test fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import statistics
import time
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from talklog.windows import TalkWindow
from talklog_dev.localstack import (
    CELERY,
    DEFAULT_REDIS_URL,
    LOCAL,
    LocalAirflow,
    TopologyConfig,
    drop_postgres_database,
    ensure_postgres_database,
    free_port,
    running,
    url_answers,
)
from talklog_dev.synth import GeneratorConfig
from tests.fixtures.databases import POSTGRES_ADMIN_URL, postgres_answers

from .talklog_world import DAY, World, build_world, delivered_lines, expected, ledger, local

CONFIG = GeneratorConfig(
    seed=20260110,
    day=DAY,
    n_staff=4,
    n_customers=12,
    n_rooms=10,
    group_share=0.4,
    messages=240,
)
TERMINAL = {"success", "failed"}


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> str:
    """The message store: PostgreSQL when it answers, SQLite otherwise."""
    return request.getfixturevalue("postgres_url" if postgres_answers() else "sqlite_url")


@contextlib.contextmanager
def metadata_database(home: Path) -> Generator[str]:
    """A throw-away PostgreSQL metadata database, or a SQLite file."""
    if not postgres_answers():
        yield f"sqlite:///{home / 'airflow.db'}"
        return
    name = f"talklog_airflow_test_{uuid.uuid4().hex[:10]}"
    url = ensure_postgres_database(POSTGRES_ADMIN_URL, name)
    try:
        yield url
    finally:
        drop_postgres_database(POSTGRES_ADMIN_URL, name)


def connections(world: World) -> dict[str, str]:
    """The connections, and the world's links as the store's (`TALKLOG_LINK_SOURCE=store`)."""
    store = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": world.url}}
    return {
        **world.emulator.airflow_conn_env(),
        "AIRFLOW_CONN_TALKLOG_STORE": json.dumps(store),
        "TALKLOG_LINK_SOURCE": "store",
    }


def wait_runs(
    airflow: LocalAirflow, dag_id: str, count: int, timeout: float, **filters: Any
) -> list[dict[str, Any]]:
    """Until `count` runs of `dag_id` (matching the REST filters) have finished."""
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        airflow.check_alive()
        runs = airflow.dag_runs(dag_id, **filters)
        if len(runs) >= count and all(run["state"] in TERMINAL for run in runs):
            return runs
        time.sleep(1)
    states = [(run["logical_date"], run["state"]) for run in runs]
    raise TimeoutError(f"{dag_id}: runs not finished after {timeout} s: {states}")


def run_backfill(airflow: LocalAirflow, hours: range, via_cli: bool) -> list[dict[str, Any]]:
    """Link sync first, then the hourly backfill of the windows starting at `hours` of DAY,
    created with `airflow backfill create` or through the REST API (~20 s faster).

    The run whose data interval starts at Jan 10 HH:00 (Tokyo) writes Jan 9 HH:00-HH:59."""
    t0 = time.monotonic()
    for dag_id in ("talklog_link_sync", "talklog_hourly"):
        airflow.wait_dag(dag_id)
    t1 = time.monotonic()
    airflow.unpause("talklog_link_sync")  # catchup off: one run for the latest interval
    sync = wait_runs(airflow, "talklog_link_sync", 1, timeout=120)
    assert all(run["state"] == "success" for run in sync), sync
    t2 = time.monotonic()
    airflow.unpause("talklog_hourly")
    start, end = (
        f"{DAY + dt.timedelta(days=1)}T{h:02d}:00:00+09:00" for h in (hours[0], hours[-1])
    )
    if via_cli:
        airflow.cli(
            "backfill", "create", "--dag-id", "talklog_hourly", "--from-date", start,
            "--to-date", end, "--max-active-runs", "1",
        )  # fmt: skip
    else:  # what the UI's backfill dialog calls
        body = {"dag_id": "talklog_hourly", "from_date": start, "to_date": end}
        airflow.api("POST", "/api/v2/backfills", {**body, "max_active_runs": 1})
    t3 = time.monotonic()
    print(f"\nparsed {t1 - t0:.1f} s, link sync {t2 - t1:.1f} s, backfill created {t3 - t2:.1f} s")
    return wait_runs(airflow, "talklog_hourly", len(hours), timeout=480, run_type="backfill")


def assert_each_linked_message_once(world: World, hours: range) -> None:
    """Every (message, customer) pair of the windows is in Salesforce once, with its Task."""
    wanted = expected(world, TalkWindow(local(DAY, hours[0]), local(DAY, hours[-1] + 1)))
    assert sum(map(len, wanted.lines.values())) > 30, "the windows must give the check something"
    assert delivered_lines(world.emulator) == wanted.lines
    assert {(d.message_id, d.customer_key) for d in ledger(world)} == wanted.pairs
    talklogs = {r["TalkLogKey__c"].rsplit("|", 1)[0] for r in world.emulator.records("TalkLog__c")}
    logs = [t for t in world.emulator.records("Task") if t["LineWorksKey__c"].startswith("log|")]
    assert {t["LineWorksKey__c"].split("|", 1)[1].rsplit("|", 1)[0] for t in logs} == talklogs


def timings(runs: list[dict[str, Any]]) -> str:
    """Mean run duration and mean gap between runs (scheduling latency), in seconds."""
    spans = sorted(
        (dt.datetime.fromisoformat(r["start_date"]), dt.datetime.fromisoformat(r["end_date"]))
        for r in runs
    )
    durations = [(end - start).total_seconds() for start, end in spans]
    gaps = [(b[0] - a[1]).total_seconds() for a, b in itertools.pairwise(spans)]
    return f"run {statistics.mean(durations):.1f} s, gap {statistics.mean(gaps or [0]):.1f} s"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("executor", "hours", "via_cli"),
    # A whole day on LocalExecutor with the CLI; on Celery the 6 windows of 09:00-14:59
    # through the REST API (suite time).
    [(LOCAL, range(24), True), (CELERY, range(9, 15), False)],
    ids=["local-24h", "celery-6h"],
)
def test_scheduler_backfills_hourly_windows(
    executor: str, hours: range, via_cli: bool, sf_emulator: Any, store_url: str, tmp_path: Path
) -> None:
    if executor == CELERY and not postgres_answers():
        pytest.skip("CeleryExecutor variant needs PostgreSQL on 127.0.0.1:5432: not answering")
    if executor == CELERY and not url_answers(DEFAULT_REDIS_URL):
        pytest.skip(f"CeleryExecutor variant needs Redis at {DEFAULT_REDIS_URL}: not answering")
    world = build_world(sf_emulator, store_url, CONFIG, sync=False)
    started = time.monotonic()
    with metadata_database(tmp_path) as database_url:
        config = TopologyConfig(
            home=tmp_path / "airflow",
            database_url=database_url,
            executor=executor,
            api_port=free_port(),
            celery_queue=f"talklog-test-{uuid.uuid4().hex[:8]}",
            parallelism=2,
            fast_scheduling=True,
            env=connections(world),
        )
        with running(config) as airflow:
            ready = time.monotonic()
            runs = run_backfill(airflow, hours, via_cli)
            failed = [run["dag_run_id"] for run in runs if run["state"] != "success"]
            assert not failed, f"failed runs: {failed}\n{airflow.tail('scheduler')}"
            done = time.monotonic()
    assert_each_linked_message_once(world, hours)
    print(
        f"\n{executor}: topology ready in {ready - started:.0f} s, {len(runs)} backfill runs in"
        f" {done - ready:.0f} s ({timings(runs)}),"
        f" {len(world.emulator.records('TalkLog__c'))} TalkLogs"
    )
