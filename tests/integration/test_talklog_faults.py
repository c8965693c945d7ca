"""Spec section 8 under Salesforce's bad days: the final state equals the fault-free one.

Every run goes through the production wiring (`TalkLogSalesforceHook`: simple-salesforce for
SOQL, its `bulk_client` for Bulk 2.0, both renewing an expired session through the hook).
The fault-free state is written once into a fresh emulator state and compared, ids replaced
by stable labels, with the state each faulty run leaves behind.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import requests

from talklog.salesforce.bulk import RequestLimitExceededError
from talklog_dev.synth import GeneratorConfig

from .talklog_world import DAY, Clients, World, build_world, expected, ledger, snapshot

CONFIG = GeneratorConfig(
    seed=8,
    day=DAY,
    n_staff=6,
    n_customers=24,
    n_rooms=20,
    group_share=0.4,
    messages=600,
    long_message_share=0.005,
)


def hook_clients() -> Clients:
    """The clients the DAGs use, from `salesforce_default` (set to the emulator)."""
    from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

    hook = TalkLogSalesforceHook()
    bulk = hook.bulk_client(poll_interval=0.01)
    return Clients(hook.conn.query_all_iter, bulk, hook.http_session)


def _world(emulator: Any, url: str) -> World:
    return build_world(emulator, url, CONFIG, hook_clients, sync=False)


def _write_day(world: World) -> None:
    world.sync_links_cleanly()
    summary = world.run(world.window())
    assert summary.rejected == 0 and summary.transcripts > 10, summary.as_dict()


def _assert_all_delivered(world: World) -> None:
    deliveries = ledger(world)
    assert {(d.message_id, d.customer_key) for d in deliveries} == expected(world).pairs
    assert all(d.delivered_at is not None for d in deliveries)


@pytest.fixture(scope="module")
def fault_free(emulator, tmp_path_factory) -> dict[str, Any]:
    """The state and API calls of the fault-free sync + day run, on its own store."""
    emulator.reset()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in emulator.airflow_conn_env().items():
            patch.setenv(name, value)
        world = _world(emulator, f"sqlite:///{tmp_path_factory.mktemp('clean')}/store.db")
        world.sync_links_cleanly()
        world.counter.by_kind.clear()
        summary = world.run(world.window())
        assert summary.rejected == 0
        return {"state": snapshot(emulator), "calls": Counter(world.counter.by_kind)}


@pytest.fixture
def world(salesforce_conn_env, sqlite_url) -> World:
    return _world(salesforce_conn_env, sqlite_url)


@pytest.fixture
def statuses(world) -> Counter[int]:
    """HTTP statuses the run's session saw (injected faults included)."""
    seen: Counter[int] = Counter()
    world.clients.http_session.hooks["response"].append(
        lambda response, *args, **kwargs: seen.update([response.status_code])
    )
    return seen


def _inject_503_bursts(emulator: Any, session: requests.Session, every: int) -> None:
    """After every `every` answered calls, the next 3 API calls answer 503 (the retry budget)."""
    calls = Counter[str]()

    def inject(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/services/data/" in response.url and response.status_code < 500:
            calls["ok"] += 1
            if calls["ok"] % every == 0:
                emulator.set_faults(http_5xx_count=3, http_5xx_status=503)

    session.hooks["response"].append(inject)


def test_five_percent_row_locks_end_in_the_fault_free_state(world, fault_free):
    world.emulator.set_faults(lock_failure_rate=0.05, lock_seed=11)
    _write_day(world)
    assert world.emulator.stats()["bulk_jobs"]["ingest"] > 4  # lock retries ran as extra jobs
    assert snapshot(world.emulator) == fault_free["state"]
    _assert_all_delivered(world)


def test_bursts_of_503_end_in_the_fault_free_state(world, fault_free, statuses):
    world.emulator.set_faults(http_5xx_count=3, http_5xx_status=503)  # the first SOQL query
    _inject_503_bursts(world.emulator, world.clients.http_session, every=4)
    _write_day(world)
    assert statuses[503] >= 3 * 6
    assert snapshot(world.emulator) == fault_free["state"]
    _assert_all_delivered(world)


def test_sessions_expiring_mid_run_end_in_the_fault_free_state(world, fault_free, statuses):
    world.emulator.set_faults(session_expire_after_calls=4)
    _write_day(world)
    assert statuses[401] >= 3  # both clients renewed their session through the hook
    assert snapshot(world.emulator) == fault_free["state"]
    _assert_all_delivered(world)


@pytest.mark.parametrize(
    "refused_call",
    ["first SOQL query", "TalkLog job upload complete", "Task job poll"],
)
def test_spent_api_budget_stops_the_run_and_a_later_run_completes_it(
    world, fault_free, refused_call
):
    world.sync_links_cleanly()
    queries = fault_free["calls"]["GET query"]
    allowed = {
        "first SOQL query": 0,
        "TalkLog job upload complete": queries + 2,  # POST job, PUT data, then PATCH
        "Task job poll": queries + 4 + 3,  # TalkLog job, then Task POST, PUT, PATCH: the last
    }[refused_call]
    used = world.emulator.stats()["daily_api_requests"]["used"]
    world.emulator.set_faults(daily_api_budget=used + allowed)

    with pytest.raises(RequestLimitExceededError, match="REQUEST_LIMIT_EXCEEDED") as failure:
        world.run(world.window(), "spent")
    assert any("re-run" in note for note in failure.value.__notes__)
    assert world.emulator.stats()["daily_api_requests"]["used"] == used + allowed
    if refused_call != "first SOQL query":
        assert any(d.delivered_at is None for d in ledger(world))  # claims wait for a re-run

    world.emulator.set_faults(daily_api_budget=None)  # the next day's budget
    again = world.run(world.window(), "next day")
    assert again.rejected == 0, again.as_dict()
    assert snapshot(world.emulator) == fault_free["state"]
    _assert_all_delivered(world)
