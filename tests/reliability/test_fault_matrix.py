"""Fault matrix (issue 9): every emulator fault and store outage against every job.

Each cell builds a fresh world, arms the fault and runs the job; a run that fails (an
exception the Airflow task would show, or dead letters that turn `check_dead_letters` red) is
followed by a re-run once the incident is over. The final Salesforce state must equal the
fault-free run's: no duplicates, nothing missing. Every cell adds a row to the reliability
table (printed at the end of the session, written to docs/reliability.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from talklog.salesforce.bulk import RequestLimitExceededError
from talklog.store.engine import cached_engine
from tests.integration.talklog_world import World, ledger
from tests.reliability import report
from tests.reliability.faults import FAULTS, Fault, RefusingProxy, postgres_refused
from tests.reliability.harness import (
    JOBS,
    Job,
    State,
    compare,
    job_world,
    message_entries,
    open_letters,
    state,
)

pytestmark = pytest.mark.reliability
MAX_RUNS = 3
CLEAR_FAILURES = (RequestLimitExceededError, sa.exc.OperationalError)
report.EXPECTED_MATRIX_ROWS[0] = len(FAULTS) * len(JOBS)


@dataclass
class Baseline:
    state: State
    calls: int


@pytest.fixture(scope="module")
def baselines(emulator, tmp_path_factory) -> dict[str, Baseline]:
    """Each job's fault-free final state and API calls."""
    found = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in emulator.airflow_conn_env().items():
            patch.setenv(name, value)
        for job in JOBS:
            url = f"sqlite:///{tmp_path_factory.mktemp('baseline')}/store.db"
            world = job_world(emulator, url, job)
            used = emulator.stats()["daily_api_requests"]["used"]
            assert job.run(world, "fault-free") == 0
            calls = emulator.stats()["daily_api_requests"]["used"] - used
            found[job.name] = Baseline(state(emulator), calls)
    return found


@dataclass
class Runs:
    count: int = 0
    first_letters: int | None = None
    failures: list[str] = field(default_factory=list)
    calls: int = 0


def _run_until_converged(world: World, job: Job, fault: Fault, calls: int) -> Runs:
    hooks = list(world.clients.http_session.hooks["response"])
    used = world.emulator.stats()["daily_api_requests"]["used"]
    hit = fault.arm(world, calls)
    runs = Runs()
    while runs.count < MAX_RUNS:
        runs.count += 1
        failure = _attempt(world, job, f"run {runs.count}")
        _wait_for_store(world)
        letters = open_letters(world)
        runs.first_letters = letters if runs.first_letters is None else runs.first_letters
        if failure is None and letters == 0:
            break
        runs.failures.append(failure or f"{letters} dead letters")
        world.emulator.reset(records=False, counters=False, faults=True)  # incident over
        world.clients.http_session.hooks["response"][:] = hooks
    assert hit is None or hit.is_set(), f"{fault.name} never hit the run"
    runs.calls = world.emulator.stats()["daily_api_requests"]["used"] - used
    return runs


def _wait_for_store(world: World, timeout_s: float = 15.0) -> None:
    """An operator looks once the store answers again (an outage lasts a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with world.sessions() as session:
                session.execute(sa.text("SELECT 1"))
            return
        except sa.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _attempt(world: World, job: Job, run_id: str) -> str | None:
    """None when the run ended; else the clear failure it raised (others propagate)."""
    try:
        job.run(world, run_id)
    except CLEAR_FAILURES as exc:
        return type(exc).__name__
    return None


def _cell(world: World, job: Job, fault: Fault, baseline: Baseline) -> None:
    runs = _run_until_converged(world, job, fault, baseline.calls)
    difference = compare(state(world.emulator), baseline.state)
    duplicates, missing = difference.duplicates, difference.missing
    if job.name == "talk-log windows":
        extra, absent = message_entries(world)
        duplicates, missing = duplicates + extra, missing + absent
        assert all(d.delivered_at is not None for d in ledger(world))
    converged = difference.none and not duplicates and not missing and open_letters(world) == 0
    report.add(
        report.Row(
            "fault matrix",
            fault.name,
            job.name,
            runs.count,
            duplicates,
            missing,
            f"{runs.first_letters} -> {open_letters(world)}",
            _outcome(runs, converged, difference.differing, baseline.calls),
        )
    )
    assert converged, (fault.name, job.name, difference, duplicates, missing)


def _outcome(runs: Runs, converged: bool, differing: int, fault_free_calls: int) -> str:
    calls = f"{runs.calls} API calls (fault-free {fault_free_calls})"
    if not converged:
        return f"DIFFERS ({differing} records differ); {calls}"
    if runs.count == 1:
        return f"identical; {calls}"
    failures = ", ".join(runs.failures)
    return f"failed clearly ({failures}), run {runs.count} converged; {calls}"


@pytest.mark.parametrize("job", JOBS, ids=lambda job: job.name)
@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
def test_fault_ends_in_the_fault_free_state(
    fault: Fault, job: Job, baselines: dict[str, Baseline], salesforce_conn_env: Any, sqlite_url
):
    world = job_world(salesforce_conn_env, sqlite_url, job)
    _cell(world, job, fault, baselines[job.name])


@pytest.mark.postgres
@pytest.mark.parametrize("job", JOBS, ids=lambda job: job.name)
def test_postgres_store_refusing_connections_mid_run(
    job: Job, baselines: dict[str, Baseline], salesforce_conn_env: Any, postgres_url: str
):
    proxy = RefusingProxy(("127.0.0.1", sa.make_url(postgres_url).port or 5432))
    url = sa.make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    store = url.render_as_string(hide_password=False)
    try:
        world = job_world(salesforce_conn_env, store, job)
        fault = Fault("PostgreSQL store refusing connections 3 s mid-run", postgres_refused(proxy))
        _cell(world, job, fault, baselines[job.name])
    finally:
        cached_engine(store).dispose()
        proxy.close()
