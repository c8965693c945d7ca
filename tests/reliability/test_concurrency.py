"""Concurrency (issue 9): hourly, 6-hourly and daily windows and a second daily run (a
backfill or a clear) at the same time on PostgreSQL: every message on every target once.

The ledger's primary key (message, customer) is the guard: a claim inserted by one run makes
the other runs' inserts of the same pair wait for its commit and then do nothing, so each pair
has exactly one TalkLog. Runs of the same window own the same pairs under the same key and
write identical records.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import pytest

from talklog.loading import BulkLoader
from talklog.pipeline import write_talk_logs
from talklog.store.engine import cached_engine
from talklog.talklogs import TalkLogSettings
from talklog.windows import TalkWindow
from tests.integration.talklog_world import (
    DAY,
    World,
    build_world,
    direct_clients,
    hourly_windows,
    ledger,
    local,
    snapshot,
)
from tests.reliability import report
from tests.reliability.harness import CONFIG, message_entries, open_letters

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]
DAILY = TalkWindow(local(DAY, 1), local(DAY, 25))
SIX_HOURLY = [TalkWindow(local(DAY, h), local(DAY, h + 6)) for h in (-5, 1, 7, 13, 19)]
RUNS = {
    "hourly x24": hourly_windows(),
    "daily": [DAILY],
    "daily again (backfill)": [DAILY],
    "6-hourly x5": SIX_HOURLY,
}


def _runner(world: World, name: str, windows: list[TalkWindow]) -> Callable[[], None]:
    """A run on its own Salesforce session and loader, like a separate Airflow worker."""
    clients = direct_clients(world.emulator)
    loader = BulkLoader(clients.bulk, world.sessions, run_id=name, sleep=lambda _: None)

    def run() -> None:
        for window in windows:
            summary = write_talk_logs(
                sessions=world.sessions,
                store_url=world.url,
                query_all=clients.query_all,
                loader=loader,
                window=window,
                settings=TalkLogSettings(),
                run_id=name,
            )
            assert summary.rejected == 0, summary.as_dict()

    return run


def _all_at_once(runs: dict[str, Callable[[], None]]) -> dict[str, BaseException]:
    start = threading.Barrier(len(runs))
    errors: dict[str, BaseException] = {}

    def guarded(name: str, run: Callable[[], None]) -> None:
        start.wait()
        try:
            run()
        except BaseException as exc:  # reported by the test
            errors[name] = exc

    threads = [threading.Thread(target=guarded, args=item) for item in runs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    return errors


@pytest.mark.parametrize("seed", [31, 32])
def test_overlapping_windows_at_the_same_time_deliver_each_message_once(
    sf_emulator, postgres_url, seed
):
    config = replace(CONFIG, seed=seed, messages=800, n_rooms=16, n_customers=20)
    world = build_world(sf_emulator, postgres_url, config)
    try:
        _check_concurrent_runs(world, seed)
    finally:
        cached_engine(postgres_url).dispose()  # lets the fixture drop the database at once


def _check_concurrent_runs(world: World, seed: int) -> None:
    errors = _all_at_once({name: _runner(world, name, w) for name, w in RUNS.items()})
    assert not errors, errors

    snapshot(world.emulator)  # no TalkLog or Task key twice
    duplicates, missing = message_entries(world)
    deliveries = ledger(world)
    owners = {d.talklog_key.split("|")[1] for d in deliveries}
    report.add(
        report.Row(
            "concurrency",
            f"{len(RUNS)} runs at once on PostgreSQL (seed {seed}): " + ", ".join(RUNS),
            "talk-log windows",
            len(RUNS),
            duplicates,
            missing,
            f"- -> {open_letters(world)}",
            "each message once, the work shared by the windows",
        )
    )
    assert (duplicates, missing) == (0, 0)
    assert all(d.delivered_at is not None for d in deliveries)
    assert len(owners) > 1  # the runs really shared the work
